"""Brokers: the only code that knows where events are stored and shared."""

from .base import Bounds, Broker, Draft, LiveHandler, Published, Retention

__all__ = ["Bounds", "Broker", "Draft", "LiveHandler", "Published", "Retention"]
