"""Fuzz the scenario language and the CLI as a hostile user would (issue 9).

Hypothesis mutates the bundled presets — deletes and renames keys, swaps value types,
writes extreme numbers and odd units, unicode, deep nesting, YAML aliases, broken text —
and draws `--set` expressions, then runs `mlarch advise` (and now and then a 2-minute
`mlarch simulate`) in-process. Every outcome must be one of:

- exit 0 with one strict JSON document on stdout whose numbers are all finite;
- exit 2 with exactly one line on stderr (`mlarch: error: ...`);

never a traceback, another exit code, a numpy RuntimeWarning, or a run over the time limit
(20 s of CPU for advise, 60 s for a 2-minute simulate; and five times that in wall time, for
a run blocked rather than busy).

The default run draws MLARCH_FUZZ_EXAMPLES examples (100, derandomized so the suite is
repeatable); `make fuzz` draws 10,000 fresh ones and prints the outcome counts.
"""
from __future__ import annotations

import json
import math
import os
import resource
import signal
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlarch.cli import app
from scenarios import preset_names, preset_text

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = int(os.environ.get("MLARCH_FUZZ_EXAMPLES", "100"))   # CI time: ~100 s
RANDOM = bool(os.environ.get("MLARCH_FUZZ_RANDOM"))     # make fuzz: fresh examples every run
SIMULATE_SHARE = 0.03                                    # most examples exercise the language via advise
LIMIT_S = {"advise": 20, "simulate": 60}                 # CPU seconds
WALL_FACTOR = 5                                          # wall-clock limit: blocked, not slow

PRESETS = {n: yaml.safe_load(preset_text(n)) for n in preset_names()}
# the bundled example and a preset with every serving operation switched on, so mutations reach
# the serving-operations, monitoring, shifts and triggered-training parts of the language too
PRESETS["monthly-shifts"] = yaml.safe_load((ROOT / "examples" / "monthly-shifts.yaml").read_text())
_BATCHED = {**PRESETS["spam"]["model"], "batch_time": {"fixed": "5ms", "per_item": "1ms"}}
PRESETS["spam-autoscaled"] = {**PRESETS["spam"],
                              "serving": {**PRESETS["spam"].get("serving", {}),
                                          "autoscale": {"target_utilization": 0.6, "cold_start": "60s"}}}
PRESETS["spam-failures"] = {**PRESETS["spam"], "model": _BATCHED,
                            "serving": {**PRESETS["spam"].get("serving", {}),
                                        "batching": {"max_batch": 8, "timeout": "2ms"},
                                        "failures": {"mtbf": "7d", "mttr": "10m"}}}
PRESETS["spam-rollout"] = {**PRESETS["spam"],
                           "serving": {**PRESETS["spam"].get("serving", {}),
                                       "rollout": {"strategy": "canary", "share": 0.2, "warmup": "30s"}}}

# fields a user may set, and a few that do not exist
FIELDS = ["horizon", "seed", "name", "description", "traffic.rate", "traffic.diurnal_amplitude",
          "traffic.cardinality", "traffic.peakedness", "traffic.peakedness.zipf_s",
          "traffic.peakedness.top_share", "traffic.peakedness.top_share.keys",
          "traffic.peakedness.top_share.traffic", "data.velocity", "data.concept_half_life",
          "data.label_delay", "data.label_noise", "data.features", "data.batch_interval", "data.faults",
          "model.inference_time", "model.inference_time.median", "model.inference_time.p99",
          "model.inference_time.value", "model.inference_time.mean", "model.inference_time.distribution",
          "model.train_time", "model.train_time.fixed", "model.train_time.per_million_examples",
          "model.training_window", "model.prediction_bytes", "serving.replicas", "serving.lookup_time",
          "serving.lookup_time.value", "serving.batch_workers", "slo.latency_p99", "slo.max_accuracy_loss",
          "costs.vcpu_hour", "costs.table_storage_per_gb_month", "costs.data_storage_per_gb_month",
          "architecture", "architecture.training", "architecture.retrain_every", "architecture.serving",
          "architecture.cache_top_k", "traffic.bogus", "data.faults.0", "data.faults.0.at", "x.y.z", "0",
          # the serving operations, monitoring and triggered-training language
          "serving.min_replicas", "serving.autoscale", "serving.autoscale.min", "serving.autoscale.max",
          "serving.autoscale.target_utilization", "serving.autoscale.cold_start",
          "serving.autoscale.scale_down_after", "serving.autoscale.interval", "serving.batching",
          "serving.batching.max_batch", "serving.batching.timeout", "model.batch_time.fixed",
          "model.batch_time.per_item", "serving.failures", "serving.failures.mtbf", "serving.failures.mttr",
          "serving.rollout", "serving.rollout.strategy", "serving.rollout.max_unavailable",
          "serving.rollout.share", "serving.rollout.warmup", "monitoring", "monitoring.window",
          "monitoring.alert_below", "monitoring.alert_drop", "architecture.trigger",
          "architecture.trigger.on", "architecture.trigger.new_examples", "architecture.trigger.min_interval",
          "data.shifts", "data.shifts.at", "data.shifts.magnitude", "model.estimator",
          "model.estimator.class", "model.estimator.params", "model.trainers", "slo.accuracy_confidence"]

