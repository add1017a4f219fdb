"""A dependency-free progress bar on stderr, shown only when asked for and only on a terminal."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total, enabled=False, unit="epoch", stream=None, width=30):
        self.stream = stream or sys.stderr
        self.total, self.unit, self.width = total, unit, width
        self.enabled = bool(enabled) and (enabled == "always" or self.stream.isatty())
        self.start = time.perf_counter()
        self.shown = False

    def update(self, done, history=None):
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(frac * self.width)
        loss = f" loss {history.loss[-1]:.4g}" if history is not None and history.loss else ""
        val = f" val {history.val_loss[-1]:.4g}" if history is not None and history.val_loss else ""
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r[{bar:<{self.width}}] {done}/{self.total} {self.unit}s{loss}{val} {elapsed:.1f}s")
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
