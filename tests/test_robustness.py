"""Issue 9: no traceback, hang or blow-up on any input or fault; outputs checked before work.

One test (or a parametrised family) per failure class of the issue, each reproducing the
original failure. The fuzz suite (test_fuzz.py) covers the space between them."""
from __future__ import annotations

import errno
import json
import os
import stat
import sys
import warnings
from pathlib import Path

import pytest

from scenarios import ScenarioError, load_scenario, units
from scenarios import loader

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def _one_line_error(res) -> str:
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr, res.exception)
    lines = res.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("mlarch: error: "), res.stderr
    return lines[0]


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if a simulation starts: the outputs must be refused before any work."""
    from simulator import engine

    def boom(self):
        raise AssertionError("a simulation started before the output was checked")
    monkeypatch.setattr(engine.Simulation, "run", boom)


# ------------------------------------------------------------ 1 and 13: outputs

def _output_commands(target: Path):
    """Every command that writes, pointed at `target` (a path that cannot be written)."""
    return [
        ("simulate", "spam", "--horizon", "1m", "--out", target / "run"),
        ("sweep", "spam", "--vary", "traffic.rate=1/s", "--horizon", "1m", "--jobs", "1", "--out", target / "s.csv"),
        ("report", "spam", "-o", target / "r.html"),
        ("compare", "spam", "--simulate", "--horizon", "1m", "--out", target / "cmp"),
        ("init", target / "s.yaml"),
    ]


@pytest.mark.parametrize("k", range(5))
def test_missing_parent_fails_before_any_work(cli, tmp_path, no_simulation, k):
    line = _one_line_error(cli(*_output_commands(tmp_path / "nope")[k]))
    assert "does not exist" in line and "nope" in line


@pytest.mark.parametrize("k", range(5))
def test_parent_that_is_a_file_fails_before_any_work(cli, tmp_path, no_simulation, k):
    (tmp_path / "f").write_text("x")
    line = _one_line_error(cli(*_output_commands(tmp_path / "f")[k]))
    assert "is not a directory" in line


@linux_only
@pytest.mark.parametrize("k", range(5))
def test_unwritable_directory_fails_before_any_work(cli, no_simulation, k):
    # /proc refuses new files even for root (a chmod-ed directory would not stop root)
    line = _one_line_error(cli(*_output_commands(Path("/proc"))[k]))
    assert "cannot write in /proc" in line


def test_full_disk_fails_before_any_work(cli, tmp_path, monkeypatch, no_simulation):
    from mlarch import files
    real = os.statvfs

    class Full:
        def __init__(self, st):
            self.f_frsize, self.f_bavail = st.f_frsize, 3
    monkeypatch.setattr(files.os, "statvfs", lambda p: Full(real(p)))
    line = _one_line_error(cli("simulate", "spam", "--horizon", "1m", "--out", tmp_path / "run"))
    assert "bytes free" in line


def test_disk_full_while_writing_leaves_nothing(cli, tmp_path, monkeypatch):
    from mlarch import files

    def enospc(fd, raw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(files, "_write_all", enospc)
    out = tmp_path / "run"
    line = _one_line_error(cli("simulate", "spam", "--horizon", "1m", "--set", "traffic.rate=5/s", "--out", out, "-q"))
    assert "No space left" in line
    assert list(tmp_path.iterdir()) == []       # no run folder, no temporary sibling
    line = _one_line_error(cli("init", tmp_path / "s.yaml"))
    assert list(tmp_path.iterdir()) == []


def test_out_naming_a_directory_for_a_file_output(cli, tmp_path, no_simulation):
    for args in (("sweep", "spam", "--vary", "traffic.rate=1/s", "--out", tmp_path),
                 ("report", "spam", "-o", tmp_path)):
        assert "is a directory" in _one_line_error(cli(*args))


def test_run_directory_not_mixed_with_stale_files(cli, tmp_path):
    out = tmp_path / "run"
    fast = ("simulate", "spam", "--horizon", "1m", "--set", "traffic.rate=5/s", "--out", out)
    assert cli(*fast).exit_code == 0
    (out / "stale.png").write_text("old")
    assert "--force" in _one_line_error(cli(*fast))           # refused: would mix old and new
    assert (out / "stale.png").exists()
    assert cli(*fast, "--force").exit_code == 0                # replaced whole
    assert sorted(p.name for p in out.iterdir()) == ["events.json", "latency_hist.csv", "metrics.json",
                                                     "timeseries.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]     # no temporary siblings left


def test_force_never_replaces_the_working_directory(cli, tmp_path, monkeypatch, no_simulation):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").write_text("x")
    assert "refusing" in _one_line_error(cli("simulate", "spam", "--horizon", "1m", "--out", ".", "--force"))
    assert (tmp_path / "keep").exists()


def test_outputs_get_the_umask_mode(cli, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert cli("simulate", "spam", "--horizon", "1m", "--set", "traffic.rate=5/s", "--out", out).exit_code == 0
        assert cli("init", tmp_path / "s.yaml").exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "metrics.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "s.yaml").stat().st_mode) == 0o644


# ------------------------------------------------------------ 3: tiny durations

@pytest.mark.parametrize("cmd,sets,field", [
    ("advise", ["data.batch_interval=5e-324"], "data.batch_interval"),
    ("advise", ["architecture.training=periodic", "architecture.retrain_every=5e-324"], "architecture.retrain_every"),
    ("simulate", ["model.training_window=5e-324"], "model.training_window"),
    ("advise", ["data.concept_half_life=1e-300"], "data.concept_half_life"),
    ("advise", ["model.inference_time={distribution: exponential, mean: 5e-324}"], "model.inference_time.mean"),
])
def test_tiny_durations_are_refused_naming_the_bound(cli, cmd, sets, field):
    args = [cmd, "spam"] + [x for s in sets for x in ("--set", s)] + (["--horizon", "1m"] if cmd == "simulate" else [])
    line = _one_line_error(cli(*args))
    assert f"{field}: must be at least " in line


def test_retrain_more_often_than_data_arrives_is_refused(cli):
    # was 46 s of advisor work for voice-to-text retrained every second
    line = _one_line_error(cli("advise", "voice-to-text", "--set", "architecture.training=periodic",
                               "--set", "architecture.retrain_every=1s"))
    assert "architecture.retrain_every" in line and "data.batch_interval (6h)" in line


# ------------------------------------------------------------ 4: nesting

def test_deeply_nested_yaml_is_one_line(cli, write):
    line = _one_line_error(cli("advise", write("a: " + "[" * 1000 + "]" * 1000 + "\n")))
    assert ":1: nested more than" in line


def test_an_alias_that_refers_to_itself_is_one_line(cli, write):
    """Shallow text, infinite graph: `traffic: &a {rate: *a}` (found by make fuzz)."""
    line = _one_line_error(cli("advise", write("name: x\ntraffic: &a\n  rate: *a\n")))
    assert ":2: traffic.rate: nested more than" in line


def test_deeply_nested_set_value_is_one_line(cli):
    line = _one_line_error(cli("advise", "spam", "--set", "traffic.rate=" + "[" * 500 + "]" * 500))
    assert "traffic.rate" in line and "nested" in line


# ------------------------------------------------------------ 5: cost guards

def test_cost_guard_counts_data_batches_not_only_requests(cli, no_simulation):
    # the bytes the batches imply: a month of one-second batch summaries
    # was > 7 GB RSS: a month of history in one-second batches
    line = _one_line_error(cli("simulate", "voice-to-text", "--set", "data.batch_interval=1s", "--horizon", "2m"))
    assert "2.71M data batches" in line and "limit 1.5 GB" in line and "--set data.batch_interval=10s" in line


def test_cost_guard_counts_fit_work_of_continuous_training():
    from advisor import design_for
    from simulator import TooLarge
    from simulator.engine import check_size
    sc = load_scenario("spam", ["architecture.training=continuous", "data.batch_interval=1s", "horizon=7d"])
    with pytest.raises(TooLarge, match="training fits|data batches"):
        check_size(sc, design_for(sc), sc.horizon)


def test_a_year_at_a_low_rate_is_within_budget():
    # was > 90 s for 315k requests: 8,760 hourly report windows, each a data-plane step
    from advisor import design_for
    from simulator.engine import CONTROL_BUDGET_S, control_cost
    sc = load_scenario("ad-conversion", ["horizon=365d", "traffic.rate=0.01/s"])
    cost = control_cost(sc, design_for(sc), sc.horizon)
    assert cost["windows"] < 1000 and cost["seconds"] < CONTROL_BUDGET_S


# ------------------------------------------------------------ 6: special files

@linux_only
def test_fifo_is_refused_without_blocking(cli, tmp_path):
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _one_line_error(cli("advise", fifo))


@linux_only
def test_symlink_to_dev_zero_is_refused(cli, tmp_path):
    link = tmp_path / "s.yaml"
    link.symlink_to("/dev/zero")
    assert "not a regular file" in _one_line_error(cli("advise", link))
    assert "not a regular file" in _one_line_error(cli("plot", link))


@linux_only
def test_byte_cap_does_not_trust_stat(monkeypatch):
    # /proc files are regular files whose stat size is 0 whatever they hold
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(ScenarioError, match="larger than 10 bytes"):
        loader.read_regular_file(Path("/proc/self/status"), 10)


def test_oversized_file_is_refused(cli, write):
    big = write("name: x\n" + "#" * loader.MAX_FILE_BYTES)
    assert "larger than" in _one_line_error(cli("advise", big))


# ------------------------------------------------------------ 9: impossible numbers (simulator side)

def test_a_run_without_requests_reports_null_not_zero():
    from advisor import design_for
    from mlarch import render
    from simulator import simulate
    sc = load_scenario("spam", ["traffic.rate=1e-6/s", "horizon=1m"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        m = simulate(sc, design_for(sc)).metrics
    assert m["requests"] == 0
    assert m["latency_ms"]["p99"] is None and m["latency_ms"]["max"] is None
    assert m["accuracy"]["served"] is None and m["cache_hit_ratio"] is None
    assert m["notes"] and "no requests" in m["notes"][0]
    json.loads(render.dumps(m), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_simulate_text_output_with_no_requests(cli):
    res = cli("simulate", "spam", "--set", "traffic.rate=1e-6/s", "--horizon", "1m")
    assert res.exit_code == 0, res.stderr
    assert "nan" not in res.stdout and "no requests" in res.stdout


# ------------------------------------------------------------ 10: report with an empty retrain grid

def test_report_skips_an_empty_retrain_grid_and_says_so(cli, tmp_path):
    from mlarch.report import retrain_grid
    assert retrain_grid(load_scenario("spam", ["horizon=1h"]), None) == []
    out = tmp_path / "r.html"
    res = cli("report", "spam", "--set", "horizon=1h", "--set", "traffic.rate=2/s", "--jobs", "1", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "--vary" not in res.stderr and "No retrain-interval trade-off" in out.read_text()


# ------------------------------------------------------------ 11: messages in the user's terms

@pytest.mark.parametrize("sets,expect", [
    (["data.concept_half_life=.inf"], "--set data.concept_half_life=.inf: data.concept_half_life: '.inf' is not a finite number"),
    (["model.train_time=3"], "model.train_time: expected a section of fields (fixed, per_million_examples)"),
    (["data.faults=3"], "data.faults: expected a list (got 3)"),
    (["horizon=400d"], "horizon: must be at most 366d (got '400d')"),
    (["traffic.rate=1e9/s"], "traffic.rate: must be at most 1e+07/s"),
    (["model.inference_time.value=5ms"], "model.inference_time.value: unknown key 'value' for distribution: lognormal"),
])
def test_messages_name_the_users_field_and_value(cli, sets, expect):
    line = _one_line_error(cli("advise", "spam", *[x for s in sets for x in ("--set", s)]))
    assert expect in line
    for internal in (" v:", "instance of", "valid tuple", "valid dictionary", "lognormal: unknown", "31622400"):
        assert internal not in line


def test_horizon_flag_errors_name_the_flag(cli, no_simulation):
    line = _one_line_error(cli("simulate", "spam", "--horizon", "400d"))
    assert line == "mlarch: error: --horizon 400d: must be more than 0 and at most 366d"


def test_plot_of_a_yaml_file_is_one_plain_line(cli, write):
    line = _one_line_error(cli("plot", write("a: [1, 2\n  b: {\n", name="my.yaml")))
    assert "\\n" not in line and "Error tokenizing" not in line and "my.yaml" in line


# ------------------------------------------------------------ 12: units

def test_minutes_and_millions_have_one_reading():
    assert units.parse_duration_s("5m") == units.parse_duration_s("5min") == 300
    with pytest.raises(ValueError, match="M means millions; write m or min"):
        units.parse_duration_s("5M")
    with pytest.raises(ValueError, match="M means millions"):
        units.parse_rate_per_s("5/M")
    assert units.parse_count("5M") == 5_000_000 and units.parse_count("2.5k") == 2500


@pytest.mark.parametrize("fn,text", [(units.parse_duration_s, "５d"), (units.parse_rate_per_s, "٣/s"),
                                     (units.parse_count, "１０"), (units.parse_fraction, "５%"),
                                     (units.parse_fraction, "０.5"), (units.parse_size_bytes, "５MB")])
def test_non_ascii_digits_are_refused(fn, text):
    with pytest.raises(ValueError, match="non-ASCII digit|not a"):
        fn(text)


# ------------------------------------------------------------ usage errors from the parser

@pytest.mark.parametrize("argv,needle", [
    (["advise", "spam", "--bogus"], "No such option: --bogus"),
    (["advise"], "Missing argument"),
    (["frob"], "No such command 'frob'"),
    (["simulate", "spam", "--requests", "abc"], "--requests"),
])
def test_usage_errors_are_one_line(argv, needle):
    """click prints usage, a blank line and the error; the console script prints one line."""
    import subprocess
    res = subprocess.run([sys.executable, "-m", "mlarch", *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res
    lines = res.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and needle in lines[0] and "error:" in lines[0], res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("cmd,usage", [("init", "FILE"), ("advise", "SCENARIO"), ("compare", "SCENARIO..."),
                                       ("plot", "[INPUT]"), ("fit", "LOG..."), ("calibrate", "SCENARIO")])
def test_usage_metavars_are_plain(cli, cmd, usage):
    first = cli(cmd, "--help").stdout.split("\n")[0]
    assert first.endswith(f" {cmd} [OPTIONS] {usage}"), first   # CliRunner names the program "root"


@pytest.mark.parametrize("command", ["init", "advise", "simulate", "compare", "sweep", "plot", "report",
                                     "selfcheck", "fit", "calibrate", "capacity"])
def test_help_names_values_plainly(cli, command):
    """`--horizon DURATION`, `--seed N`, `SCENARIO`: never typer's `<str>`, `<int range>` or
    `<path>` type names, nor braces around required arguments."""
    import re
    res = cli(command, "--help")
    assert res.exit_code == 0
    assert not re.search(r"<[a-z][a-z ]*>|\{[a-z_]+\}", res.stdout), res.stdout
