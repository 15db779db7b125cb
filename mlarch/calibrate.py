"""`mlarch calibrate`: measure a real estimator on this machine and write the figures into the
scenario, so that `model.inference_time`, `model.train_time`, `model.batch_predict_time` and
`model.update_time` are measurements rather than guesses, and `model.estimator` names the
estimator the simulator then trains and serves (simulator.estimator).

Measured on synthetic rows of the scenario's feature width (standard normal, labels from a
random linear concept with the scenario's label noise), on one CPU core (BLAS and OpenMP
limited to one thread), with warm-up, by time.perf_counter_ns:

- single-row `predict` latency, many repetitions → lognormal by maximum likelihood
  (μ = mean ln t, σ = sd ln t): median e^μ, p99 e^(μ + 2.326σ); the fit is judged by the
  Kolmogorov–Smirnov distance of ln t to that normal and by its p99 against the empirical one;
- batch `predict` cost over b = 1…10⁴ rows → T(b) = t₀ + t₁·b by least squares weighted by
  1/T² (relative errors, so the small batches count) → model.batch_predict_time;
- `fit` time against the number of examples (several sizes, median of repeats) → least
  squares T(n) = a + b·n → model.train_time {fixed: a, per_million_examples: 10⁶·b};
- `partial_fit` time against the batch size, likewise → model.update_time, and its value at
  the scenario's batch (data.velocity × data.batch_interval).

Every figure is per CPU core of this machine; `speedup` divides them for faster target hardware.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Z99 = 2.3263478740408408
BATCH_SIZES = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000)
DEFAULT_ROWS = 20_000
DEFAULT_REPS = 2_000
WARMUP = 100
KS_BAD = 0.1          # Kolmogorov–Smirnov distance of ln t to the fitted normal above which the fit is bad
P99_BAD = 0.25        # relative gap between the fitted and the empirical p99 above which the fit is bad


class CalibrateError(ValueError):
    """Bad input to calibrate (one line)."""


# ------------------------------------------------------------------ estimator sources

def public_class_path(cls: type) -> str:
    """The shortest importable dotted path of a class (sklearn.linear_model.SGDClassifier rather
    than its private module)."""
    import importlib
    parts = cls.__module__.split(".")
    for k in range(1, len(parts) + 1):
        mod = ".".join(parts[:k])
        try:
            if getattr(importlib.import_module(mod), cls.__name__, None) is cls:
                return f"{mod}.{cls.__name__}"
        except Exception:   # a parent package that fails to import: try a longer path
            continue
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(v) -> bool:
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False


def scenario_params(est) -> tuple[dict, list[str]]:
    """The estimator's non-default constructor parameters that a scenario can hold (YAML
    scalars and lists), and the names of those it cannot (nested estimators, arrays, ...)."""
    get = getattr(est, "get_params", None)
    if get is None:
        return {}, []
    params = get(deep=False)
    try:
        defaults = type(est)().get_params(deep=False)
    except Exception:
        defaults = {}
    out, dropped = {}, []
    for k, v in params.items():
        if k in defaults and _same(defaults[k], v):
            continue
        if k == "random_state":
            continue   # the simulator draws it from the run's seed
        if _plain(v):
            out[k] = list(v) if isinstance(v, tuple) else v
        else:
            dropped.append(k)
    return out, dropped


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


# -------------------------------------------------------------------- measuring

def _synthetic(rng: np.random.Generator, rows: int, features: int, noise: float):
    x = rng.standard_normal((rows, features))
    w = rng.standard_normal(features)
    y = np.where(x @ w >= 0, 1, -1).astype(np.int8)
    if noise > 0:
        y = np.where(rng.random(rows) < noise, -y, y).astype(np.int8)
    return x, y


def _ns(fn) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def _median_s(fn, reps: int) -> float:
    return float(np.median([_ns(fn) for _ in range(reps)])) * 1e-9


def fit_line(x: np.ndarray, t: np.ndarray, relative: bool = False) -> tuple[float, float, str]:
    """(intercept, slope, note) of t = a + b·x by least squares (weights 1/t² when relative);
    a negative intercept is not kept: the line is refitted through the origin and the note says so."""
    x, t = np.asarray(x, float), np.asarray(t, float)
    w = 1.0 / t ** 2 if relative else np.ones_like(t)
    A = np.column_stack([np.ones_like(x), x]) * np.sqrt(w)[:, None]
    a, b = np.linalg.lstsq(A, t * np.sqrt(w), rcond=None)[0]
    note = ""
    if a < 0 or b <= 0:
        b2 = float(np.sum(w * x * t) / np.sum(w * x * x))
        note = f"least squares gave intercept {a:.3g} s and slope {b:.3g} s; refitted through the origin"
        a, b = 0.0, b2
    return float(a), float(b), note


def lognormal_mle(t_s: np.ndarray) -> dict:
    """Lognormal fitted by maximum likelihood to positive times, with the empirical quantiles
    and a verdict on the fit."""
    from scipy.special import ndtr
    lt = np.log(t_s)
    mu, sigma = float(lt.mean()), float(lt.std())
    emp = {f"p{q}_s": float(np.quantile(t_s, p)) for q, p in (("50", .5), ("90", .9), ("99", .99), ("999", .999))}
    med, p99 = math.exp(mu), math.exp(mu + Z99 * sigma)
    if sigma > 0:
        z = np.sort((lt - mu) / sigma)
        n = z.size
        cdf = ndtr(z)
        ks = float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))
    else:
        ks = 0.0
    gap = p99 / emp["p99_s"] - 1
    good = ks <= KS_BAD and abs(gap) <= P99_BAD
    ms = lambda v: f"{v * 1e3:.4g} ms"   # noqa: E731
    note = (f"lognormal fits well (KS distance {ks:.3f}, fitted p99 {gap:+.0%} from the empirical)" if good else
            f"a lognormal fits badly (KS distance {ks:.3f}, fitted p99 {ms(p99)} vs empirical {ms(emp['p99_s'])}); "
            f"empirical p50 {ms(emp['p50_s'])}, p90 {ms(emp['p90_s'])}, p99 {ms(emp['p99_s'])}, "
            f"p99.9 {ms(emp['p999_s'])}")
    return {"median_s": med, "p99_s": p99, "mu": mu, "sigma": sigma, "ks_distance": ks,
            "fits_well": good, "empirical": emp, "note": note}


@dataclass
class Source:
    """What to calibrate: a class path (+ params), or a model loaded from a file."""
    class_path: str
    params: dict
    make: object          # callable() -> a fresh, unfitted estimator
    loaded: object = None  # the fitted estimator from a file, if any
    file: str | None = None


def measure(src: Source, features: int, label_noise: float, batch_examples: float, rows: int = DEFAULT_ROWS,
            reps: int = DEFAULT_REPS, seed: int = 0, progress=None) -> dict:
    """Every measurement of the module docstring, as a JSON-ready dict (seconds, per CPU core)."""
    from threadpoolctl import threadpool_limits
    say = progress or (lambda msg: None)
    rng = np.random.default_rng(seed)
    x, y = _synthetic(rng, rows, features, label_noise)
    xb = rng.standard_normal((max(BATCH_SIZES), features))
    with threadpool_limits(limits=1):
        # fit time against examples
        say("fit")
        sizes = sorted({max(100, rows // k) for k in (8, 4, 2, 1)})
        fit_t = []
        for n in sizes:
            fit_t.append(_median_s(lambda: src.make().fit(x[:n], y[:n]), 3))
        a, b, fit_note = fit_line(np.array(sizes), np.array(fit_t))
        model = src.make().fit(x, y)
        if src.loaded is not None and getattr(src.loaded, "n_features_in_", None) == features:
            model = src.loaded     # time the user's own fitted model
        # single-row predict latency
        say("single-row predict")
        for i in range(WARMUP):
            model.predict(x[i % rows: i % rows + 1])
        single = np.array([_ns(lambda i=i: model.predict(x[i % rows: i % rows + 1])) for i in range(reps)],
                          dtype=float) * 1e-9
        single = np.maximum(single, 1e-9)
        ln = lognormal_mle(single)
        # batch predict cost
        say("batch predict")
        bt = [_median_s(lambda b_=b_: model.predict(xb[:b_]), max(3, min(200, 20_000 // b_))) for b_ in BATCH_SIZES]
        t0, t1, batch_note = fit_line(np.array(BATCH_SIZES), np.array(bt), relative=True)
        # partial_fit per batch
        pf = None
        if callable(getattr(model, "partial_fit", None)):
            say("partial_fit")
            base = src.make()
            classes = np.array([-1, 1], dtype=np.int8)
            base.partial_fit(x[:100], y[:100], classes=classes)
            pt = []
            for n in sizes:
                fresh = [copy.deepcopy(base) for _ in range(3)]   # copied outside the timed calls
                pt.append(float(np.median([_ns(lambda e=e: e.partial_fit(x[:n], y[:n])) for e in fresh])) * 1e-9)
            pa, pb, pf_note = fit_line(np.array(sizes), np.array(pt))
            pf = {"sizes": sizes, "median_s": pt, "fixed_s": pa, "per_million_examples_s": pb * 1e6,
                  "batch_examples": batch_examples, "per_batch_s": pa + pb * batch_examples, "note": pf_note}
    return {
        "rows": rows, "features": features,
        "predict_single": {"reps": reps, "warmup": WARMUP, **ln},
        "batch_predict": {"sizes": list(BATCH_SIZES), "median_s": bt, "fixed_s": t0, "per_key_s": t1,
                          "note": batch_note},
        "fit": {"sizes": sizes, "median_s": fit_t, "fixed_s": a, "per_million_examples_s": b * 1e6,
                "note": fit_note},
        "partial_fit": pf,
    }


def machine() -> dict:
    """CPU, date and library versions: where and when the figures were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        import sklearn
        versions["scikit-learn"] = sklearn.__version__
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": versions, "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