NUMBERS = st.one_of(
    st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2, 0.5, 1e-9, 5e-324, 1e308, -1e308, 1e18, 1e19, 2**63, 2**64, 1e7, 1e-300]),
)
UNITS = st.sampled_from(["", "ms", "s", "sec", "m", "min", "M", "h", "H", "d", "w", "y", "us", "µs", "/s",
                         "/min", "/M", "/h", "/d", "/fortnight", "%", "KB", "MB", "GiB", "k", "B", "T", " s"])
ODD_TEXT = st.sampled_from(["", " ", "never", "unbounded", "all", "dynamic", "static", "hybrid", "periodic",
                            "continuous", "lognormal", "exponential", "deterministic", "５d", "٣h", "1e999",
                            "-0", "0x10", "1_000", "NaN", ".inf", "-.inf", "null", "~", "yes", "\u202e5s",
                            "5\u00a0s", "1e6/d", "2e7/d", "50/s", "150ms", "6h", "30d", "1e3", "5M", "10m",
                            "{a: 1}", "[1, 2]", "\x00", "\t", "'", '"', "&a", "*a", "!!python/object:os.system",
                            "a" * 300])
SCALARS = st.one_of(
    NUMBERS, ODD_TEXT, st.booleans(), st.none(),
    st.text(max_size=12),
    st.builds(lambda x, u: f"{x}{u}", NUMBERS, UNITS),
)


def _nest(value, depth: int):
    for k in range(depth):
        value = [value] if k % 2 else {"k": value}
    return value


VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["distribution", "median", "p99", "mean", "value", "at", "kind",
                                     "feature", "zipf_s", "keys", "traffic", "x"]), SCALARS, max_size=3),
    st.builds(_nest, SCALARS, st.integers(min_value=1, max_value=60)),
)


def _paths(obj, prefix=()):
    """Every path to a value in a nested mapping/list, down to 8 levels (a mutation may
    already have nested a value 1,000 deep)."""
    out = [prefix] if prefix else []
    if len(prefix) >= 8:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


@st.composite
def scenarios(draw):
    """(YAML text of a mutated preset, --set arguments)."""
    data = json.loads(json.dumps(PRESETS[draw(st.sampled_from(sorted(PRESETS)))]))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        key = path[-1]
        op = draw(st.sampled_from(["delete", "rename", "replace", "replace", "scale", "alias", "nest"]))
        if op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            new = draw(st.one_of(st.sampled_from([f"{key}s", str(key).upper(), f" {key}", f"{key}\u200b",
                                                  "<<", "", "0", "null"]), st.text(max_size=8)))
            parent[new] = parent.pop(key)
        elif op == "scale" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = parent[key] * draw(st.sampled_from([0, -1, 1e-300, 1e-9, 1e9, 1e300]))
        elif op == "alias":
            # the same object twice: yaml.dump writes an anchor and an alias
            other = draw(st.sampled_from(paths))
            parent[key] = _get(data, other) if other[: len(path)] != path else parent[key]
        elif op == "nest":
            parent[key] = _nest(parent[key], draw(st.integers(min_value=1, max_value=1000)))
        else:
            parent[key] = draw(VALUES)
    try:
        text = yaml.dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
    except (yaml.YAMLError, RecursionError, ValueError):
        text = "name: [unclosed\n"
    if draw(st.integers(min_value=0, max_value=9)) == 0:      # text-level damage
        cut = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "\t", ": :", "\x00", "- - -", "{", "&x y: *x",
                                                  "\n" + "  " * 40 + "deep: 1"])) + text[cut:]
    sets = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        value = draw(SCALARS)
        raw = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, float) or \
            math.isfinite(value) else str(value)
        sets += ["--set", f"{draw(st.sampled_from(FIELDS))}={raw}"]
    return text, sets


