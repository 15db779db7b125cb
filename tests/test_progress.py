"""Progress on stderr: one line per stage and quarter off a terminal, nothing when quiet."""
from __future__ import annotations

import pytest

from mlarch import progress


@pytest.fixture(autouse=True)
def _not_quiet(monkeypatch):
    monkeypatch.delenv("MLARCH_QUIET", raising=False)
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_lines_per_stage_and_quarter_off_a_terminal(capsys):
    with progress.Bar("work", delay_s=0.0) as bar:
        for k in range(101):
            bar.update(k / 100, stage="a" if k < 60 else "b")
    err = capsys.readouterr()
    assert err.out == ""                      # never on stdout (--json stays clean)
    lines = err.err.strip().split("\n")
    # stage a: its start (no measure yet), 25%, 50%; stage b from 60%: 60%, 75%, 100%
    assert [ln.split(" (")[0] for ln in lines] == [
        "work: a", "work: a 25%", "work: a 50%", "work: b 60%", "work: b 75%", "work: b 100%"]


def test_counts_are_shown_as_k_of_n(capsys):
    with progress.Bar("sweep", total=8, delay_s=0.0) as bar:
        for k in range(9):
            bar.update(k)
    lines = capsys.readouterr().err.strip().split("\n")
    assert [ln.split(" (")[0] for ln in lines] == ["sweep: 0/8", "sweep: 2/8", "sweep: 4/8", "sweep: 6/8", "sweep: 8/8"]


def test_quick_work_says_nothing(capsys):
    with progress.Bar("work", delay_s=60.0) as bar:
        for k in range(11):
            bar.update(k / 10)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("how", ["flag", "env"])
def test_quiet_says_nothing(capsys, monkeypatch, how):
    if how == "flag":
        progress.set_quiet(True)
    else:
        monkeypatch.setenv("MLARCH_QUIET", "1")
    with progress.Bar("work", delay_s=0.0) as bar:
        bar.update(0.5, stage="x")
        bar.update(1.0)
    assert capsys.readouterr().err == ""


def test_simulate_progress_reaches_stderr_and_quiet_removes_it(cli):
    loud = cli("simulate", "spam", "--horizon", "6h", "--json")
    assert "simulating spam:" in loud.stderr   # 6 h of spam takes several seconds: past the 1 s delay
    quiet = cli("simulate", "spam", "--horizon", "6h", "--json", "--quiet")
    assert quiet.exit_code == 0 and "simulating" not in quiet.stderr
    import json
    json.loads(quiet.stdout)
