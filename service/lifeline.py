"""Processes that end with the one that started them.

`herald serve` starts Granian's workers and the private nats-server. If it
is killed outright (SIGKILL, the OOM killer), they would live on as
orphans: workers answering on the port with no one to replace them, and a
nats-server on a JetStream store that the next `herald serve` would open
a second time. Linux's parent-death signal ends them instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def end_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when its parent dies.

    Call it first thing in a child; a parent already gone by then counts
    too. Elsewhere than on Linux this does nothing.
    """
    if _prctl is None:
        return
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, int(sig))
    if parent == 1 or os.getppid() != parent:
        os.kill(os.getpid(), sig)
