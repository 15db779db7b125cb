"""Theory vs brute force and scipy."""
import math

import numpy as np
import pytest
from scipy import special, stats

from advisor import theory
from scenarios import drift


@pytest.mark.parametrize("s", [0.0, 0.3, 0.8, 0.999, 1.0, 1.001, 1.2, 2.5])
@pytest.mark.parametrize("n", [1, 10, 999, 1000, 1001, 54321, 2_000_000])
def test_harmonic_matches_brute_force(n, s):
    brute = math.fsum((np.arange(1, n + 1, dtype=float) ** -s).tolist())
    assert theory.harmonic(n, s) == pytest.approx(brute, rel=1e-12)


@pytest.mark.parametrize("s", [1.1, 1.5, 3.0])
def test_harmonic_huge_n_matches_hurwitz_zeta(s):
    n = 10**18
    expect = special.zeta(s) - special.zeta(s, n + 1)
    assert theory.harmonic(n, s) == pytest.approx(expect, rel=1e-10)


def test_harmonic_s1_matches_digamma():
    for n in (10**7, 10**12, 10**18):
        assert theory.harmonic(n, 1.0) == pytest.approx(special.digamma(n + 1) + np.euler_gamma, rel=1e-12)


@pytest.mark.parametrize("s,k,expect", [(0.8, 1e4, 0.087), (0.8, 1e6, 0.241), (1.0, 1e4, 0.460),
                                        (1.0, 1e6, 0.676), (1.2, 1e4, 0.871), (1.2, 1e6, 0.957)])
def test_coverage_table_from_references(s, k, expect):
    # hit ratios of a top-k table at N = 1e9, quoted to three digits
    assert theory.zipf_coverage(k, 1e9, s) == pytest.approx(expect, abs=6e-4)


def test_coverage_unbounded():
    assert theory.zipf_coverage(1e6, None, 0.9) == 0.0
    assert theory.zipf_coverage(100, None, 2.0) == pytest.approx(theory.harmonic(100, 2.0) / (math.pi ** 2 / 6))


@pytest.mark.parametrize("x,y,n", [(0.01, 0.6, 1e9), (0.001, 0.2, 1e6), (0.1, 0.5, 1000)])
def test_solve_s_round_trip(x, y, n):
    s = theory.solve_zipf_s(x, y, n)
    assert theory.zipf_coverage(math.floor(x * n), n, s) == pytest.approx(y, abs=1e-9)


def test_solve_s_rejects_below_uniform():
    with pytest.raises(ValueError):
        theory.solve_zipf_s(0.5, 0.3, 1000)


def test_erlang_example_from_references():
    assert theory.erlang_c(8, 7.0) == pytest.approx(0.6353, abs=1e-4)
    assert theory.mmc_wait_mean_s(7.0, 1.0, 8) == pytest.approx(0.6353, abs=1e-4)


def test_erlang_b_matches_poisson_formula():
    # B = (a^c/c!) / sum_k a^k/k!  (Erlang 1917); scipy's Poisson pmf/cdf give it without overflow
    for c, a in [(1, 0.5), (5, 3.0), (20, 15.0), (50, 45.0), (100, 90.0), (5000, 4900.0)]:
        expect = stats.poisson.pmf(c, a) / stats.poisson.cdf(c, a)
        assert theory.erlang_b(c, a) == pytest.approx(expect, rel=1e-10)


def test_mm1_special_case():
    lam, mu = 0.7, 1.0
    assert theory.mmc_wait_mean_s(lam, mu, 1) == pytest.approx(lam / (mu * (mu - lam)))
    # M/M/1 wait tail is rho e^{-(mu-lam)t}
    t = theory.mmc_wait_quantile_s(0.99, lam, mu, 1)
    assert 0.7 * math.exp(-(mu - lam) * t) == pytest.approx(0.01)