# ---------------------------------------------------------------- the scenario text

def _dur(s: float) -> str:
    """Seconds as a duration the scenario language reads back (ms, 4 significant digits)."""
    return f"{s * 1e3:.4g}ms"


def model_block(base_model: dict, m: dict, src: Source, speedup: float, mach: dict,
                dropped: list[str]) -> tuple[dict, dict, list[str]]:
    """(model mapping, comments by dotted path, header comment lines) for the scenario."""
    k = 1.0 / speedup
    ps, bp, ft, pf = m["predict_single"], m["batch_predict"], m["fit"], m["partial_fit"]
    model = {key: v for key, v in base_model.items()
             if key not in ("inference_time", "train_time", "batch_predict_time", "update_time", "estimator")}
    med, p99 = ps["median_s"] * k, ps["p99_s"] * k
    if ps["sigma"] > 0 and float(_dur(p99)[:-2]) > float(_dur(med)[:-2]):
        model["inference_time"] = {"distribution": "lognormal", "median": _dur(med), "p99": _dur(p99)}
    else:
        model["inference_time"] = {"distribution": "deterministic", "value": _dur(med)}
    model["train_time"] = {"fixed": _dur(ft["fixed_s"] * k), "per_million_examples": _dur(ft["per_million_examples_s"] * k)}
    model["batch_predict_time"] = {"fixed": _dur(bp["fixed_s"] * k), "per_key": _dur(bp["per_key_s"] * k)}
    batched = "batch_time" in base_model   # serving.batching's law: the same predict over b rows
    if batched:
        model["batch_time"] = {"fixed": _dur(bp["fixed_s"] * k), "per_item": _dur(bp["per_key_s"] * k)}
    if pf is not None:
        model["update_time"] = {"fixed": _dur(pf["fixed_s"] * k),
                                "per_million_examples": _dur(pf["per_million_examples_s"] * k)}
    model["estimator"] = {"class": src.class_path, "params": src.params}
    scale = "" if speedup == 1 else f", divided by speedup {speedup:g}"
    c = {"model.inference_time": f"measured: single-row predict, {ps['reps']} reps after {ps['warmup']} warm-up, "
                                 f"lognormal MLE{scale}; {ps['note']}",
         "model.train_time": f"measured: fit on {', '.join(map(str, ft['sizes']))} rows, least squares{scale}"
                             + (f"; {ft['note']}" if ft["note"] else ""),
         "model.batch_predict_time": f"measured: predict on batches of 1..{max(bp['sizes'])} rows, "
                                     f"T(b) = fixed + per_key*b{scale}" + (f"; {bp['note']}" if bp["note"] else ""),
         **({"model.batch_time": f"measured: the same batch predict law, for serving.batching{scale}"} if batched else {}),
         "model.estimator": f"trained and served by the simulator ({'loaded from ' + src.file if src.file else 'built from class and params'})"
                            + (f"; parameters not expressible in YAML left at defaults: {', '.join(dropped)}" if dropped else "")}
    if pf is not None:
        c["model.update_time"] = (f"measured: partial_fit per batch, least squares{scale}; "
                                  f"{pf['per_batch_s'] * k * 1e3:.4g} ms for this scenario's batch of "
                                  f"{pf['batch_examples']:,.0f} examples" + (f"; {pf['note']}" if pf["note"] else ""))
    v = ", ".join(f"{n} {x}" for n, x in mach["versions"].items())
    head = [f"# model: measured by `mlarch calibrate` on {mach['cpu']}, per CPU core "
            f"({mach['cores']} cores, load {mach['load_average'][0]:.2f})" if mach.get("load_average") else
            f"# model: measured by `mlarch calibrate` on {mach['cpu']}, per CPU core",
            f"#   {mach['date']}; {v}; {m['rows']:,} synthetic rows of {m['features']} features",
            "#   figures are for one core of that machine" + (f", divided by --speedup {speedup:g} for the target"
                                                              if speedup != 1 else "; for faster target hardware "
                                                              "rerun with --speedup X")]
    return model, c, head


