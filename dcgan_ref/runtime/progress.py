"""Progress lines for long loops: ``what 12,000/50,000 images | 410 images/s | ETA 00:01:32``.

At most one line every ``every_s`` seconds (and one at the end), so a 20-minute phase is
never silent and a 2-second one prints once.  Lines go to stdout, like the trainer's.
"""
from __future__ import annotations

import time
from typing import Callable


class Progress:
    def __init__(self, what: str, total: int, unit: str = "images", every_s: float = 15.0,
                 log: Callable[[str], None] = print) -> None:
        self.what, self.total, self.unit, self.every_s, self.log = what, total, unit, every_s, log
        self.done, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            self.log(f"  {self.what} {self.done:,}/{self.total:,} {self.unit} | {rate:,.1f} {self.unit}/s | "
                     f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}")
