"""Progress on stderr: a bar redrawn in place on a terminal, a line a minute otherwise (e.g. a pod's log)."""

from __future__ import annotations

import shutil
import time
from typing import TextIO

_REDRAW_SECONDS = 0.2
_LOG_SECONDS = 60.0


class Progress:
    """``advance(n)`` as work is done, ``close()`` at the end. Silent when ``enabled`` is False."""

    def __init__(self, stream: TextIO, *, enabled: bool, label: str, total: int, unit: str, done: int = 0) -> None:
        """``done``: work done before (a resumed run): counted in the bar, not in the rate."""
        self.stream = stream
        self.enabled = enabled
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.done = self._before = done
        self.started = time.monotonic()
        self._terminal = enabled and _is_terminal(stream)
        self._shown = 0.0 if self._terminal else self.started  # a log line only once a minute has passed

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        wait = _REDRAW_SECONDS if self._terminal else _LOG_SECONDS
        if now - self._shown >= wait:
            self._shown = now
            self._show(final=False)

    def close(self) -> None:
        if self.enabled and (self._terminal or self.done):
            self._show(final=True)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done - self._before) / elapsed if elapsed > 0 else 0.0

    def _show(self, *, final: bool) -> None:
        rate = self.rate()
        pct = 100 * self.done / self.total if self.total else 100.0
        figures = f"{self.done:,}/{self.total:,} {self.unit} {pct:3.0f}% {rate:,.0f}/s"
        if not final and rate > 0 and self.total > self.done:
            left = int((self.total - self.done) / rate)
            figures += f" ETA {left // 3600:d}:{left % 3600 // 60:02d}:{left % 60:02d}"
        if not self._terminal:
            self.stream.write(f"{self.label}: {figures}\n")
            self.stream.flush()
            return
        width = shutil.get_terminal_size((80, 20)).columns
        room = max(width - len(self.label) - len(figures) - 5, 0)
        filled = int(room * pct / 100)
        bar = f" [{'#' * filled}{'.' * (room - filled)}] " if room >= 10 else " "
        line = f"{self.label}{bar}{figures}"[: width - 1].ljust(width - 1)
        self.stream.write(f"\r{line}" + ("\n" if final else ""))
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
