"""CPU time and memory of a process and all its descendants, read from /proc.

The server under test is `herald serve` with its Granian workers and, on the
embedded default, its private nats-server: the bench measures the whole
tree, found by walking the PPid field of every /proc/<pid>/stat.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or ')'.
    return text.rpartition(")")[2].split()


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def machine_busy() -> float:
    """CPU seconds all processors have spent busy since boot (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


class ProcessTree:
    """The process `root` and its descendants, as they are at each call."""

    def __init__(self, root: int) -> None:
        self.root = root

    def pids(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
        out, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, ()))
        return out

    def cpu(self) -> dict[int, float]:
        """User plus system CPU seconds of each live process of the tree."""
        out = {}
        for pid in self.pids():
            fields = _stat(pid)
            if fields is not None:
                # Fields 14 and 15 of stat (utime, stime), counted from 3 here.
                out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
        return out

    def names(self) -> dict[int, str]:
        """The command name of each live process of the tree."""
        return {pid: _name(pid) for pid in self.pids()}

    def rss(self) -> int:
        """Resident bytes summed over the tree (shared pages count in each)."""
        total = 0
        for pid in self.pids():
            fields = _stat(pid)
            if fields is not None:
                total += int(fields[21]) * _PAGE
        return total


def cpu_between(
    before: dict[int, float], after: dict[int, float], only: set[int] | None = None
) -> float:
    """CPU seconds the tree (or the pids in `only`) spent between two readings."""
    return sum(
        t - before.get(pid, 0.0)
        for pid, t in after.items()
        if only is None or pid in only
    )
