"""Progress lines with an ETA for long jobs (written to stderr, one line per update interval)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Report ``done/total``, rate and ETA to stderr at most every ``interval`` seconds.

    Parameters
    ----------
    total : int
        Number of items of the job.
    label : str
        What is being done, printed at the start of each line.
    interval : float
        Minimum seconds between two printed lines (the last item is always printed).
    start_at : int
        Items already done before this run (resumed jobs); excluded from the rate.
    """

    def __init__(self, total: int, label: str, interval: float = 5.0, start_at: int = 0, stream=None):
        self.total, self.label, self.interval = total, label, interval
        self.start_at = start_at
        self.t0 = time.perf_counter()
        self.last = -1e9
        self.stream = stream or sys.stderr

    def update(self, done: int, extra: str = "") -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.t0
        rate = (done - self.start_at) / elapsed if elapsed > 0 and done > self.start_at else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_txt = f"{eta:6.0f} s" if eta == eta else "     ? s"
        print(f"[{self.label}] {done}/{self.total}  {elapsed:6.1f} s elapsed  ETA {eta_txt}  {extra}",
              file=self.stream, flush=True)
