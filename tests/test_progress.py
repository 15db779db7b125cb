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


def test_simulate_progress_reaches_stderr_and_quiet_removes_it(cli, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_S", 0.0)   # a short run: show progress at once
    loud = cli("simulate", "spam", "--horizon", "20m", "--json")
    assert "simulating spam: simulated time 100%" in loud.stderr
    quiet = cli("simulate", "spam", "--horizon", "20m", "--json", "--quiet")
    assert quiet.exit_code == 0 and "simulating" not in quiet.stderr
    import json
    json.loads(quiet.stdout)


def _tiny_log(path, n=20_000, span_s=6 * 3600):
    import numpy as np
    rng = np.random.default_rng(1)
    t = 1.7e9 + np.sort(rng.uniform(0, span_s, n))
    keys = rng.zipf(1.5, n) % 5000
    path.write_text("time,key\n" + "".join(f"{a:.3f},{k}\n" for a, k in zip(t, keys)))
    return path


# each long command, at a size that runs in seconds; {tmp} is the test's directory
COMMANDS = {
    "compare": (["compare", "{mini}", "--simulate", "--horizon", "10m", "--json"], "simulating mini:"),
    "sweep": (["sweep", "{mini}", "--vary", "traffic.rate=10/s,20/s", "--horizon", "10m", "--jobs", "1",
               "--out", "{tmp}/s.csv"], "sweep: 2/2"),
    "capacity": (["capacity", "{mini}", "--no-simulate", "--json"], "capacity: static: model"),
    "fit": (["fit", "{tmp}/log.csv", "-o", "{tmp}/fitted.yaml", "--json"], "fit: reading: 100%"),
    "calibrate": (["calibrate", "spam", "--estimator", "sklearn.linear_model.SGDClassifier", "--rows", "500",
                   "--reps", "200", "--json"], "calibrate: timing"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_long_commands_show_progress_on_stderr_only_and_quiet_hides_it(cli, write, tmp_path, monkeypatch, name):
    """Off a terminal a line per stage reaches stderr (stdout keeps only the result, a JSON
    document when asked); --quiet removes every progress line."""
    import json
    from tests.conftest import SPAM_MIN
    monkeypatch.setattr(progress, "DELAY_S", 0.0)   # these runs are short: show progress at once
    mini = write(SPAM_MIN, "mini.yaml")
    _tiny_log(tmp_path / "log.csv")
    args, line = COMMANDS[name]
    args = [a.format(mini=mini, tmp=tmp_path) for a in args]
    loud = cli(*args)
    assert loud.exit_code == 0, loud.output
    assert line in loud.stderr
    if "--json" in args:
        json.loads(loud.stdout)   # nothing but the document on stdout
    if name == "sweep":
        (tmp_path / "s.csv").unlink()
        args.append("--fresh")
    quiet = cli(*args, "--quiet")
    assert quiet.exit_code == 0, quiet.output
    import re
    # a progress line ends with the time so far, "(3 s)"; compare also names each scenario
    assert not [ln for ln in quiet.stderr.splitlines() if re.search(r"\(\d+ s\)$", ln) or "simulating" in ln]


def test_capacity_progress_covers_each_design_then_ends():
    from mlarch.capacity import capacity
    seen = []
    capacity("ad-conversion", [], simulate=False, progress=lambda f, stage: seen.append((round(f, 3), stage)))
    assert [s.split(":")[0] for _, s in seen] == ["static", "dynamic", "hybrid", "done"]
    assert seen[0][0] == 0.0 and seen[-1][0] == 1.0


def test_a_quiet_sweep_prints_no_header_but_says_what_it_skipped(cli, write, tmp_path):
    from tests.conftest import SPAM_MIN
    mini = write(SPAM_MIN, "mini.yaml")
    args = ["sweep", mini, "--vary", "traffic.rate=10/s,20/s", "--horizon", "10m", "--jobs", "1",
            "--out", tmp_path / "s.csv", "--quiet"]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    assert [ln for ln in first.stderr.splitlines() if ln.startswith("sweep")] == []
    again = cli(*args)      # both rows stored: nothing runs, and it says so
    assert again.exit_code == 0, again.output
    assert [ln.split(" in ")[0] for ln in again.stderr.splitlines() if ln.startswith("sweep")] == \
        ["sweep: 2 already done"]
