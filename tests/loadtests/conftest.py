"""What the bench's client tests share: its import view and the ways bytes arrive.

The bench's modules import one another by bare name (`from stream import
Stream`), as they do when `bench.py` or Locust runs them from `loadtests/`,
so the tests put that folder on the path too.
"""

from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT
from tests.loadtests.fakes import Cut, cut_by

LOADTESTS = str(ROOT / "loadtests")
if LOADTESTS not in sys.path:
    sys.path.insert(0, LOADTESTS)


@pytest.fixture(
    params=[1, 2, 3, 7, None, 0],
    ids=["by-1", "by-2", "by-3", "by-7", "by-write", "whole"],
)
def cut(request: pytest.FixtureRequest) -> Cut:
    """Turn a server's writes into reads: cut every few bytes, one a write, or
    all in one; what a client makes of them must not depend on the cut."""
    step: int | None = request.param
    return cut_by(step)
