"""Progress on stderr for long work, never on stdout (so `--json` stays clean).

On a terminal: a rich bar (stage, fraction, rate, time left) that appears once the work has
taken `delay_s`, so quick runs stay quiet. Not on a terminal (a CI log, a pipe): one line per
stage and at each quarter of the work, again only after `delay_s`. With `--quiet` (or
MLARCH_QUIET=1): nothing."""
from __future__ import annotations

import os
import sys
import time

_quiet = False
DELAY_S = 1.0   # work shorter than this shows no progress (tests set it to 0)


def set_quiet(quiet: bool) -> None:
    """`--quiet` on any command: no progress output for the rest of the process."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet or os.environ.get("MLARCH_QUIET", "") not in ("", "0")


def on_terminal() -> bool:
    """A live bar makes sense: stderr is a terminal and progress is wanted."""
    return not is_quiet() and sys.stderr.isatty()


class Bar:
    """Progress of one piece of work: `update(completed, stage)`, `completed` out of `total`
    (a fraction when total is 1.0, else a count shown as k/N)."""

    def __init__(self, label: str, total: float = 1.0, delay_s: float | None = None):
        self.label, self.total = label, float(total)
        self.delay_s = DELAY_S if delay_s is None else delay_s
        self.t0 = time.perf_counter()
        self.completed, self.stage = 0.0, ""
        self.tty = sys.stderr.isatty()
        self.quiet = is_quiet()
        self.bar = self.task = None
        self._quarter, self._said_stage = -1, None

    def __enter__(self):
        return self

    def _start_bar(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        count = [MofNCompleteColumn()] if self.total != 1.0 else [TextColumn("{task.percentage:>3.0f}%")]
        self.bar = Progress(TextColumn(f"{self.label}" + "{task.description}"), BarColumn(), *count,
                            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
        self.bar.start()
        self.task = self.bar.add_task(self._desc(), total=self.total, completed=self.completed)

    def _desc(self) -> str:
        return f": {self.stage}" if self.stage else ""

    def update(self, completed: float | None = None, stage: str | None = None) -> None:
        if completed is not None:
            self.completed = float(completed)
        if stage is not None:
            self.stage = stage
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.t0
        if self.tty:
            if self.bar is None and elapsed > self.delay_s:
                self._start_bar()
            if self.bar is not None:
                self.bar.update(self.task, completed=self.completed, description=self._desc())
            return
        if elapsed <= self.delay_s:
            return
        quarter = int(4 * self.completed / self.total) if self.total > 0 else 0
        if self.stage != self._said_stage or quarter > self._quarter:
            done = (f" {self.completed:.0f}/{self.total:.0f}" if self.total != 1.0
                    else f" {self.completed:.0%}")
            if self.stage and self.completed == 0:
                done = ""   # a stage without a measure of progress (calibrate's timings)
            stage = f" {self.stage}" if self.stage else ""
            print(f"{self.label}:{stage}{done} ({elapsed:.0f} s)", file=sys.stderr, flush=True)
            self._said_stage, self._quarter = self.stage, quarter

    def __call__(self, completed: float | None = None, stage: str | None = None) -> None:
        self.update(completed, stage)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def simulate_with_bar(sc, design, **kw):
    """simulator.simulate with progress on stderr."""
    from simulator import simulate
    with Bar(f"simulating {sc.name}") as bar:
        return simulate(sc, design, progress=lambda f: bar.update(f, stage="simulated time"), **kw)
