"""Drawing the next chunk's random numbers on a second thread (simulate(threads=2)) gives the
same run, bit for bit, as one thread: every serving mode, warm-up slices (where a guessed chunk
is undone), batching, autoscaling and sudden shifts."""
import numpy as np
import pytest

from scenarios import load_scenario
from advisor import design_for
from scenarios.design import Design
from simulator import simulate, window


def _metrics(sc, design, threads, **kw):
    r = simulate(sc, design, seed=7, threads=threads, **kw)
    m = dict(r.metrics)
    m.pop("wall_s")
    return m, np.array([list(x.values()) for x in r.timeseries], float)


CASES = {
    "dynamic": (["traffic.rate=200/s", "horizon=2h", "data.batch_interval=10m"],
                Design("periodic", 1800.0, "dynamic", None, 4), {}),
    "hybrid": (["traffic.rate=200/s", "horizon=2h", "traffic.cardinality=1e6", "traffic.peakedness.zipf_s=1.1"],
               Design("continuous", None, "hybrid", 5000, 4), {}),
    "static": (["traffic.rate=200/s", "horizon=2h", "traffic.cardinality=1e5"],
               Design("static", None, "static", 20_000, 0), {}),
    # stratified slices: time jumps between warm-up pieces, so guesses past a span's end miss
    "slices": (["traffic.rate=400/s", "horizon=1d"], Design("static", None, "dynamic", None, 6),
               {"request_budget": 2e6}),
    "shifts": (["traffic.rate=200/s", "horizon=3h", "data.shifts.every=1h", "data.shifts.magnitude=0.5"],
               Design("periodic", 3600.0, "dynamic", None, 4), {}),
    # the advisor's design for these: batches (no service times drawn), an autoscaled pool
    "batching": (["traffic.rate=1000/s", "horizon=30m", "model.inference_time={distribution: deterministic, value: 20ms}",
                  "model.batch_time={fixed: 20ms, per_item: 0.5ms}", "serving.batching={max_batch: 32, timeout: 10ms}",
                  "slo.latency_p99=150ms"], None, {}),
    "autoscale": (["traffic.rate=30/s", "horizon=6h", "model.inference_time={distribution: exponential, mean: 100ms}",
                   "slo.latency_p99=500ms", "serving.autoscale={cold_start: 30s}"], None, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_threads_give_the_same_run_as_one(case, monkeypatch):
    sets, design, kw = CASES[case]
    sc = load_scenario("spam", sets)
    design = design or design_for(sc)
    # small chunks: many per span, so chunks are drawn ahead within spans and guessed past them
    monkeypatch.setattr(window, "CHUNK_REQUESTS", 1 << 13)
    counts = {"ahead": 0, "undone": 0}
    take = window.DataPlane._take

    def counting_take(self, t0, t1, record):
        if self._ahead:
            counts["ahead"] += 1
            counts["undone"] += self._ahead[0][1] != (t0, t1, record)
        return take(self, t0, t1, record)
    monkeypatch.setattr(window.DataPlane, "_take", counting_take)
    one = _metrics(sc, design, 1, **kw)
    assert counts["ahead"] == 0
    two = _metrics(sc, design, 2, **kw)
    assert counts["ahead"] > 0
    if case in ("slices", "dynamic"):
        assert counts["undone"] > 0          # the rewind path ran, and changed nothing
    if case == "batching":
        assert one[0]["batching"]["batches"] > 0
    if case == "autoscale":
        assert one[0]["autoscale"]["scale_ups"] > 0
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])


