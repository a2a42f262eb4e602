"""The sandbox's clock: starts at the dataset's 'now' and moves with wall time.

Every write gets a time strictly after everything the dataset or an earlier
write holds, so incremental readers (updated_since / GTE watermarks) see it.
"""

from __future__ import annotations

import threading
import time


class SandboxClock:
    def __init__(self, start_s: int) -> None:
        self._start_s = start_s
        self._wall0 = time.monotonic()
        self._last = start_s
        self._lock = threading.Lock()

    def tick(self) -> int:
        """A new epoch-seconds time, later than every earlier tick."""
        with self._lock:
            elapsed = int(time.monotonic() - self._wall0)
            self._last = max(self._last + 1, self._start_s + elapsed)
            return self._last

    def peek(self) -> int:
        return self._last
