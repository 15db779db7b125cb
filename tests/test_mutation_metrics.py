"""simulator.metrics (the streaming log-binned histogram) against brute force on the raw
sample: numpy percentiles and empirical CDFs (issue 18, item 5; docs/testing.md).

Bins are [LO·r^(i−1), LO·r^i) for i ≥ 1 with r = 1.02, bin 0 holds exact zeros. Two kinds of
samples: values at bin geometric midpoints LO·r^(j−½), where the histogram's answers are exact
(rel 1e-12: float rounding of a power), and a lognormal sample, where a quantile is within the
bin-width bound: the geometric midpoint is within r^½ − 1 < 1% of any value in its bin."""
import math

import numpy as np
import pytest

from simulator import metrics
from simulator.metrics import HIST_LO_S as LO, HIST_RATIO as R, LogHistogram, bin_index

EXACT = 1e-12
HALF_BIN = math.sqrt(R) - 1            # 0.995%: midpoint vs any value of its bin


def mid(j):
    """Geometric midpoint of bin j (j ≥ 1)."""
    return LO * R ** (j - 0.5)


def test_bins_cover_the_range_with_ratio_two_percent():
    n = metrics._NBINS
    assert LO * R ** n >= metrics.HIST_HI_S > LO * R ** (n - 1)
    assert LogHistogram().counts.size == n + 1


def test_bin_index_brute_force_edges():
    rng = np.random.default_rng(1)
    v = np.exp(rng.uniform(math.log(1e-6), math.log(1e6), 5000))
    idx = bin_index(v)
    # each value lies in its bin [LO r^(i−1), LO r^i) (1e-12 relative slack for the log's rounding)
    assert np.all(LO * R ** (idx - 1) <= v * (1 + EXACT))
    assert np.all(v < LO * R ** idx * (1 + EXACT))
    assert idx.dtype == np.int64


def test_single_precision_input_is_binned_and_summed_in_double():
    # float32 values: bins and totals are those of the same values in float64 (a float32 log is
    # off by ~1e-4 of a bin and misplaces values near an edge; a float32 sum loses ~1e-7)
    rng = np.random.default_rng(9)
    v32 = rng.exponential(0.01, 100_000).astype(np.float32)
    v = v32.astype(np.float64)
    idx = bin_index(v32)
    assert np.all(idx[v < LO] == 1)                  # below the first edge: clipped into bin 1
    assert np.all((LO * R ** (idx - 1) <= v * (1 + EXACT))[v >= LO]) and np.all(v < LO * R ** idx * (1 + EXACT))
    h = LogHistogram()
    h.add(v32)
    assert h.total == pytest.approx(math.fsum(v.tolist()), rel=EXACT)


def test_bin_index_zero_and_out_of_range_values():
    idx = bin_index(np.array([0.0, 1e-12, LO, 1e12]))
    assert idx.tolist() == [0, 1, 1, metrics._NBINS]       # below LO → first bin, above HI → last
    assert bin_index(np.array([])).size == 0
    assert bin_index(5e-3).tolist() == bin_index(np.array([5e-3])).tolist()


@pytest.mark.parametrize("bad", [[-1e-9], [1.0, math.nan], [math.inf], [-math.inf, 2.0]])
def test_bin_index_rejects_negative_and_non_finite(bad):
    with pytest.raises(ValueError, match=r"^histogram values must be finite and non-negative$"):
        bin_index(np.array(bad))


def test_empty_histogram():
    h = LogHistogram()
    h.add(np.array([]))
    assert h.n == 0 and h.total == 0.0 and h.max == 0.0
    assert math.isnan(h.mean) and math.isnan(h.quantile(0.5)) and math.isnan(h.cdf_at(1.0))
    assert h.nonzero_bins() == ([], [])


def test_exact_aggregates_against_numpy():
    rng = np.random.default_rng(2)
    v = rng.lognormal(-3, 1.5, 10_000)
    v[:37] = 0.0
    h = LogHistogram()
    h.add(v[:6000])
    h.add(v[6000:])
    assert h.n == v.size
    assert h.total == pytest.approx(v.sum(), rel=EXACT)
    assert h.mean == pytest.approx(v.mean(), rel=EXACT)
    assert h.max == v.max()
    assert h.counts.sum() == v.size and h.counts[0] == 37


@pytest.mark.parametrize("p", [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999])
def test_quantile_within_half_a_bin_of_numpy(p):
    rng = np.random.default_rng(3)
    v = rng.lognormal(-4, 1.0, 20_000)
    h = LogHistogram()
    h.add(v)
    # the p-quantile of the sample (smallest value with share ≥ p) lies in the bin the histogram
    # reports; its midpoint is within HALF_BIN of it (plus 1e-12 rounding)
    ref = np.quantile(v, p, method="inverted_cdf")
    assert h.quantile(p) == pytest.approx(ref, rel=HALF_BIN + EXACT)