def _annotate(text: str, comments: dict) -> str:
    """`# comment` after the YAML lines of the given dotted paths (the same writer as `fit`)."""
    from .fit import _annotate as annotate
    return annotate(text, comments)


def model_text(model: dict, comments: dict, head: list[str]) -> str:
    """The commented `model:` block as YAML text."""
    import yaml
    block = yaml.safe_dump({"model": model}, sort_keys=False, default_flow_style=None, width=10_000,
                           allow_unicode=True)
    return "\n".join(head) + "\n" + _annotate(block, comments)


def scenario_text(base_text: str, model: dict, comments: dict, head: list[str], name: str | None) -> str:
    """base_text with its top-level `model:` block replaced (other lines and comments kept)."""
    block = model_text(model, comments, head)
    lines = base_text.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"^model\s*:", ln)), None)
    if start is None:
        out = base_text.rstrip("\n") + "\n\n" + block
    else:
        end = next((j for j in range(start + 1, len(lines)) if re.match(r"^[^\s#]", lines[j])), len(lines))
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1      # comments and blank lines just above the next section belong to it
        out = "\n".join(lines[:start] + block.rstrip("\n").splitlines() + lines[end:]) + "\n"
    if name:
        out = re.sub(r"(?m)^name:.*$", f"name: {name}", out, count=1)
    return out