class Hang(BaseException):
    """Raised by SIGALRM: the command ran over its limit (a BaseException so no handler eats it)."""


def _alarm(signum, frame):
    raise Hang()


def _finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def _strict_json(text: str):
    def bad(name):
        raise ValueError(f"non-finite number {name} in JSON")
    return json.loads(text, parse_constant=bad)


OUTCOMES: Counter = Counter()
WORST = {"time_s": 0.0, "cpu_s": 0.0}
SEEN: set = set()   # digests of the inputs run: distinct inputs are counted, not assumed


def _digest(parts) -> str:
    import hashlib
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if os.environ.get("MLARCH_FUZZ_DIGESTS"):     # tests/run_fuzz.py counts distinct inputs across shards
        Path(os.environ["MLARCH_FUZZ_DIGESTS"]).write_text("".join(d + "\n" for d in sorted(SEEN)))
    print(f"\nfuzz: {sum(v for k, v in OUTCOMES.items() if k.startswith('exit'))} examples; "
          + ", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.items()))
          + f"; {len(SEEN)} distinct inputs (digest {_digest(sorted(SEEN))[:12]})"
          + f"; tracebacks {OUTCOMES['traceback']}; hangs {OUTCOMES['hang']}; "
            f"max time {WORST['time_s']:.1f} s; max CPU {WORST['cpu_s']:.1f} s; max RSS {rss_mb:.0f} MB")


# make fuzz reports the failing input as drawn: shrinking a 60 s simulate can take longer than the run
PHASES = (Phase.explicit, Phase.reuse, Phase.generate) if RANDOM else tuple(Phase)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
          suppress_health_check=list(HealthCheck), phases=PHASES)
@given(case=scenarios(), simulate=st.floats(min_value=0, max_value=1), use_file=st.booleans())
def test_fuzzed_input_is_answered_or_refused_in_one_line(tmp_path_factory, case, simulate, use_file):
    text, sets = case
    cmd = "simulate" if simulate < SIMULATE_SHARE else "advise"
    SEEN.add(_digest([cmd, text, *sets, str(use_file)]))
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    args = [cmd, str(path) if use_file or not sets else "spam", *sets, "--json"]
    if cmd == "simulate":
        args += ["--horizon", "2m"]
    # the limit is on CPU time (SIGPROF), so a machine shared with other work does not turn slow
    # into "hung"; a wall-clock alarm at WALL_FACTOR times the limit catches blocking waits
    old = signal.signal(signal.SIGALRM, _alarm), signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, LIMIT_S[cmd])
    signal.alarm(WALL_FACTOR * LIMIT_S[cmd])
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = CliRunner().invoke(app, args)
    except Hang:
        OUTCOMES["hang"] += 1
        pytest.fail(f"over {LIMIT_S[cmd]} s of CPU or {WALL_FACTOR * LIMIT_S[cmd]} s of wall time: "
                    f"mlarch {' '.join(args)}\n--- {path}\n{text}")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old[0])
        signal.signal(signal.SIGPROF, old[1])
    WORST["time_s"] = max(WORST["time_s"], time.perf_counter() - t0)
    WORST["cpu_s"] = max(WORST["cpu_s"], time.process_time() - c0)
    OUTCOMES[f"exit{res.exit_code}"] += 1
    where = f"mlarch {' '.join(args)}\n--- {path}\n{text}\n--- stderr\n{res.stderr}"
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        OUTCOMES["traceback"] += 1
        raise AssertionError(f"traceback ({type(res.exception).__name__}: {res.exception}): {where}") \
            from res.exception
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not runtime, f"RuntimeWarning {runtime[0].message} at {runtime[0].filename}:{runtime[0].lineno}: {where}"
    assert res.exit_code in (0, 2), where
    if res.exit_code == 2:
        lines = res.stderr.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("mlarch: error: "), where
    else:
        doc = _strict_json(res.stdout)
        assert _finite(doc), where