def test_threads_default_follows_the_environment(monkeypatch):
    monkeypatch.setenv(window.THREADS_ENV, "1")
    assert window.threads_default() == 1
    monkeypatch.delenv(window.THREADS_ENV)
    monkeypatch.setattr(window.os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert window.threads_default() == 1
    monkeypatch.setattr(window.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert window.threads_default() == 2


def test_simulate_threads_option_gives_the_same_json(cli):
    import json
    outs = []
    for n in ("1", "2"):
        res = cli("simulate", "spam", "--horizon", "20m", "--threads", n, "--json", "--quiet")
        assert res.exit_code == 0, res.output
        m = json.loads(res.stdout)
        m.pop("wall_s")
        outs.append(m)
    assert outs[0] == outs[1] and outs[0]["requests"] > 100_000
    res = cli("simulate", "spam", "--horizon", "20m", "--threads", "3")
    assert res.exit_code == 2


@pytest.mark.parametrize("interval", ["20m", "7m", "1h"])
def test_feed_times_are_the_times_the_feed_process_wakes_at(interval):
    # the batches drawn ahead are drawn for these times; SimPy's clock must agree bit for bit,
    # and the last batch is the last before the horizon
    import simpy
    from scenarios.units import parse_duration_s
    from simulator.ingest import feed_times
    B, horizon = parse_duration_s(interval), 86400.0
    env, woke = simpy.Environment(), []

    def feed(env):
        k = 1
        while k * B < horizon - 1e-9:
            yield env.timeout(k * B - env.now)
            woke.append((k, env.now))
            k += 1
    env.process(feed(env))
    env.run()
    assert list(feed_times(B, horizon)) == woke and len(woke) == int(horizon // B) - (horizon % B == 0)


def test_batches_drawn_ahead_are_the_batches_of_one_thread():
    # a static model's run draws batches only for the batch hook (simulate --log): drawn ahead
    # with two threads, they are the same batches, in the same order
    sc = load_scenario("spam", ["traffic.rate=50/s", "horizon=3h", "data.batch_interval=7m"])
    seen = {1: [], 2: []}
    for n in (1, 2):
        simulate(sc, Design("static", None, "dynamic", None, 4), seed=3, threads=n,
                 on_batches=lambda b, n=n: seen[n].append((b.index, b.arrived_s, b.columns["y"].tobytes(),
                                                            b.columns["f3"].tobytes())))
    assert len(seen[1]) == 25 and seen[1] == seen[2]


@pytest.mark.parametrize("room", [True, False])
def test_batches_ahead_are_the_source_batches_with_or_without_room(room):
    # without room (memory), a batch is drawn when taken, in turn: the same batches either way
    from concurrent.futures import ThreadPoolExecutor
    from simulator.engine import Simulation
    from simulator.ingest import BatchesAhead
    sims = [Simulation(load_scenario("spam", ["traffic.rate=50/s", "horizon=1h"]), Design("static", None, "dynamic", None, 4),
                       3, 3600.0) for _ in range(2)]
    direct = [sims[0].source.batch(k, 600.0 * k, max_rows=100) for k in range(1, 6)]
    asked = []
    with ThreadPoolExecutor(1) as ex:
        ahead = BatchesAhead(sims[1].source, 600.0, 3600.0, 100, ex.submit, lambda: asked.append(1) or room)
        got = [ahead.take(k, 600.0 * k) for k in range(1, 6)]
    assert len(asked) == 5 and ahead.next is None
    assert [(b.index, b.arrived_s, b.columns["y"].tobytes()) for b in got] == \
        [(b.index, b.arrived_s, b.columns["y"].tobytes()) for b in direct]


def test_batches_ahead_refuses_a_batch_out_of_turn():
    from concurrent.futures import ThreadPoolExecutor
    from simulator.engine import Simulation
    from simulator.ingest import BatchesAhead
    sim = Simulation(
        load_scenario("spam", ["traffic.rate=50/s", "horizon=1h"]), Design("static", None, "dynamic", None, 4), 3, 3600.0)
    with ThreadPoolExecutor(1) as ex:
        ahead = BatchesAhead(sim.source, 600.0, 3600.0, 100, ex.submit)
        assert ahead.take(1, 600.0).arrived_s == 600.0
        with pytest.raises(AssertionError, match="batch 3"):
            ahead.take(3, 1800.0)
        ahead.close()