# ------------------------------------------------------------------------ commands

def source_for(sc, estimator: str | None, model_file: Path | None, allow: tuple[str, ...]) -> Source:
    """The estimator to calibrate: --estimator CLASS, --model FILE, or the scenario's own
    model.estimator. Raises CalibrateError or simulator.estimator.EstimatorError."""
    from simulator.estimator import construct, load_class
    if estimator is not None and model_file is not None:
        raise CalibrateError("give --estimator CLASS or --model FILE, not both")
    if model_file is not None:
        import joblib
        p = Path(model_file)
        if not p.is_file():
            raise CalibrateError(f"--model {p}: no such file")
        try:
            loaded = joblib.load(p)
        except Exception as e:
            raise CalibrateError(f"--model {p}: cannot load: {type(e).__name__}: "
                                 f"{(str(e).strip().splitlines() or [''])[0]}") from None
        if not (callable(getattr(loaded, "fit", None)) and callable(getattr(loaded, "predict", None))):
            raise CalibrateError(f"--model {p}: holds a {type(loaded).__name__}, not an estimator with fit and predict")
        params, _ = scenario_params(loaded)
        return Source(public_class_path(type(loaded)), params,
                      lambda: copy.deepcopy(loaded), loaded=loaded, file=str(p))
    if estimator is None:
        if sc.model.estimator is None:
            raise CalibrateError("nothing to calibrate: give --estimator CLASS (e.g. "
                                 "sklearn.linear_model.SGDClassifier) or --model FILE.joblib, "
                                 "or a scenario with model.estimator")
        estimator, params = sc.model.estimator.class_, dict(sc.model.estimator.params)
    else:
        from scenarios.schema import _CLASS_RE
        if not _CLASS_RE.match(estimator):
            raise CalibrateError(f"--estimator {estimator}: expected a dotted class path such as "
                                 "sklearn.linear_model.SGDClassifier")
        params = {}
    cls = load_class(estimator, allow)
    construct(cls, params, 0, estimator)          # bad params fail here, before measuring
    return Source(estimator, params, lambda: construct(cls, params, 0, estimator))