def test_quantile_exact_on_bin_midpoints():
    # values at the midpoints of bins 100, 200, 300, 400: quantiles are those values exactly,
    # with numpy's inverted CDF (smallest value whose share reaches p; p·n = 2 exactly at p = ½)
    v = np.array([mid(100), mid(200), mid(300), mid(400)])
    h = LogHistogram()
    h.add(v)
    for p in (0.1, 0.25, 0.26, 0.5, 0.51, 0.75, 0.76, 1.0):
        assert h.quantile(p) == pytest.approx(np.quantile(v, p, method="inverted_cdf"), rel=EXACT)


def test_quantile_zero_bin_and_cap_at_max():
    h = LogHistogram()
    h.add(np.array([0.0, 0.0, 0.0, 1e-3]))
    assert h.quantile(0.5) == 0.0 and h.quantile(0.75) == 0.0
    # the max sits at its bin's lower edge, below the midpoint: the top quantile is the max itself
    top = LO * R ** 500 * (1 + 1e-9)
    h2 = LogHistogram()
    h2.add(np.array([mid(100), top]))
    assert h2.quantile(1.0) == top
    assert h2.quantile(0.5) == pytest.approx(mid(100), rel=EXACT)


def test_cdf_at_exact_on_bin_midpoints():
    v = np.array([0.0, mid(10), mid(10), mid(300), mid(301), mid(1500)])
    h = LogHistogram()
    h.add(v)
    for t in (mid(5), mid(10), mid(299), mid(300), mid(301), mid(1499), mid(1500), mid(1700), 1e9):
        assert h.cdf_at(t) == pytest.approx(np.mean(v <= t), abs=EXACT)
    # t ≤ 0: the exact zeros only; t below the first bin: still the zeros only
    assert h.cdf_at(0.0) == pytest.approx(1 / 6, abs=EXACT)
    assert h.cdf_at(-1.0) == pytest.approx(1 / 6, abs=EXACT)
    assert h.cdf_at(1e-12) == pytest.approx(1 / 6, abs=EXACT)
    assert isinstance(h.cdf_at(mid(300)), float)


def test_cdf_at_first_and_last_bins_and_one_value():
    # values in bins 1 and 2 (the lowest), and two beyond HIST_HI_S (clipped into the last bin)
    v = np.array([0.0, mid(1), mid(2), 5e8, 1e9])
    h = LogHistogram()
    h.add(v)
    for t in (1e-12, mid(1), mid(2), 1e10, 1e12):
        assert h.cdf_at(t) == pytest.approx(np.mean(v <= t), abs=EXACT), t
    one = LogHistogram()
    one.add(np.array([mid(50)]))
    assert one.cdf_at(mid(49)) == 0.0 and one.cdf_at(mid(50)) == 1.0 and one.cdf_at(0.0) == 0.0


def test_cdf_at_lognormal_within_a_bin():
    rng = np.random.default_rng(4)
    v = rng.lognormal(-2, 0.7, 5000)
    h = LogHistogram()
    h.add(v)
    for t in (0.05, 0.1, 0.2, 0.5):
        # to bin resolution: between the empirical CDF one bin below and at t
        assert np.mean(v <= t / R) - EXACT <= h.cdf_at(t) <= np.mean(v <= t * R) + EXACT


def test_merge_equals_one_histogram_of_both_samples():
    rng = np.random.default_rng(5)
    a, b = rng.exponential(0.01, 3000), rng.exponential(0.2, 500)
    ha, hb = LogHistogram(), LogHistogram()
    ha.add(a)
    hb.add(b)
    ha.merge(hb)
    both = np.concatenate([a, b])
    assert ha.n == both.size and ha.max == both.max()
    assert ha.total == pytest.approx(both.sum(), rel=EXACT)
    np.testing.assert_array_equal(ha.counts, np.bincount(bin_index(both), minlength=metrics._NBINS + 1))
    hb2 = LogHistogram()
    hb2.add(b)
    hb2.merge(LogHistogram())            # merging an empty one changes nothing, keeps the max
    assert hb2.max == b.max() and hb2.n == b.size


def test_add_binned_subset_with_mask():
    rng = np.random.default_rng(6)
    v = rng.exponential(1.0, 1000)
    idx = bin_index(v)
    mask = v > 0.5
    h = LogHistogram()
    h.add_binned(v[mask], idx[mask])
    assert h.n == mask.sum() and h.max == v[mask].max()
    assert h.total == pytest.approx(v[mask].sum(), rel=EXACT)
    np.testing.assert_array_equal(h.counts, np.bincount(bin_index(v[mask]), minlength=metrics._NBINS + 1))


