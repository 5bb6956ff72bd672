"""Transports: each translates between the hub and one wire format, nothing more."""
