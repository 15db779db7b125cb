"""Your own model in the loop: a scikit-learn-compatible classifier (`model.estimator`) trained
and served by the simulated pipeline in place of the built-in least-squares model
(simulator.train), behind the same interface (`predict`, `version`, `data_end_s`, `nbytes`).

- Static and periodic training call `fit` on the validated, standardised window (a uniform
  subsample of at most WINDOW_ROWS rows, weighted so that every batch keeps its share).
- Continuous training calls `partial_fit` on each validated batch the live model has not
  seen, starting from a copy of the live model (the transform stays the initial one, so the
  learned weights keep their meaning); estimators without `partial_fit` are refused.
- The evaluation gate (simulator.evaluate) calls `predict` on held-out rows; table fills
  (simulator.serve.batch_predict) and the model path (`FeatureScorer`, one call per window of
  misses) call `predict` on the real features of each key.

Importing code named by a scenario is the user's decision: classes under `sklearn.` import by
default, any other module only when named in MLARCH_ALLOW_IMPORT (comma-separated module
prefixes; `--allow-import MODULE` on the command line adds to it). scikit-learn itself is
imported only here, and only when a scenario names an estimator.
"""
from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import math
import os
import pickle
from dataclasses import dataclass

import numpy as np

from scenarios.schema import Scenario

from .train import Stats
from .transform import Standardize

ALLOW_ENV = "MLARCH_ALLOW_IMPORT"
DEFAULT_ALLOWED = ("sklearn",)
WINDOW_ROWS = 30_000      # rows one `fit` reads from a training window (uniform subsample, weighted)
MIN_KEEP_ROWS = 200       # rows kept per batch for window fits, at least
UPDATE_ROWS = 2_000       # rows kept per batch for continuous `partial_fit` updates, at least
KEPT_BYTES = 300e6        # raw rows kept over a whole window, at most (wide features keep fewer rows)
CLASSES = np.array([-1, 1], dtype=np.int8)
WITH_PARTIAL_FIT = ("sklearn.linear_model.SGDClassifier, sklearn.linear_model.Perceptron, "
                    "sklearn.naive_bayes.GaussianNB, sklearn.naive_bayes.BernoulliNB, "
                    "sklearn.neural_network.MLPClassifier")


class EstimatorError(ValueError):
    """A scenario's estimator cannot be used as given. `field` is the scenario path at fault
    (e.g. model.estimator.class); str(err) is one line, without the path."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


# ------------------------------------------------------------------ importing

def allowed_modules(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Module prefixes whose classes may be imported: sklearn, MLARCH_ALLOW_IMPORT, `extra`."""
    env = tuple(m.strip() for m in os.environ.get(ALLOW_ENV, "").split(",") if m.strip())
    return DEFAULT_ALLOWED + env + tuple(extra)


def is_allowed(class_path: str, allowed: tuple[str, ...]) -> bool:
    module = class_path.rsplit(".", 1)[0]
    return any(module == a or module.startswith(a + ".") for a in allowed)


def load_class(class_path: str, extra_allowed: tuple[str, ...] = ()) -> type:
    """The class named by a dotted path, imported only from an allowed module; EstimatorError
    (field model.estimator.class) otherwise."""
    field = "model.estimator.class"
    module, _, name = class_path.rpartition(".")
    if not is_allowed(class_path, allowed_modules(extra_allowed)):
        top = module.split(".")[0]
        raise EstimatorError(field, f"{class_path} is outside sklearn.; importing it runs its code, so allow it "
                                    f"explicitly: --allow-import {top} (or {ALLOW_ENV}={top})")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "sklearn":
            raise EstimatorError(field, "scikit-learn is not installed: pip install 'mlarch[sklearn]' "
                                        "(or scikit-learn)") from None
        raise EstimatorError(field, f"cannot import {module}: {e}") from None
    except Exception as e:   # the module's own code failed while importing
        raise EstimatorError(field, f"importing {module} failed: {type(e).__name__}: {_first_line(e)}") from None
    cls = getattr(mod, name, None)
    if cls is None:
        close = difflib.get_close_matches(name, [n for n in dir(mod) if not n.startswith("_")], n=1)
        hint = f"; did you mean {module}.{close[0]}?" if close else ""
        raise EstimatorError(field, f"{module} has no {name}{hint}")
    if not isinstance(cls, type) or not callable(getattr(cls, "fit", None)) or not callable(getattr(cls, "predict", None)):
        raise EstimatorError(field, f"{class_path} is not an estimator class with fit and predict")
    return cls


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def construct(cls: type, params: dict, random_state: int | None, class_path: str = ""):
    """cls(**params), with random_state from the run's stream when the class takes one and
    the scenario does not fix it."""
    params = dict(params)
    try:
        takes_rs = "random_state" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes_rs = False
    if takes_rs and "random_state" not in params and random_state is not None:
        params["random_state"] = random_state
    try:
        return cls(**params)
    except Exception as e:
        raise EstimatorError("model.estimator.params", f"{class_path or cls.__name__}: {_first_line(e)}") from None


def has_partial_fit(obj) -> bool:
    return callable(getattr(obj, "partial_fit", None))


def refuse_without_partial_fit(class_path: str) -> EstimatorError:
    return EstimatorError("model.estimator.class",
                          f"continuous training calls partial_fit on every batch, and {class_path} has none; "
                          f"use one that has it ({WITH_PARTIAL_FIT}) or pin architecture.training: periodic")