def calibrate(spec: str, sets: list[str], estimator: str | None = None, model_file: Path | None = None,
              rows: int = DEFAULT_ROWS, reps: int = DEFAULT_REPS, speedup: float = 1.0,
              allow: tuple[str, ...] = (), name: str | None = None, progress=None) -> tuple[dict, str, str]:
    """Measure and build the calibrated scenario: (JSON document, scenario YAML text, the model
    block alone). The scenario text is validated before it is returned."""
    from scenarios import load_scenario
    from scenarios.loader import parse_yaml_text, preset_names, preset_text, read_text, validate
    sc = load_scenario(spec, sets)
    src = source_for(sc, estimator, model_file, allow)
    mach = machine()
    batch_examples = sc.data.velocity * sc.data.batch_interval
    m = measure(src, sc.data.features, sc.data.label_noise, batch_examples, rows=rows, reps=reps,
                seed=sc.seed, progress=progress)
    if m["predict_single"]["median_s"] / speedup < 1e-6:
        raise CalibrateError(f"--speedup {speedup:g}: the median predict time would be below 1 us, "
                             "the smallest the scenario language models")
    from scenarios.loader import parse_override
    base_text = preset_text(spec) if spec in preset_names() and not Path(spec).exists() else read_text(Path(spec))
    base, _ = parse_yaml_text(base_text, spec)
    if sets:
        # --set changes the scenario: start from its validated mapping so they are kept
        from scenarios.loader import _apply
        for ov in sets:
            path, value = parse_override(ov)
            _apply(base, path, value, f"--set {ov}")
        import yaml
        base_text = yaml.safe_dump(base, sort_keys=False, default_flow_style=None, width=10_000)
    _, dropped = scenario_params(src.loaded) if src.loaded is not None else ({}, [])
    model, comments, head = model_block(base.get("model", {}), m, src, speedup, mach, dropped)
    text = scenario_text(base_text, model, comments, head, name)
    data, lines = parse_yaml_text(text, "calibrated scenario")
    validate(data, lines, "calibrated scenario")      # the written file must load
    doc = {"scenario": sc.name, "estimator": {"class": src.class_path, "params": src.params, "file": src.file},
           "machine": mach, "speedup": speedup, "per_cpu_core": True, **m, "model_yaml": model}
    return doc, text, model_text(model, comments, head)


def preflight(spec: str, sets: list[str] | None, sc, training: str, allow: tuple[str, ...] = ()) -> None:
    """Before a simulation: import, construct and test-fit the scenario's estimator, turning any
    problem into a ScenarioError that names the file, line and field. No-op (and no
    scikit-learn import) without model.estimator."""
    if sc.model.estimator is None:
        return
    from scenarios.errors import ScenarioError
    from simulator.estimator import EstimatorError, check
    try:
        check(sc, training, allow)
    except EstimatorError as e:
        for ov in sets or []:
            if ov.split("=", 1)[0].strip().startswith("model.estimator"):
                raise ScenarioError(f"--set {ov}", None, e.field, e.message) from None
        line = None
        p = Path(spec)
        if p.exists():
            from scenarios.loader import parse_yaml_text, read_text
            _, lines = parse_yaml_text(read_text(p), spec)
            path = tuple(e.field.split("."))
            for i in range(len(path), 0, -1):
                if path[:i] in lines:
                    line = lines[path[:i]]
                    break
        raise ScenarioError(spec, line, e.field, e.message) from None
