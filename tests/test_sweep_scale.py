"""Sweeps that scale out and survive interruption: a Dask LocalCluster gives the serial CSV,
workers of another mlarch version are refused, an interrupted sweep resumes from its store,
and local workers never outlive a killed sweep."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from mlarch import sweep as sw
from scenarios import ScenarioError

FAST = ["--set", "traffic.rate=30/s", "--set", "model.training_window=6h", "--set", "horizon=2h"]
GRID = ["--vary", "traffic.rate=20/s,30/s", "--seeds", "2", "--horizon", "10m"]


def _serial_csv(cli, tmp_path):
    out = tmp_path / "serial.csv"
    res = cli("sweep", "spam", *FAST, *GRID, "--jobs", "1", "--out", out)
    assert res.exit_code == 0, res.stderr
    return pd.read_csv(out)


def test_sweep_on_a_local_dask_cluster_equals_serial_and_checks_versions(cli, tmp_path):
    distributed = pytest.importorskip("distributed")
    serial = _serial_csv(cli, tmp_path)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as lc:
        out = tmp_path / "dask.csv"
        res = cli("sweep", "spam", *FAST, *GRID, "--scheduler", lc.scheduler_address, "--out", out)
        assert res.exit_code == 0, res.stderr
        assert pd.read_csv(out).equals(serial)
        with distributed.Client(lc) as client:
            assert len(client.run(sw.worker_version)) == 2       # both workers took part in the check
            with pytest.raises(ScenarioError, match=r"runs mlarch \S+ but this is mlarch 9\.9\.9 \(2 of 2"):
                sw.check_worker_versions(client, expected="9.9.9")


def test_scheduler_local_n_starts_a_cluster(cli, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "local.csv"
    res = cli("sweep", "spam", *FAST, "--vary", "traffic.rate=20/s", "--horizon", "10m", "--scheduler", "local:2",
              "--out", out)
    assert res.exit_code == 0, res.stderr
    assert len(pd.read_csv(out)) == 1
    res = cli("sweep", "spam", *FAST, "--vary", "traffic.rate=20/s", "--scheduler", "local:two", "--out", out)
    assert res.exit_code == 2 and "local:N" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_interrupted_sweep_resumes_and_fresh_reruns(cli, tmp_path, monkeypatch):
    serial = _serial_csv(cli, tmp_path)
    out = tmp_path / "s.csv"
    args = ("sweep", "spam", *FAST, *GRID, "--jobs", "1", "--out", out)
    real, calls = sw.run_one, []

    def interrupted_after_three(*a, **kw):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(a)
        return real(*a, **kw)
    monkeypatch.setattr(sw, "run_one", interrupted_after_three)
    res = cli(*args)
    assert res.exit_code == 130 and not out.exists()
    assert len(list(sw.RunStore.beside(out).dir.glob("*.json"))) == 3

    def counted(*a, **kw):
        calls.append(a)
        return real(*a, **kw)
    calls.clear()
    monkeypatch.setattr(sw, "run_one", counted)
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    assert "3 already done" in res.stderr and len(calls) == 1
    assert pd.read_csv(out).equals(serial)
    calls.clear()
    res = cli(*args, "--fresh")
    assert res.exit_code == 0 and "already done" not in res.stderr and len(calls) == 4
    assert pd.read_csv(out).equals(serial)


def test_store_key_changes_with_scenario_seed_span_and_version(monkeypatch):
    base = sw.Run((("traffic.rate", "20/s"),), 7)
    key = sw.run_key("spam", (), base, 600.0)
    assert key == sw.run_key("spam", (), base, 600.0)
    assert key != sw.run_key("spam", (), sw.Run(base.point, 8), 600.0)
    assert key != sw.run_key("spam", (), base, 1200.0)
    assert key != sw.run_key("spam", ("slo.latency_p99=200ms",), base, 600.0)
    assert key != sw.run_key("spam", (), sw.Run((("traffic.rate", "21/s"),), 7), 600.0)
    import mlarch
    monkeypatch.setattr(mlarch, "__version__", "9.9.9")
    assert key != sw.run_key("spam", (), base, 600.0)


def _descendants(pid: int) -> dict[int, str]:
    """{pid: start time} of every live descendant of pid (from /proc)."""
    children: dict[int, list[int]] = {}
    start = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d))
            start[int(d)] = fields[19]
    out, todo = {}, [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out[c] = start[c]
            todo.append(c)
    return out


def _alive(pid: int, started: str) -> bool:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == started   # a zombie has exited; a new start time is another process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_parallel_sweep_leaves_no_worker_and_the_sweep_resumes(cli, tmp_path):
    out = tmp_path / "k.csv"
    args = ["sweep", "spam", *FAST, "--vary", "traffic.rate=20/s,25/s,30/s,35/s,40/s,45/s", "--horizon", "30m",
            "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "mlarch", *args, "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = sw.RunStore.beside(out).dir
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            seen.update(_descendants(proc.pid))
            if seen and store.is_dir() and any(store.glob("*.json")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed: make it longer"
        assert len(seen) >= 1, "no worker process was started"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p, s) for p, s in seen.items()):
        time.sleep(0.2)
    survivors = [p for p, s in seen.items() if _alive(p, s)]
    assert not survivors, f"processes outlived the killed sweep: {survivors}"
    done = len(list(store.glob("*.json")))
    res = cli(*args, "--jobs", "1")
    assert res.exit_code == 0, res.stderr
    assert f"{done} already done" in res.stderr and len(pd.read_csv(out)) == 6


def test_a_sweep_of_many_small_runs_loads_the_compiled_kernels_once_per_process(monkeypatch):
    # each run alone is below the size that repays loading the compiled kernels; together
    # (per process) they are above it: the serial sweep loads them before its first run, and
    # a grid too small stays in Python. A fresh process, so this one's state is left alone.
    pytest.importorskip("numba")
    code = """
