"""release_memory frees garbage held in reference cycles (what pandas leaves after parsing a table)."""

from __future__ import annotations

import gc
import weakref

from jointly.learn.vertical.memory import release_memory


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_release_memory_collects_cycles_unless_told_not_to() -> None:
    gc.disable()  # no automatic collection may free the cycle behind the test's back
    try:
        kept = _Cycle()
        ref = weakref.ref(kept)
        del kept
        release_memory(collect=False)  # the trim only: the cycle survives
        assert ref() is not None
        release_memory()
        assert ref() is None
    finally:
        gc.enable()
