"""advisor.theory against closed forms, hand-computed cases and brute force (issue 18, item 5:
written to kill the mutants `make mutate` found surviving or unreached; docs/testing.md).

Every expected value here is derived independently of the function under test: a textbook
closed form written out from its terms, a direct sum, scipy, or a Monte Carlo estimate with a
stated interval. Tolerances: rel=1e-12 is float rounding of a few dozen operations."""
import math

import numpy as np
import pytest
from scipy import integrate, stats

from advisor import theory

ROUND = 1e-12    # float rounding of a short closed form


@pytest.fixture(autouse=True)
def _fresh_erlang_cache():
    # erlang_b is memoised: a value cached by another test must not hide the function's code
    theory.erlang_b.cache_clear()
    yield
    theory.erlang_b.cache_clear()


def _erlang_b_direct(c, a):
    """(a^c/c!) / Σ_{k<=c} a^k/k! with exact factorials (Erlang 1917)."""
    terms = [a ** k / math.factorial(k) for k in range(c + 1)]
    return terms[-1] / math.fsum(terms)


def _erlang_c_direct(c, a):
    """Erlang C from its textbook form: (a^c/c! · c/(c−a)) / (Σ_{k<c} a^k/k! + a^c/c! · c/(c−a))."""
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (math.fsum(a ** k / math.factorial(k) for k in range(c)) + top)


# ------------------------------------------------------------------ Erlang B and C

@pytest.mark.parametrize("c,a", [(1, 0.3), (2, 1.5), (7, 3.0), (30, 25.0), (64, 60.0), (65, 60.0), (80, 70.0),
                                 (80, 0.9)])
def test_erlang_b_both_branches_match_direct_sum(c, a):
    # c = 64 / 65 straddle the switch from the recursion to the incomplete-gamma form
    # abs=0: at (80, 0.9) B is 3e-123, which pytest's default absolute tolerance would accept as 0
    assert theory._erlang_b(c, a) == pytest.approx(_erlang_b_direct(c, a), rel=1e-10, abs=0)


def test_erlang_b_zero_load_and_zero_servers():
    # no traffic blocks nothing, on both branches; with no server everything is blocked
    assert theory._erlang_b(3, 0.0) == 0.0
    assert theory._erlang_b(100, 0.0) == 0.0
    assert theory._erlang_b(0, 2.0) == 1.0


def test_erlang_b_huge_load_many_servers():
    # a = 1e6 >> c = 100: B → 1 − c/a (all but c of a erlangs blocked); the Poisson cdf underflows
    # to 0 and the function answers the limit 1, within c/a = 1e-4 of the true value
    b = theory._erlang_b(100, 1e6)
    assert b == pytest.approx(1.0 - 100 / 1e6, abs=1e-4)
    assert b <= 1.0


@pytest.mark.parametrize("c,a", [(1, 0.5), (3, 2.4), (8, 7.0), (20, 12.0)])
def test_erlang_c_matches_textbook_form(c, a):
    assert theory.erlang_c(c, a) == pytest.approx(_erlang_c_direct(c, a), rel=1e-10)


def test_erlang_c_overloaded_always_waits():
    assert theory.erlang_c(4, 4.0) == pytest.approx(1.0, rel=ROUND)
    assert theory.erlang_c(4, 9.0) == 1.0


# ------------------------------------------------------------------ M/M/c, M/G/1, M/D/1

def test_mmc_mean_wait_textbook_and_unstable():
    lam, mu, c = 2.4, 1.0, 3
    assert theory.mmc_wait_mean_s(lam, mu, c) == pytest.approx(_erlang_c_direct(c, lam / mu) / (c * mu - lam),
                                                                rel=1e-10)
    assert theory.mmc_wait_mean_s(3.0, 1.0, 3) == math.inf      # ρ = 1 exactly
    assert theory.mmc_wait_mean_s(5.0, 1.0, 3) == math.inf