def test_summaries_in_ms_and_s():
    v = np.array([mid(j) for j in range(600, 1600)])     # 1,000 values, one per bin
    h = LogHistogram()
    h.add(v)
    q = lambda p: float(np.quantile(v, p, method="inverted_cdf"))   # noqa: E731
    s = h.summary_ms()
    assert list(s) == ["mean", "p50", "p95", "p99", "p999", "max"]
    expect = {"mean": v.mean() * 1e3, "p50": q(0.5) * 1e3, "p95": q(0.95) * 1e3, "p99": q(0.99) * 1e3,
              "p999": q(0.999) * 1e3, "max": v.max() * 1e3}
    for k in expect:
        assert s[k] == pytest.approx(expect[k], rel=EXACT), k
    assert h.summary_ms(("p99",)) == pytest.approx({"p99": q(0.99) * 1e3}, rel=EXACT)
    s2 = h.summary_s()
    assert set(s2) == {"mean", "p95", "max"}
    assert s2 == pytest.approx({"mean": v.mean(), "p95": q(0.95), "max": v.max()}, rel=EXACT)


def test_nonzero_bins_upper_edges():
    v = np.array([0.0, 0.0, 3e-3, 3.01e-3, 0.2])
    h = LogHistogram()
    h.add(v)
    edges, counts = h.nonzero_bins()
    assert edges[0] == 0.0 and counts[0] == 2
    assert sum(counts) == v.size and isinstance(counts, list) and all(type(c) is int for c in counts)
    # every positive value lies below its bin's upper edge and within one bin width of it
    assert len(edges) == 3
    for e, x in zip(edges[1:], [3e-3, 0.2]):
        assert x < e <= x * R * (1 + EXACT)
    assert counts[1:] == [2, 1]       # 3e-3 and 3.01e-3 share a bin (ratio 1.0033 < 1.02)


@pytest.mark.parametrize("shift", [-0.6, -1e-9, 0.0, 1e-9, 0.6])
def test_edge_correction_puts_a_value_in_its_bin_from_a_log_off_by_less_than_a_bin(shift):
    # the bin of a positive value is the k with EDGES[k] <= v < EDGES[k + 1] (clipped to the
    # range), whatever the rounding of the log it is estimated from: the estimate is moved
    # across an edge by one comparison. Here the logs are pushed off by a share of a bin.
    from simulator.metrics import EDGES, _NBINS, edge_corrected
    rng = np.random.default_rng(12)
    v = np.concatenate([EDGES[:40], EDGES[-40:], np.nextafter(EDGES[1:], 0)[:40], np.nextafter(EDGES[-40:], 0),
                        np.exp(rng.uniform(math.log(LO), math.log(metrics.HIST_HI_S), 5000)),
                        [LO * 0.5, metrics.HIST_HI_S * 3, EDGES[-1] * 1.0001]])
    want = np.clip(np.searchsorted(EDGES, v, side="right") - 1, 0, _NBINS - 1)
    got = edge_corrected(v, np.log(v) + shift * math.log(R))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(bin_index(v), 1 + want)


def test_add_counts_equals_adding_the_values():
    rng = np.random.default_rng(13)
    v = np.concatenate([rng.lognormal(-3, 1.5, 10_000), np.zeros(50)])
    direct, tallied = LogHistogram(), LogHistogram()
    direct.add(v[:4000])
    direct.add(v[4000:])
    for part in (v[:4000], v[4000:]):
        counts = np.bincount(bin_index(part), minlength=metrics._NBINS + 1)
        tallied.add_counts(counts, part.size, math.fsum(part.tolist()), part.max())
    np.testing.assert_array_equal(tallied.counts, direct.counts)
    assert tallied.n == direct.n == v.size
    assert tallied.total == pytest.approx(direct.total, rel=EXACT) and tallied.max == direct.max
    # an empty tally changes nothing, whatever it says besides its zero count
    before = (tallied.counts.copy(), tallied.n, tallied.total, tallied.max)
    tallied.add_counts(np.ones_like(tallied.counts), 0, 5.0, 1e9)
    np.testing.assert_array_equal(tallied.counts, before[0])
    assert (tallied.n, tallied.total, tallied.max) == before[1:]
    # a tally whose values are all smaller keeps the larger maximum
    tallied.add_counts(np.zeros_like(tallied.counts), 1, 0.0, 0.0)
    assert tallied.max == direct.max and tallied.n == v.size + 1
