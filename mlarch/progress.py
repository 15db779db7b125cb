"""Progress on stderr for long work: a rich bar that appears only once the work has taken a
second, so quick runs stay quiet."""
from __future__ import annotations

import time


class DelayedBar:
    """A rich progress bar on stderr for a fraction in [0, 1]; appears after `delay_s`."""

    def __init__(self, label: str, delay_s: float = 1.0):
        self.label, self.delay_s = label, delay_s
        self.t0, self.bar, self.task = time.perf_counter(), None, None

    def __enter__(self):
        return self

    def update(self, frac: float) -> None:
        if self.bar is None and time.perf_counter() - self.t0 > self.delay_s:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
            self.bar = Progress(TextColumn(self.label), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("work", total=1.0)
        if self.bar is not None:
            self.bar.update(self.task, completed=frac)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def simulate_with_bar(sc, design, **kw):
    """simulator.simulate with a delayed progress bar on stderr."""
    from simulator import simulate
    with DelayedBar(f"simulating {sc.name}") as bar:
        return simulate(sc, design, progress=bar.update, **kw)