def test_mmc_wait_quantile_textbook():
    lam, mu, c = 2.4, 2.0, 2
    C = _erlang_c_direct(c, lam / mu)
    # P(Wq > t) = C e^{-(cμ−λ)t}  ⇒  t_p = ln(C/(1−p)) / (cμ−λ) for p > 1 − C
    for p in (0.9, 0.99, 0.999):
        assert theory.mmc_wait_quantile_s(p, lam, mu, c) == pytest.approx(math.log(C / (1 - p)) / (c * mu - lam),
                                                                           rel=1e-10)
    assert 1 - C > 0.3
    assert theory.mmc_wait_quantile_s(0.3, lam, mu, c) == 0.0   # most arrivals do not wait
    assert theory.mmc_wait_quantile_s(0.5, 4.0, 2.0, 2) == math.inf
    assert theory.mmc_wait_quantile_s(0.5, 5.0, 2.0, 2) == math.inf


def test_pk_mean_wait_values_and_unstable():
    # exponential service E[S²] = 2/μ²: M/M/1 Wq = ρ/(μ − λ)
    assert theory.mg1_wait_mean_s(0.5, 1.0, 2.0) == pytest.approx(0.5 / 0.5, rel=ROUND)
    # λ = 2, E[S] = 0.25, E[S²] = 0.1: 2·0.1 / (2·0.5) = 0.2
    assert theory.mg1_wait_mean_s(2.0, 0.25, 0.1) == pytest.approx(0.2, rel=ROUND)
    assert theory.mg1_wait_mean_s(4.0, 0.25, 0.1) == math.inf   # ρ = 1
    assert theory.mg1_wait_mean_s(5.0, 0.25, 0.1) == math.inf


def _md1_cdf_hand(t, lam, d):
    """Erlang's M/D/1 formula written out for t < 3D:
    (1−ρ)[e^{λt} − λ(t−D)e^{λ(t−D)}·1{t≥D} + (λ(t−2D))²/2 e^{λ(t−2D)}·1{t≥2D}]."""
    rho = lam * d
    s = math.exp(lam * t)
    if t >= d:
        s -= lam * (t - d) * math.exp(lam * (t - d))
    if t >= 2 * d:
        s += (lam * (t - 2 * d)) ** 2 / 2 * math.exp(lam * (t - 2 * d))
    return (1 - rho) * s


@pytest.mark.parametrize("t", [0.0, 0.3, 0.99, 1.0, 1.5, 2.0, 2.7])
def test_md1_cdf_matches_formula_written_out(t):
    lam, d = 0.6, 1.0
    assert theory.md1_wait_cdf(t, lam, d) == pytest.approx(_md1_cdf_hand(t, lam, d), rel=1e-12)


def test_md1_cdf_other_scale_and_negative_time():
    lam, d = 3.0, 0.2          # ρ = 0.6 with D ≠ 1: the sum is in λ(kD − t), not in t/D
    for t in (0.05, 0.25, 0.45):
        assert theory.md1_wait_cdf(t, lam, d) == pytest.approx(_md1_cdf_hand(t, lam, d), rel=1e-12)
    assert theory.md1_wait_cdf(-1e-9, lam, d) == 0.0
    assert theory.md1_wait_cdf(-5.0, lam, d) == 0.0


def test_md1_cdf_matches_simulated_lindley_recursion():
    # brute force: W_{n+1} = max(0, W_n + D − A_n), 200,000 customers (first 1,000 dropped);
    # the binomial 99.9% half-width 3.3·sqrt(F(1−F)/n) is ≤ 0.004, serial correlation of W
    # widens it: allow 0.015
    rng = np.random.default_rng(7)
    lam, d, n = 0.7, 1.0, 200_000
    gaps = rng.exponential(1 / lam, n)
    w = np.empty(n)
    cur = 0.0
    for i in range(n):
        w[i] = cur
        cur = max(0.0, cur + d - gaps[i])
    w = w[1000:]
    for t in (0.0, 0.5, 1.0, 2.0, 4.0):
        assert theory.md1_wait_cdf(t, lam, d) == pytest.approx(np.mean(w <= t), abs=0.015)


# ------------------------------------------------------------------ Allen–Cunneen M/G/c