import sys
from mlarch import sweep as sw
from simulator import kernels
kernels.JIT_MIN_REQUESTS = float(sys.argv[1])
seen = []
real = sw.run_one
def spy(*a, **kw):
    seen.append(kernels._loaded)
    return real(*a, **kw)
sw.run_one = spy
_, runs = sw.plan("spam", ["traffic.rate=30/s"], ["traffic.rate=20/s,30/s"], 1)
sw.run_grid("spam", ["traffic.rate=30/s"], runs, jobs=1, horizon_s=600.0)
print(seen, kernels.use_for(1.0))
"""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("MLARCH_JIT", None)
    # 20/s and 30/s over 10 min: 30,000 requests together, against a threshold of 20,000 or 40,000
    warm = subprocess.run([sys.executable, "-c", code, "20000"], capture_output=True, text=True, env=env, check=True)
    assert warm.stdout.split() == ["[True,", "True]", "True"]
    cold = subprocess.run([sys.executable, "-c", code, "40000"], capture_output=True, text=True, env=env, check=True)
    assert cold.stdout.split() == ["[False,", "False]", "False"]


LOCAL = r"""
import sys, threading
from mlarch import sweep as sw
if sys.argv[1] == "thread":      # a thread alive: forking is unsafe, so loky's workers are used
    threading.Thread(target=threading.Event().wait, daemon=True).start()
_, runs = sw.plan("spam", ["traffic.rate=30/s"], ["traffic.rate=20/s,30/s,40/s"], 2)
serial = sw.run_grid("spam", ["traffic.rate=30/s"], runs, jobs=1, horizon_s=600.0)
if sys.argv[2] == "started":
    sw.start_workers("spam", ["traffic.rate=30/s"], runs, 2, 600.0)
    ex = sw._started[1]
made, real = [], sw._workers
sw._workers = lambda *a: made.append(a) or real(*a)
seen = []
rows = sw.run_grid("spam", ["traffic.rate=30/s"], runs, jobs=2, horizon_s=600.0, progress=seen.append)
kind = "fork" if sys.argv[2] == "started" and type(ex).__module__.startswith("concurrent") else "other"
# the started workers are used, not started again
print(kind, rows == serial, sorted(seen) == list(range(1, 7)), sw._started, len(made) == (sys.argv[2] != "started"))
"""


@pytest.mark.parametrize("mode,expect", [("one", "fork"), ("thread", "other")])
def test_local_parallel_sweep_equals_serial_with_forked_or_loky_workers(mode, expect):
    # this process runs its share beside a worker process: forked (ready at once) when the
    # sweep started them from a one-thread process, loky's otherwise; the rows are the serial ones
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for started in ("started", "new"):
        out = subprocess.run([sys.executable, "-c", LOCAL, mode, started], capture_output=True, text=True, env=env,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        kind, same, progress, left, reused = out.stdout.split()
        assert (kind, same, progress, left, reused) == (expect if started == "started" else "other", "True", "True",
                                                        "None", "True")


WORKER_FAILS = r"""
import os
from mlarch import sweep as sw
parent, real = os.getpid(), sw.run_one
def run_one(*a, **kw):
    if os.getpid() != parent:
        raise ValueError("a run failed in the worker")
    return real(*a, **kw)
sw.run_one = run_one        # forked workers inherit it
_, runs = sw.plan("spam", ["traffic.rate=30/s"], ["traffic.rate=20/s,30/s,40/s,50/s"], 2)
sw.start_workers("spam", ["traffic.rate=30/s"], runs, 2, 600.0)
try:
    sw.run_grid("spam", ["traffic.rate=30/s"], runs, jobs=2, horizon_s=600.0)
except ValueError as e:
    print("raised:", e)
