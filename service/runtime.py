"""What one worker process shares between its routes: settings, broker, hub."""

from __future__ import annotations

import msgspec

from .broker import Broker
from .hub import Hub
from .settings import Settings


class Runtime(msgspec.Struct, kw_only=True):
    """The live objects of one process; `draining` turns true on SIGTERM."""

    settings: Settings
    broker: Broker
    hub: Hub
    draining: bool = False
    started: bool = False