def test_allen_cunneen_mean_textbook():
    lam, es, c = 2.4, 0.5, 2       # a = 1.2
    mmc = _erlang_c_direct(c, lam * es) / (c / es - lam)
    for cs2 in (0.0, 0.43, 1.0, 3.0):
        assert theory.mgc_wait_mean_s(lam, es, cs2, c) == pytest.approx(mmc * (1 + cs2) / 2, rel=1e-10)
    # c = 1, deterministic service: Allen–Cunneen is Pollaczek–Khinchine exactly, ρD/(2(1−ρ))
    assert theory.mgc_wait_mean_s(0.5, 1.0, 0.0, 1) == pytest.approx(0.5 / (2 * 0.5), rel=ROUND)


def test_ac_wait_tail_closed_form():
    lam, es, cs2, c = 2.4, 0.5, 0.43, 2
    C = _erlang_c_direct(c, lam * es)
    theta = 2 * (c / es - lam) / (1 + cs2)
    t = np.array([0.0, 0.1, 0.5, 2.0])
    np.testing.assert_allclose(theory.mgc_wait_tail(t, lam, es, cs2, c), C * np.exp(-theta * t), rtol=1e-10)
    # negative times are clamped to 0: P(Wq > −1) is P(Wq > 0) = C by this function's convention
    assert float(theory.mgc_wait_tail(-1.0, lam, es, cs2, c)) == pytest.approx(C, rel=1e-10)
    # its mean ∫ P(Wq > t) dt is the Allen–Cunneen mean (the rescaling it is built for)
    mean, _ = integrate.quad(lambda x: float(theory.mgc_wait_tail(x, lam, es, cs2, c)), 0, np.inf)
    assert mean == pytest.approx(theory.mgc_wait_mean_s(lam, es, cs2, c), rel=1e-8)


def test_ac_wait_tail_unstable_is_one_with_input_shape():
    t = np.array([[0.0, 1.0, 5.0]])
    out = theory.mgc_wait_tail(t, 4.0, 0.5, 1.0, 2)     # λ = cμ exactly
    assert out.shape == (1, 3) and np.all(out == 1.0)
    assert np.all(theory.mgc_wait_tail(t, 9.0, 0.5, 1.0, 2) == 1.0)
    # single-precision times are computed in double: the same tail as for the float64 times
    t32 = np.array([0.01, 0.37, 2.5], dtype=np.float32)
    C, theta = _erlang_c_direct(2, 1.2), 2 * (2 / 0.5 - 2.4) / (1 + 0.43)
    got = theory.mgc_wait_tail(t32, 2.4, 0.5, 0.43, 2)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, C * np.exp(-theta * t32.astype(np.float64)), rtol=1e-12)
    # probabilities are floats even for integer times
    assert theory.mgc_wait_tail(np.array([0, 1, 2]), 9.0, 0.5, 1.0, 2).dtype == np.float64
    assert theory.mgc_wait_tail(np.array([0, 1, 2]), 1.0, 0.5, 1.0, 2).dtype == np.float64


def test_response_cdf_hand_computed():
    # three equally weighted service points; at t = 0.3 the points 0.1, 0.3 can finish (the one
    # equal to t with zero wait), 0.5 cannot:
    # F(t) = [(1 − C e^{−θ·0.2}) + (1 − C)] / 3
    lam, es, cs2, c = 1.0, 0.3, 1.0, 1     # exponential-like c_s² = 1: the exponential tail
    pts = np.array([0.1, 0.3, 0.5])
    C = lam * es                            # M/M/1: C = ρ
    theta = 2 * (1 / es - lam) / (1 + cs2)
    expect = ((1 - C * math.exp(-theta * 0.2)) + (1 - C)) / 3
    assert theory.response_cdf(0.3, pts, lam, es, cs2, c) == pytest.approx(expect, rel=1e-12)
    assert theory.response_cdf(0.05, pts, lam, es, cs2, c) == 0.0
    assert isinstance(theory.response_cdf(0.05, pts, lam, es, cs2, c), float)


