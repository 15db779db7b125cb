"""simulator.validate against brute-force counts on small hand-made batches (issue 18, item 5;
docs/testing.md). The thresholds come from simulator.thresholds (the specification of each
check's false-alarm rate, tested in test_fidelity2.py); here the question is whether validate
applies them to the right statistic, feature and share of the false-alarm budget."""
import numpy as np
import pytest

from simulator import thresholds as th
from simulator import validate as V
from simulator.thresholds import FALSE_ALARM_RATE, HIST_BINS


def _ref_numeric(m, features=1, seed=0):
    rng = np.random.default_rng(seed)
    cols = {f"f{i}": rng.standard_normal(m) for i in range(features)}
    cols["y"] = np.ones(m, dtype=np.int8)
    cols["_t"] = np.arange(m, dtype=float)
    return cols


# ------------------------------------------------------------------ the reference

def test_numeric_reference_by_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(97)
    raw = np.concatenate([x[:40], [np.nan, np.inf, -np.inf], x[40:]])
    ref = V.infer_reference({"f0": raw, "y": np.ones(raw.size, dtype=np.int8), "_t": np.zeros(raw.size)})
    assert set(ref.dtypes) == {"f0"} and ref.dtypes["f0"] == "f"        # metadata is not a feature
    r = ref.numeric["f0"]
    assert r.m == 97 and r.lo == x.min() and r.hi == x.max()             # finite values only
    xs = np.sort(x)
    np.testing.assert_array_equal(r.edges, xs[th.order_stat_ranks(97, HIST_BINS) - 1])
    # bins (−∞, e1), [e1, e2), …, [e_last, ∞): shares of the reference values, counted directly
    bounds = np.concatenate([[-np.inf], r.edges, [np.inf]])
    direct = np.array([np.sum((x >= lo) & (x < hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]) / 97
    np.testing.assert_allclose(r.shares, direct, rtol=1e-12)
    assert r.shares.sum() == pytest.approx(1.0, rel=1e-12)


def test_categorical_reference_by_brute_force():
    v = np.array([5, 0, 2, 5, 2, 5], dtype=np.int64)
    ref = V.infer_reference({"c": v})
    domain, shares, counts = ref.categorical["c"]
    assert domain == {0, 2, 5}
    np.testing.assert_allclose(shares, [1 / 6, 0, 2 / 6, 0, 0, 3 / 6], rtol=1e-12)
    assert counts == (1, 2, 3) and all(type(c) is int for c in counts)
    assert ref.dtypes == {"c": "i"} and ref.numeric == {}


# ------------------------------------------------------------------ schema checks

def test_schema_missing_new_and_type():
    ref = V.infer_reference({"b": np.zeros(10, dtype=np.int64), "a": np.linspace(0, 1, 10),
                             "c": np.linspace(0, 1, 10), "y": np.ones(10, dtype=np.int8)})
    out = V.validate({"z": np.zeros(5), "x": np.zeros(5), "y": np.ones(5, dtype=np.int8),
                      "a": np.arange(5, dtype=np.int64), "c": np.array([0.5, np.nan, 0.5, 0.5, 0.5])}, ref)
    # sorted per kind; a column of the wrong type is not checked further, and the next one still is
    assert out[:4] == ["SCHEMA_MISSING_COLUMN:b", "SCHEMA_NEW_COLUMN:x", "SCHEMA_NEW_COLUMN:z",
                       "UNEXPECTED_DATA_TYPE:a"]
    assert "FEATURE_TYPE_LOW_FRACTION_PRESENT:c" in out
    assert not any(a.endswith(":x") and not a.startswith("SCHEMA") for a in out)
    assert [V.anomaly_kind(a) for a in out[:2]] == ["SCHEMA_MISSING_COLUMN", "SCHEMA_NEW_COLUMN"]
    assert V.anomaly_kind("COMPARATOR_L_INFTY_HIGH:f:1") == "COMPARATOR_L_INFTY_HIGH"


def test_reference_batch_itself_is_clean():
    cols = _ref_numeric(1000, features=2)
    cols["c"] = np.repeat(np.array([0, 1, 2]), [300, 200, 500])
    ref = V.infer_reference(cols)
    assert V.validate(cols, ref) == []


# ------------------------------------------------------------------ numeric checks

def test_missing_values_skip_the_distribution_check_only():
    cols = _ref_numeric(300)
    ref = V.infer_reference(cols)
    r = ref.numeric["f0"]
    # 500 values far outside the range, one missing: low fraction and out of range are both
    # flagged; the histogram (all mass in the top bin) is not compared, the column being incomplete
    v = np.full(500, r.hi + 10.0)
    v[7] = np.nan
    out = V.validate({"f0": v}, ref)
    assert out == ["FEATURE_TYPE_LOW_FRACTION_PRESENT:f0", "FLOAT_TYPE_BIG_FLOAT:f0"]
    # the complete column is both out of range and off the reference distribution
    out = V.validate({"f0": np.full(500, r.hi + 10.0)}, ref)
    assert out == ["FLOAT_TYPE_BIG_FLOAT:f0", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:f0"]
    # nothing present: only the low fraction
    assert V.validate({"f0": np.full(20, np.nan)}, ref) == ["FEATURE_TYPE_LOW_FRACTION_PRESENT:f0"]


def test_single_value_reference_has_no_range():
    ref = V.infer_reference({"f0": np.array([1.0, np.nan])})
    assert ref.numeric["f0"].m == 1
    assert V.validate({"f0": np.linspace(-5, 5, 300)}, ref) == []


def test_two_value_reference_still_compares_distributions():
    # m = 2: one edge at X(1), bins (−∞, X(1)) and [X(1), ∞) with shares 0 and 1. 300 values
    # below it: the out-of-range threshold is all 300 (a clean batch falls outside a 2-point range
    # w.p. 2/3 per value), but the histogram is as far from the reference's as it can be (JS = 1)
    ref = V.infer_reference({"f0": np.array([0.0, 1.0])})
    assert th.outside_range_threshold(300, 2, FALSE_ALARM_RATE) == 300
    assert V.validate({"f0": np.full(300, -5.0)}, ref) == ["COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:f0"]


def test_one_value_far_outside_a_large_reference():
    # m = 1000: a clean value falls outside [X(1), X(m)] w.p. 2/1001 < 0.5%, so threshold 0
    ref = V.infer_reference(_ref_numeric(1000))
    assert th.outside_range_threshold(1, 1000, FALSE_ALARM_RATE) == 0
    assert "FLOAT_TYPE_BIG_FLOAT:f0" in V.validate({"f0": np.array([ref.numeric["f0"].hi + 10.0])}, ref)


def test_a_column_without_values_does_not_stop_the_others():
    ref = V.infer_reference(_ref_numeric(1000, features=2))
    out = V.validate({"f0": np.full(10, np.nan), "f1": np.full(10, ref.numeric["f1"].hi + 10.0)}, ref)
    assert out == ["FEATURE_TYPE_LOW_FRACTION_PRESENT:f0", "FLOAT_TYPE_BIG_FLOAT:f1",
                   "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:f1"]


def test_batch_in_the_lower_bins_only():
    # every value in the lower half of the bins (the histogram's upper bins are empty): flagged,
    # and the upper bins count as 0 (not dropped)
    ref = V.infer_reference(_ref_numeric(1000))
    r = ref.numeric["f0"]
    v = np.repeat(r.edges[:9], 50)
    assert V.validate({"f0": v}, ref) == ["COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:f0"]


def _edge_batch(r, per_bin):
    """Values on the reference's bin edges (X(1) for bin 0), per_bin[j] of them in bin j."""
    return np.concatenate([np.full(per_bin[0], r.lo)] + [np.full(c, e) for c, e in zip(per_bin[1:], r.edges)])


@pytest.mark.parametrize("features,rate", [(2, FALSE_ALARM_RATE), (1, 0.1)])
def test_js_threshold_at_the_feature_share_of_the_budget(features, rate):
    # a batch whose divergence lies between the thresholds at rate and at rate / 2: flagged with
    # one numeric feature at that rate, not with two (each gets rate / 2)
    m, n = 1000, 4000
    cols = _ref_numeric(m, features)
    ref = V.infer_reference(cols)
    r = ref.numeric["f0"]
    alpha = rate / features
    lo_thr = th.js_threshold(n, m, HIST_BINS, alpha * 2)
    hi_thr = th.js_threshold(n, m, HIST_BINS, alpha)
    base = np.rint(r.shares * n).astype(int)
    for j in range(1, 400):     # move j values from the bottom bin to the top one until in between
        c = base.copy()
        c[0] -= j
        c[-1] += j
        js = th.js_divergence_rows(c / n, r.shares)[0]
        if lo_thr < js <= hi_thr:
            break
    else:
        pytest.fail("no batch between the thresholds")
    batch = {f"f{i}": cols[f"f{i}"] for i in range(1, features)}
    batch["f0"] = _edge_batch(r, c)
    out = V.validate(batch, ref, false_alarm_rate=rate)
    assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:f0" not in out
    # the same batch with the whole rate for this feature (one feature, rate doubled per feature)
    ref1 = V.infer_reference({"f0": cols["f0"]})
    assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:f0" in V.validate({"f0": batch["f0"]}, ref1,
                                                                         false_alarm_rate=alpha * 2)


def test_reference_range_is_closed():
    cols = _ref_numeric(300)
    ref = V.infer_reference(cols)
    r = ref.numeric["f0"]
    inside = np.sort(cols["f0"])
    v = np.concatenate([np.full(100, r.lo), np.full(100, r.hi), inside[1:-1][:300]])
    assert "FLOAT_TYPE_BIG_FLOAT:f0" not in V.validate({"f0": v}, ref)


@pytest.mark.parametrize("features", [1, 2])
def test_out_of_range_count_threshold_at_the_feature_share_of_the_budget(features):
    # the false-alarm budget is split over the numeric features: threshold at rate / features
    n, m = 500, 300
    t = th.outside_range_threshold(n, m, FALSE_ALARM_RATE / features)
    others = {th.outside_range_threshold(n, m, a) for a in
              (FALSE_ALARM_RATE * 2, FALSE_ALARM_RATE / (features + 1), FALSE_ALARM_RATE / max(1, features - 1))}
    assert t not in others or features == 1          # the shares give distinct thresholds here
    cols = _ref_numeric(m, features)
    ref = V.infer_reference(cols)
    r = ref.numeric["f0"]
    rng = np.random.default_rng(5)
    for k, flagged in ((t, False), (t + 1, True)):
        v = rng.uniform(r.lo, r.hi, n)
        v[:k] = r.hi + 1.0
        batch = {f"f{i}": cols[f"f{i}"][:n] for i in range(1, features)}
        batch["f0"] = v
        assert ("FLOAT_TYPE_BIG_FLOAT:f0" in V.validate(batch, ref)) == flagged, k


def test_histogram_bins_are_closed_below():
    # a batch whose values sit exactly on the reference's bin edges, as many per bin as the
    # reference shares: with bins [e_j, e_{j+1}) its histogram equals the reference's (JS = 0);
    # counted into the bin below it would be shifted by one bin everywhere and flagged
    m = 1000
    cols = _ref_numeric(m)
    ref = V.infer_reference(cols)
    r = ref.numeric["f0"]
    per_bin = np.rint(r.shares * m).astype(int)
    assert per_bin.sum() == m
    values = np.concatenate([np.full(per_bin[0], r.lo)] +
                            [np.full(c, e) for c, e in zip(per_bin[1:], r.edges)])
    assert V.validate({"f0": values}, ref) == []


def test_shifted_distribution_is_flagged_and_threshold_uses_row_counts():
    m = 1000
    cols = _ref_numeric(m)
    ref = V.infer_reference(cols)
    rng = np.random.default_rng(8)
    x = np.clip(rng.standard_normal(2000) + 0.4, ref.numeric["f0"].lo, ref.numeric["f0"].hi)
    assert V.validate({"f0": x}, ref) == ["COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:f0"]
    # the divergence of this batch against the threshold, computed directly
    counts = np.bincount(np.searchsorted(ref.numeric["f0"].edges, x, side="right"), minlength=HIST_BINS)
    js = th.js_divergence_rows(counts / x.size, ref.numeric["f0"].shares)[0]
    assert js > th.js_threshold(2000, m, HIST_BINS, FALSE_ALARM_RATE)


# ------------------------------------------------------------------ categorical checks

def _cat_ref(features):
    cols = {f"c{i}": np.repeat(np.array([0, 1, 2]), [300, 200, 500]) for i in range(features)}
    return cols, V.infer_reference(cols)


def _cat_batch(counts):
    return np.repeat(np.arange(len(counts)), counts)


def test_unexpected_category_and_larger_code():
    cols, ref = _cat_ref(1)
    out = V.validate({"c0": _cat_batch([300, 200, 490, 0, 0, 0, 0, 0, 0, 10])}, ref)
    assert out == ["ENUM_TYPE_UNEXPECTED_STRING_VALUES:c0"]
    # a batch using a subset of the domain is not unexpected
    assert "ENUM_TYPE_UNEXPECTED_STRING_VALUES:c0" not in V.validate({"c0": _cat_batch([0, 0, 1000])}, ref)


@pytest.mark.parametrize("features", [1, 2])
def test_linf_threshold_at_the_feature_share_of_the_budget(features):
    # shares .3/.2/.5 from 1,000 reference rows; a batch of 1,000 rows with the max deviation d:
    # flagged iff d exceeds the L∞ threshold at rate / (categorical features)
    cols, ref = _cat_ref(features)
    thr = th.linf_threshold(1000, (300, 200, 500), FALSE_ALARM_RATE / features)
    lower = th.linf_threshold(1000, (300, 200, 500), FALSE_ALARM_RATE / max(1, features - 1) if features > 1
                              else FALSE_ALARM_RATE * 2)
    higher = th.linf_threshold(1000, (300, 200, 500), FALSE_ALARM_RATE / (features + 1))
    # deviations in thousandths strictly between the neighbouring budgets' thresholds
    below = int(np.floor(thr * 1000 - 1e-9))          # d ≤ thr: not flagged
    above = int(np.floor(thr * 1000)) + 1             # d > thr: flagged
    assert lower * 1000 < below and above < higher * 1000
    for d, flagged in ((below, False), (above, True)):
        batch = {f"c{i}": cols[f"c{i}"] for i in range(1, features)}
        batch["c0"] = _cat_batch([300 + d, 200 - d, 500])
        assert ("COMPARATOR_L_INFTY_HIGH:c0" in V.validate(batch, ref)) == flagged, d


def test_linf_deviation_equal_to_the_threshold_is_not_flagged():
    # the L∞ threshold is one of the null draws' statistics |c/n − q_k|, a value a batch of n rows
    # can take exactly: find that category and count; at equality the batch is not flagged (>)
    cols, ref = _cat_ref(1)
    q = np.array([0.3, 0.2, 0.5])
    thr = th.linf_threshold(1000, (300, 200, 500), FALSE_ALARM_RATE)
    hit = [(k, c) for k in range(3) for c in range(1001) if abs(c / 1000 - q[k]) == thr]
    assert hit
    k, c = hit[0]
    counts = np.array([300, 200, 500])
    other = (k + 1) % 3                  # absorbs the change, its deviation checked below
    counts[other] -= c - counts[k]
    counts[k] = c
    assert np.max(np.abs(counts / 1000 - q)) == thr
    assert V.validate({"c0": _cat_batch(counts)}, ref) == []
    counts[k] += 1 if c > q[k] * 1000 else -1
    counts[other] -= 1 if c > q[k] * 1000 else -1
    assert V.validate({"c0": _cat_batch(counts)}, ref) == ["COMPARATOR_L_INFTY_HIGH:c0"]


def test_numeric_and_categorical_budgets_are_separate():
    # one numeric and one categorical feature: each gets the whole rate (not rate / 2)
    cols = _ref_numeric(300)
    cols["c0"] = np.repeat(np.array([0, 1, 2]), [90, 60, 150])
    ref = V.infer_reference(cols)
    t = th.outside_range_threshold(500, 300, FALSE_ALARM_RATE)
    assert t != th.outside_range_threshold(500, 300, FALSE_ALARM_RATE / 2)
    r = ref.numeric["f0"]
    v = np.random.default_rng(3).uniform(r.lo, r.hi, 500)
    v[:t + 1] = r.hi + 1
    assert "FLOAT_TYPE_BIG_FLOAT:f0" in V.validate({"f0": v, "c0": _cat_batch([150, 100, 250])}, ref)
    v[t] = r.lo
    assert "FLOAT_TYPE_BIG_FLOAT:f0" not in V.validate({"f0": v, "c0": _cat_batch([150, 100, 250])}, ref)


def test_explicit_false_alarm_rate_is_used():
    cols, ref = _cat_ref(1)
    loose = th.linf_threshold(1000, (300, 200, 500), 0.2)
    d = int(np.floor(loose * 1000)) + 1
    assert d / 1000 < th.linf_threshold(1000, (300, 200, 500), FALSE_ALARM_RATE)
    batch = {"c0": _cat_batch([300 + d, 200 - d, 500])}
    assert V.validate(batch, ref, false_alarm_rate=0.2) == ["COMPARATOR_L_INFTY_HIGH:c0"]
    assert V.validate(batch, ref) == []
