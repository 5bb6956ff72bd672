"""Log lines an operator can read and grep: a message, then key=value fields."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class FieldFormatter(logging.Formatter):
    """`2026-01-02T03:04:05 info herald.hub subscriber too slow transport=ws`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD
        )
        line = (
            f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} "
            f"{record.levelname.lower()} {record.name} {record.getMessage()}"
        )
        if fields:
            line += " " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level: str) -> None:
    """Send Herald's logs to stderr in the field format, at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldFormatter())
    root = logging.getLogger("herald")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