def test_response_cdf_mm1_sojourn():
    # M/M/1 response time is Exp(μ − λ) (Gross & Harris §2.2). Service as 4,000 midpoint
    # quantiles of Exp(μ): the quadrature error of the midpoint rule is ≲ 1/n = 2.5e-4
    lam, mu, n = 0.6, 1.0, 4000
    pts = stats.expon.ppf((np.arange(n) + 0.5) / n, scale=1 / mu)
    for t in (0.5, 2.0, 6.0):
        assert theory.response_cdf(t, pts, lam, 1 / mu, 1.0, 1) == pytest.approx(1 - math.exp(-(mu - lam) * t),
                                                                                 abs=5e-4)


# ------------------------------------------------------------------ mixture quantile

def test_mixture_quantile_exponential_and_mixture():
    # Exp(1) p-quantile −ln(1 − p); the bisection stops at relative width 1e-7
    f = lambda t: 1 - math.exp(-t)   # noqa: E731
    for p in (0.5, 0.9, 0.999):
        assert theory.mixture_quantile(p, [f], [1.0], 100.0) == pytest.approx(-math.log(1 - p), rel=2e-7)
    # a tiny quantile: the relative stopping rule still gives 1e-7 relative (not 1e-7 absolute)
    g = lambda t: min(t / 1e-4, 1.0)  # noqa: E731   uniform on [0, 1e-4]
    assert theory.mixture_quantile(0.5, [g], [1.0], 1.0) == pytest.approx(5e-5, rel=2e-7)
    # 0.3·U(0, 1) + 0.7·U(0, 10): F(t) = 0.3 + 0.07 t for t ≥ 1 ⇒ F(t) = 0.65 at t = 5
    u1 = lambda t: min(t, 1.0)        # noqa: E731
    u10 = lambda t: min(t / 10, 1.0)  # noqa: E731
    assert theory.mixture_quantile(0.65, [u1, u10], [0.3, 0.7], 20.0) == pytest.approx(5.0, rel=2e-7)


def test_mixture_quantile_unreached_and_zero_weight_phase():
    f = lambda t: 1 - math.exp(-t)   # noqa: E731
    assert theory.mixture_quantile(0.99, [f], [1.0], 2.0) == math.inf    # F(2) = 0.865 < 0.99
    # a phase of weight 0 is not evaluated at all (an overloaded phase's CDF may be undefined)
    nan_cdf = lambda t: math.nan     # noqa: E731
    assert theory.mixture_quantile(0.5, [f, nan_cdf], [1.0, 0.0], 50.0) == pytest.approx(math.log(2), rel=2e-7)


def test_mixture_quantile_is_the_generalised_inverse_on_a_plateau():
    # ½U(0, 1) + ½U(2, 3) has F = ½ on [1, 2]: the ½-quantile is inf{t: F(t) ≥ ½} = 1, not 2
    u01 = lambda t: min(max(t, 0.0), 1.0)          # noqa: E731
    u23 = lambda t: min(max(t - 2.0, 0.0), 1.0)    # noqa: E731
    assert theory.mixture_quantile(0.5, [u01, u23], [0.5, 0.5], 4.0) == pytest.approx(1.0, rel=2e-7)


def test_mixture_quantile_stops_at_relative_width():
    # the bisection stops once the bracket is narrower than 1e-7 of its top: from [0, 100] around
    # q = ln 2 that takes at most ⌈log2(100 / (1e-7 · ln 2))⌉ = 31 halvings, one CDF call each,
    # plus the call at hi (the advisor's p99 searches rely on ~30 evaluations, not 100)
    calls = []

    def f(t):
        calls.append(t)
        return 1 - math.exp(-t)
    assert theory.mixture_quantile(0.5, [f], [1.0], 100.0) == pytest.approx(math.log(2), rel=2e-7)
    assert len(calls) <= 1 + math.ceil(math.log2(100 / (1e-7 * math.log(2))))


def test_mixture_quantile_reached_exactly_at_hi():
    # F(hi) = p exactly is reached, not inf: U(0, 4) at p = 1 with hi = 4
    u = lambda t: min(t / 4, 1.0)    # noqa: E731
    assert theory.mixture_quantile(1.0, [u], [1.0], 4.0) == pytest.approx(4.0, rel=2e-7)


# ------------------------------------------------------------------ staleness and accuracy