def test_pk_reduces_to_mm1_and_md1():
    lam, es = 0.8, 1.0
    assert theory.mg1_wait_mean_s(lam, es, 2 * es ** 2) == pytest.approx(theory.mmc_wait_mean_s(lam, 1 / es, 1))
    assert theory.mg1_wait_mean_s(lam, es, es ** 2) == pytest.approx(0.8 / (2 * 0.2))


def test_md1_cdf_limits():
    lam, d = 0.5, 1.0
    assert theory.md1_wait_cdf(0.0, lam, d) == pytest.approx(1 - 0.5)  # P(W = 0) = 1 - rho
    assert theory.md1_wait_cdf(30.0, lam, d) == pytest.approx(1.0, abs=1e-6)
    # mean from the CDF equals Pollaczek–Khinchine
    ts = np.linspace(0, 30, 3001)
    mean = np.trapezoid([1 - theory.md1_wait_cdf(t, lam, d) for t in ts], ts)
    assert mean == pytest.approx(theory.mg1_wait_mean_s(lam, d, d * d), rel=1e-3)


def test_allen_cunneen_exact_for_exponential():
    assert theory.mgc_wait_mean_s(7.0, 1.0, 1.0, 8) == pytest.approx(theory.mmc_wait_mean_s(7.0, 1.0, 8))


def test_accuracy_formula_against_monte_carlo():
    rng = np.random.default_rng(1)
    d, eps, n = 8, 0.1, 200_000
    w = rng.standard_normal(d); w /= np.linalg.norm(w)
    v = w + 0.7 * rng.standard_normal(d); v /= np.linalg.norm(v)
    x = rng.standard_normal((n, d))
    y = np.sign(x @ w) * np.where(rng.random(n) < eps, -1, 1)
    acc = np.mean(np.sign(x @ v) == y)
    expect = theory.accuracy_from_cos(v @ w, eps)
    # binomial 99.9% interval: 3.3 sqrt(p(1-p)/n)
    assert abs(acc - expect) < 3.3 * math.sqrt(expect * (1 - expect) / n)


def test_drift_halves_edge_every_half_life():
    p, w = theory.drift_spectrum(16, 86400.0)
    ages = np.array([0.5, 1, 2, 3, 4, 6]) * 86400.0
    edge = 2 * theory.accuracy_from_cos(theory.concept_cos(ages, p, w), 0.0) - 1
    # the least-squares fit is within 0.005 of 2^-a over 8 half-lives (see unit_drift_spectrum)
    np.testing.assert_allclose(edge, 0.5 ** (ages / 86400.0), atol=0.005)


def test_stored_spectra_fit_as_well_as_a_fresh_fit():
    """The stored spectra are optimiser output: a refit with another scipy lands a few 1e-6
    away, so compare what the fit minimises, the squared error of the edge against the drift
    law 2^-a on the fit's grid, which a typo in a stored value would spoil."""
    ages = np.linspace(0.0, drift.DRIFT_FIT_HALF_LIVES, 200)

    def resid(p, w):
        c = np.cos(np.outer(ages, w)) @ np.asarray(p)
        return 1 - 2 * np.arccos(np.clip(c, -1, 1)) / np.pi - 0.5 ** ages

    for planes in range(2, 9):
        fresh = np.sum(resid(*theory.fit_unit_drift_spectrum(planes)) ** 2)
        stored = np.sum(resid(*drift._FITTED_UNIT_SPECTRA[planes]) ** 2)
        assert stored <= fresh * (1 + 1e-3) + 1e-12, planes
    # the documented accuracy of the 8-plane law (docs/fidelity.md): edge error below 0.006
    assert np.max(np.abs(resid(*drift._FITTED_UNIT_SPECTRA[8]))) < 0.006


def test_no_drift_when_half_life_is_never():
    p, w = theory.drift_spectrum(16, math.inf)
    assert theory.concept_cos(1e9, p, w) == pytest.approx(1.0)


def test_window_model_cos_zero_window_is_concept_cos():
    p, w = theory.drift_spectrum(16, 3 * 86400.0)
    a = np.array([0.0, 3600.0, 86400.0])
    np.testing.assert_allclose(theory.window_model_cos(a, 0.0, p, w), theory.concept_cos(a, p, w))