"""


def test_a_run_that_fails_in_a_worker_stops_the_sweep_with_its_error():
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", WORKER_FAILS], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "raised: a run failed in the worker"


def test_a_sweep_run_holds_blas_to_one_thread_in_the_advisor_too(monkeypatch):
    # after each of the advisor's small matrix products a second OpenBLAS thread would spin,
    # on the core --jobs gave another run: the whole run, not only simulate, has one thread
    import advisor
    import scipy.linalg  # noqa: F401  (both numpy's and scipy's OpenBLAS loaded)
    from threadpoolctl import threadpool_info, threadpool_limits
    seen = {}

    def spy(name, real):
        def f(*a, **k):
            seen[name] = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
            return real(*a, **k)
        return f
    monkeypatch.setattr(advisor, "design_for", spy("design_for", advisor.design_for))
    monkeypatch.setattr(advisor, "predict", spy("predict", advisor.predict))
    with threadpool_limits(limits=2, user_api="blas"):
        outside = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        sw.run_one("spam", (), sw.Run((("traffic.rate", "50/s"),), 1), horizon_s=60.0)
    assert outside and set(outside) == {2}     # else this test could not fail
    assert seen == {"design_for": [1] * len(outside), "predict": [1] * len(outside)}


BLAS_AT_EXIT = r"""
import atexit, sys
def report():
    import gc, numpy, threadpoolctl    # loaded after main() ran, as in a command that needs numpy
    # main() leaves the objects out of the interpreter's last collections (fast exit)
    print("frozen", gc.get_freeze_count() > 0)
    print(sorted({i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}))
atexit.register(report)
sys.argv = ["mlarch", "presets", "--json"]
from mlarch.cli import main
main()
"""


@pytest.mark.parametrize("env,expect", [({}, "[1]"), ({"OPENBLAS_NUM_THREADS": "2"}, "[2]")])
def test_the_command_holds_blas_to_one_thread_unless_the_environment_says_and_exits_fast(env, expect):
    if not env and (os.cpu_count() or 1) < 2:
        pytest.skip("OpenBLAS defaults to one thread on one CPU: the check could not fail here")
    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                            "BLIS_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", BLAS_AT_EXIT], capture_output=True, text=True, timeout=120,
                         env={**base, "PYTHONPATH": os.getcwd(), **env})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-2:] == ["frozen True", expect]


def test_parallel_runs_are_dispatched_longest_first_and_rows_keep_grid_order(monkeypatch):
    # LPT scheduling: the runs with the most requests start first, so workers finish together
    _, runs = sw.plan("spam", ["traffic.rate=30/s"], ["traffic.rate=20/s,60/s,40/s"], 2)
    seen = []

    def fake_local(jobs, args, warm, finished):
        for a in args:
            seen.append((a[3].point, a[3].seed))
            finished(a[0], {"k": a[0]})
    monkeypatch.setattr(sw, "_run_local", fake_local)
    rows = sw.run_grid("spam", ["traffic.rate=30/s"], runs, jobs=2, horizon_s=600.0)
    assert [p[0][1] for p, _ in seen] == ["60/s", "60/s", "40/s", "40/s", "20/s", "20/s"]
    assert [r["k"] for r in rows] == list(range(6))


def test_expected_requests_are_capped_by_the_request_budget_with_or_without_a_horizon():
    # run_one samples any span holding more than the budget in slices, --horizon or not: the
    # longest-first order and the kernel warm-up must count the requests it simulates
    from simulator.engine import DEFAULT_REQUEST_BUDGET
    from simulator.traffic import integrated_rate
    sc = sw.load_scenario("spam", ["traffic.rate=200/s"])
    full = integrated_rate(0.0, 86400.0, sc.traffic.rate, sc.traffic.diurnal_amplitude)
    assert full < DEFAULT_REQUEST_BUDGET
    assert sw._expected_requests("spam", (), (("traffic.rate", "200/s"),), 86400.0) == full
    for horizon_s in (86400.0, None):
        assert sw._expected_requests("spam", (), (("traffic.rate", "350/s"),), horizon_s) == DEFAULT_REQUEST_BUDGET


def test_the_sweep_csv_reads_back_as_its_rows_exactly():
    # written with the csv module (a sweep does not load pandas): columns in order of first
    # appearance, missing/None/NaN empty, floats to the last digit, text quoted where needed
    import io
    rows = [{"a": 1, "b": 0.1 + 0.2, "c": None, "d": True, "s": 'x,"y"'},
            {"a": 2, "b": 54.201120122263944, "e": float("nan"), "d": False, "s": "z"},
            {"a": 3, "b": 1000, "c": 2.5, "d": True, "s": "w"}]
    text = sw.csv_text(rows)
    assert text.splitlines()[:3] == ["a,b,c,d,s,e", '1,0.30000000000000004,,True,"x,""y""",',
                                     "2,54.201120122263944,,False,z,"]
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text)), pd.DataFrame(rows), check_exact=True)


def test_a_resumed_sweep_starts_workers_only_for_the_runs_left(cli, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(sw, "start_workers", lambda scenario, sets, runs, jobs, horizon_s: asked.append(len(runs)))
    out = tmp_path / "s.csv"
    args = ("sweep", "spam", *FAST, *GRID, "--jobs", "2", "--out", out)
    assert cli(*args).exit_code == 0
    store = sw.RunStore.beside(out).dir
    next(store.glob("*.json")).unlink()                  # one row lost: one run left
    assert cli(*args).exit_code == 0
    assert cli(*args, "--fresh").exit_code == 0
    assert asked == [4, 1, 4]