def test_periodic_mean_age_uniform():
    # age uniform on (D, D + T): mean D + T/2; brute force on a fine grid of request times
    lag, period = 900.0, 3600.0
    ages = lag + (np.arange(100_000) + 0.5) / 100_000 * period
    assert theory.periodic_mean_age_s(lag, period) == pytest.approx(ages.mean(), rel=1e-12)


@pytest.mark.parametrize("cos,eps,expect", [(1.0, 0.1, 0.9), (-1.0, 0.1, 0.1), (0.0, 0.2, 0.5),
                                            (1.7, 0.0, 1.0), (-3.0, 0.0, 0.0),
                                            (0.5, 0.25, 0.75 * (2 / 3) + 0.25 / 3)])
def test_accuracy_from_cos_exact_angles(cos, eps, expect):
    # θ = 0, π, π/2, π/3 (cos 0.5): (1 − ε)(1 − θ/π) + εθ/π; |cos| > 1 is clipped
    assert float(theory.accuracy_from_cos(cos, eps)) == pytest.approx(expect, abs=ROUND)


def test_window_model_cos_with_a_static_component():
    # ω = 0 is a component that never drifts; compare with the numeric window average of the
    # concept vector (trapezoid on 40,001 points: error ~1e-9)
    p = np.array([0.25, 0.5, 0.25])
    w = np.array([0.0, 2e-5, 1e-4])
    W, age = 50_000.0, 7_000.0
    s = np.linspace(-W, 0, 40_001)
    comps = np.concatenate([np.sqrt(p) * np.cos(np.outer(s, w)), np.sqrt(p) * np.sin(np.outer(s, w))], axis=1)
    mean = np.trapezoid(comps, s, axis=0) / W
    now = np.concatenate([np.sqrt(p) * np.cos(w * age), np.sqrt(p) * np.sin(w * age)])
    expect = mean @ now / np.linalg.norm(mean)
    assert float(theory.window_model_cos(age, W, p, w)) == pytest.approx(expect, abs=1e-8)
    ages = np.array([0.0, age])
    assert theory.window_model_cos(ages, W, p, w).shape == (2,)
    # no window: the concept now against the concept `age` later, Σ p cos(ω age)
    assert float(theory.window_model_cos(age, 0.0, p, w)) == pytest.approx(float(p @ np.cos(w * age)), abs=ROUND)
    assert float(theory.window_model_cos(age, -1.0, p, w)) == pytest.approx(float(p @ np.cos(w * age)), abs=ROUND)


def test_window_model_cos_short_window_fast_drift():
    # a window under a second still averages: one plane at ω = 3 rad/s over W = 0.8 s; the mean
    # concept is (1/W)∫_{−W}^0 (cos ωs, sin ωs) ds, here by the trapezoid rule on 20,001 points
    p, w = np.array([1.0]), np.array([3.0])
    W, age = 0.8, 0.3
    s = np.linspace(-W, 0, 20_001)
    mean = np.array([np.trapezoid(np.cos(w[0] * s), s), np.trapezoid(np.sin(w[0] * s), s)]) / W
    now = np.array([math.cos(w[0] * age), math.sin(w[0] * age)])
    expect = mean @ now / np.linalg.norm(mean)
    assert float(theory.window_model_cos(age, W, p, w)) == pytest.approx(expect, abs=1e-8)
    assert abs(expect - math.cos(w[0] * age)) > 0.05       # not the zero-window answer


def test_window_model_cos_whole_period_window():
    # a window of exactly one period of the only drifting component averages it to zero: the
    # trained direction is then the static part alone, cos = sqrt(p0) · sqrt(p0)/|...| = sqrt(p0)
    p = np.array([0.36, 0.64])
    w = np.array([0.0, 2 * math.pi / 1000.0])
    assert float(theory.window_model_cos(123.0, 1000.0, p, w)) == pytest.approx(0.6, abs=1e-9)