def test_window_model_cos_matches_numeric_average():
    p, w = theory.drift_spectrum(16, 86400.0)
    W, age = 2 * 86400.0, 3600.0
    s = np.linspace(-W, 0, 20001)
    # concept as a vector: stack cos and sin components per plane
    comps = np.concatenate([np.sqrt(p) * np.cos(np.outer(s, w)), np.sqrt(p) * np.sin(np.outer(s, w))], axis=1)
    mean = np.trapezoid(comps, s, axis=0) / W
    now = np.concatenate([np.sqrt(p) * np.cos(w * age), np.sqrt(p) * np.sin(w * age)])
    expect = mean @ now / np.linalg.norm(mean)
    assert theory.window_model_cos(age, W, p, w) == pytest.approx(expect, abs=1e-6)


def test_periodic_mean_age():
    assert theory.periodic_mean_age_s(3600, 7200) == 7200


def test_pooled_response_cdf_mixes_its_phases_each_with_its_own_pool():
    # the vectorised Allen–Cunneen path against response_cdf phase by phase (itself tested
    # against closed forms above): each phase its own rate, pool size and weight
    from advisor import tails
    from advisor.theory import mgc_wait_tail, pooled_response_cdf, response_cdf
    pts = -0.01 * np.log(1.0 - (np.arange(1000) + 0.5) / 1000)     # exponential, mean 10 ms
    lams, cs, w = [50.0, 120.0, 300.0], [1, 2, 4], [0.2, 0.3, 0.5]
    f = pooled_response_cdf(pts, lams, cs, w, 0.01, 1.0)
    for t in (0.001, 0.01, 0.03, 0.1):
        ref = sum(wi * response_cdf(t, pts, lam, 0.01, 1.0, c) for lam, c, wi in zip(lams, cs, w))
        assert f(t) == pytest.approx(ref, rel=1e-12)
    assert f(pts[0] * 0.5) == 0.0
    # an overloaded phase (300/s at 2 servers of 10 ms) answers nothing; the others as usual
    g = pooled_response_cdf(pts, lams, [1, 2, 2], w, 0.01, 1.0)
    assert g(0.1) == pytest.approx(0.2 * response_cdf(0.1, pts, 50.0, 0.01, 1.0, 1)
                                   + 0.3 * response_cdf(0.1, pts, 120.0, 0.01, 1.0, 2), rel=1e-12)
    # deterministic service: the exact M/D/c wait, or Allen–Cunneen's tail when asked
    d = np.full(1000, 0.01)
    exact = pooled_response_cdf(d, lams, cs, w, 0.01, 0.0)
    ac = pooled_response_cdf(d, lams, cs, w, 0.01, 0.0, exact_mdc=False)
    for t in (0.012, 0.02, 0.04):
        ref_exact = sum(wi * float(tails.mdc_wait_cdf(t - 0.01, lam, 0.01, c)) for lam, c, wi in zip(lams, cs, w))
        ref_ac = sum(wi * (1.0 - float(mgc_wait_tail(t - 0.01, lam, 0.01, 0.0, c))) for lam, c, wi in zip(lams, cs, w))
        assert exact(t) == pytest.approx(ref_exact, rel=1e-12)
        assert ac(t) == pytest.approx(ref_ac, rel=1e-12)
    assert abs(exact(0.02) - ac(0.02)) > 1e-3
    # and with an overloaded phase, the others keep Allen–Cunneen's tail when asked
    ac2 = pooled_response_cdf(d, lams, [1, 2, 2], w, 0.01, 0.0, exact_mdc=False)
    ref = sum(wi * (1.0 - float(mgc_wait_tail(0.02 - 0.01, lam, 0.01, 0.0, c)))
              for lam, c, wi in zip(lams[:2], cs[:2], w[:2]))
    assert ac2(0.02) == pytest.approx(ref, rel=1e-12)