def check(sc: Scenario, training: str, extra_allowed: tuple[str, ...] = ()) -> None:
    """Import, construct and fit the scenario's estimator on a small synthetic sample (and
    partial_fit it, for continuous training), so that a bad class or parameter fails before a
    run starts. Raises EstimatorError."""
    spec = sc.model.estimator
    if spec is None:
        return
    cls = load_class(spec.class_, extra_allowed)
    if training == "continuous" and not has_partial_fit(cls):
        raise refuse_without_partial_fit(spec.class_)
    est = construct(cls, spec.params, 0, spec.class_)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, sc.data.features))
    y = np.where(x[:, 0] >= 0, 1, -1).astype(np.int8)
    try:
        est.fit(x, y)
        est.predict(x[:8])
        if training == "continuous":
            est.partial_fit(x, y)
    except Exception as e:
        raise EstimatorError("model.estimator.params",
                             f"{spec.class_} failed on a test fit: {type(e).__name__}: {_first_line(e)}") from None


# ---------------------------------------------------------------------- model

@dataclass(frozen=True)
class EstimatorModel:
    """A deployable model wrapping a fitted estimator: the fitted transform, the estimator and
    its provenance (the same attributes the pipeline reads from simulator.train.Model)."""
    version: int
    transform: Standardize
    estimator: object
    data_end_s: float          # end of the newest data it was trained on (model age is from here)
    trained_at_s: float
    examples: float            # nominal examples it was trained on
    nbytes: int                # bytes of the stored model (pickled estimator and transform)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels in {−1, +1}: the estimator's predict on the standardised rows."""
        p = np.asarray(self.estimator.predict(self.transform.apply(x)))
        return np.where(p.astype(float) > 0, 1, -1).astype(np.int8)


class FeatureScorer:
    """Online predictions of an EstimatorModel for requests given by their feature-table
    indices: the keys' real features are materialised and predicted in one call per window."""

    def __init__(self, model: EstimatorModel, features, skew: tuple[int, float] | None = None):
        self.model, self.features, self.skew = model, features, skew

    def predict(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        f = self.features
        x = (f.a[i] + f.b[j]) * (1.0 / math.sqrt(2.0))
        if self.skew is not None:   # training–serving skew: serving feeds feature k times c
            x[:, self.skew[0]] *= self.skew[1]
        return self.model.predict(x)


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class Learner:
    """Trains EstimatorModels for one run. Random states come from `seed_seq` (a child stream
    of the run's SeedSequence), one per fresh fit."""

    def __init__(self, sc: Scenario, training: str, seed_seq: np.random.SeedSequence,
                 extra_allowed: tuple[str, ...] = ()):
        self.sc, self.spec = sc, sc.model.estimator
        self.cls = load_class(self.spec.class_, extra_allowed)
        self.continuous = training == "continuous"
        if self.continuous and not has_partial_fit(self.cls):
            raise refuse_without_partial_fit(self.spec.class_)
        self.rng = np.random.default_rng(seed_seq)
        d = sc.data
        batches = math.ceil((sc.model.training_window + d.label_delay) / d.batch_interval) + 1
        want = max(UPDATE_ROWS if self.continuous else MIN_KEEP_ROWS, math.ceil(WINDOW_ROWS / batches))
        self.keep_rows = max(20, min(want, int(KEPT_BYTES / (batches * d.features * 8))))

    def fit(self, window: list[Stats], version: int, trained_at_s: float, live=None) -> EstimatorModel:
        """A fresh `fit` on the window; in continuous training with a live EstimatorModel,
        `partial_fit` of a copy of it on the window's batches it has not seen."""
        if self.continuous and isinstance(live, EstimatorModel):
            return self._update(window, version, trained_at_s, live)
        n = sum(s.n for s in window)
        tr = Standardize.from_moments(n, sum(s.sum_x for s in window), np.diag(sum(s.sum_xx for s in window)))
        x = np.concatenate([s.x for s in window])
        y = np.concatenate([s.y for s in window])
        w = np.concatenate([np.full(s.y.size, s.n / max(s.y.size, 1)) for s in window])
        est = construct(self.cls, self.spec.params, int(self.rng.integers(0, 2**31 - 1)), self.spec.class_)
        xt = tr.apply(x)
        try:
            if _accepts(est.fit, "sample_weight"):
                est.fit(xt, y, sample_weight=w / w.mean())
            else:
                est.fit(xt, y)
        except Exception as e:
            raise self._failed("fit", y.size, trained_at_s, e) from None
        return self._model(version, tr, est, max(s.data_end_s for s in window), trained_at_s,
                           sum(s.nominal for s in window))

    def _update(self, window, version, trained_at_s, live: EstimatorModel) -> EstimatorModel:
        new = [s for s in window if s.data_end_s > live.data_end_s + 1e-9]
        est = copy.deepcopy(live.estimator)
        for s in new:
            if s.y.size:
                try:
                    est.partial_fit(live.transform.apply(s.x), s.y, classes=CLASSES)
                except Exception as e:
                    raise self._failed("partial_fit", s.y.size, trained_at_s, e) from None
        end = max([live.data_end_s] + [s.data_end_s for s in new])
        return self._model(version, live.transform, est, end, trained_at_s, sum(s.nominal for s in new))

    def _failed(self, what: str, rows: int, at_s: float, e: Exception) -> EstimatorError:
        """A fit that failed inside a run, as one line (e.g. a window holding a single class)."""
        return EstimatorError("model.estimator", f"{self.spec.class_}.{what} on {rows} rows failed at simulated "
                                                 f"t = {at_s:g} s: {type(e).__name__}: {_first_line(e)}")

    @staticmethod
    def _model(version, tr, est, data_end_s, trained_at_s, examples) -> EstimatorModel:
        nbytes = len(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL)) + tr.nbytes
        return EstimatorModel(version, tr, est, data_end_s, trained_at_s, examples, nbytes)