def test_estimation_cos_one_feature_and_too_few_examples():
    # one feature: the fitted direction is the population one exactly (cos 1), whatever n
    assert theory.estimation_cos(50, 1, 0.1) == 1.0
    # n ≤ d + 1: no residual degree of freedom for d coefficients and an intercept — no estimate
    assert theory.estimation_cos(12, 11, 0.0) == 0.0
    assert theory.estimation_cos(5, 11, 0.0) == 0.0
    assert theory.estimation_cos(13, 11, 0.0) > 0.0
    # labels that are pure noise carry no signal: β = 0 would divide by zero; ε = 0.5 is excluded by
    # the callers, so check the nearest meaningful value gives a nearly orthogonal direction
    assert theory.estimation_cos(1000, 10, 0.4999) < 0.01


@pytest.mark.parametrize("d,n,eps,sc", [(9, 300, 0.1, 1.0), (5, 60, 0.0, 1.0), (9, 300, 0.0, 0.6)])
def test_estimation_cos_against_least_squares_monte_carlo(d, n, eps, sc):
    """Fit OLS on n Gaussian examples, labels sign(w̄·x) flipped w.p. ε with |w̄| = signal_cos
    (w̄ the mean concept: a shorter vector, its labels noisier — here as extra label noise from
    an orthogonal component); mean cos(fit, w̄) over 400 fits. The formula is first order in
    tan²θ: measured within 0.0025 of the mean here (3 standard errors ≈ 0.002 plus the
    first-order bias), while a wrong constant (2/π, 1 − 2ε, d − 1, |w̄|²) moves it ≥ 0.004."""
    rng = np.random.default_rng(11)
    w = np.zeros(d)
    w[0] = sc
    if sc < 1:
        w[1] = math.sqrt(1 - sc * sc)       # the label concept; the model can see only w̄ = sc·e0
    cs = []
    for _ in range(400):
        x = rng.standard_normal((n, d))
        y = np.sign(x @ w) * np.where(rng.random(n) < eps, -1, 1)
        if sc < 1:
            x = x[:, [0] + list(range(2, d))]     # w̄'s direction plus noise features
        b = np.linalg.lstsq(x, y, rcond=None)[0]
        cs.append(b[0] / np.linalg.norm(b))
    feats = d if sc == 1 else d - 1
    est = (theory.estimation_cos(n, feats, eps, signal_cos=sc) if sc < 1
           else theory.estimation_cos(n, feats, eps))          # the default: the full concept
    assert est == pytest.approx(np.mean(cs), abs=0.0025 + 3 * np.std(cs) / math.sqrt(len(cs)))


def test_accuracy_vs_age_without_drift_is_label_noise_limit():
    # half-life never: the concept does not move; a model of infinite data scores 1 − ε at any age
    acc = theory.accuracy_vs_age(np.array([0.0, 1e6]), features=8, half_life_s=math.inf, window_s=3600.0,
                                 label_noise=0.1)
    np.testing.assert_allclose(acc, 0.9, atol=ROUND)
    # with finite examples the estimation angle lowers it to (1−ε)(1−θ/π) + εθ/π, θ = acos(est)
    est = theory.estimation_cos(500, 8, 0.1)
    th = math.acos(est)
    acc = theory.accuracy_vs_age(0.0, features=8, half_life_s=math.inf, window_s=3600.0, label_noise=0.1,
                                 examples=500)
    assert float(acc) == pytest.approx(0.9 * (1 - th / math.pi) + 0.1 * th / math.pi, abs=1e-12)


def test_mean_accuracy_over_ages_against_quad():
    kw = dict(features=16, half_life_s=86400.0, window_s=3 * 86400.0, label_noise=0.05)
    lo, hi = 3600.0, 5 * 86400.0
    ref, _ = integrate.quad(lambda a: float(theory.accuracy_vs_age(a, **kw)), lo, hi, epsabs=1e-12)
    # Simpson on 257 points of a smooth function: error far below 1e-8
    assert theory.mean_accuracy_over_ages(lo, hi, **kw) == pytest.approx(ref / (hi - lo), abs=1e-8)
    # an empty range is the accuracy at that age
    assert theory.mean_accuracy_over_ages(lo, lo, **kw) == pytest.approx(float(theory.accuracy_vs_age(lo, **kw)),
                                                                       abs=ROUND)
