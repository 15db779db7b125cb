"""Fidelity: the simulator against theory and the advisor against the simulator.

Each check carries its own tolerance (3 × the 95% batch-means half-width, plus histogram
resolution, plus the stated error of an approximation); see advisor/selfcheck.py and
docs/fidelity.md. Several seeds guard against a lucky one."""
import json

import pytest

from mlarch import selfcheck


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_queueing_against_erlang_and_pk(seed):
    checks = []
    checks += selfcheck._queue_checks("M/M/1", dict(distribution="exponential", mean=0.0004), 2000, 1, 2e5,
                                      seed, mean_s=0.0004, exact_mmc=True)
    checks += selfcheck._queue_checks("M/M/4", dict(distribution="exponential", mean=0.002), 1600, 4, 2e5,
                                      seed, mean_s=0.002, exact_mmc=True)
    checks += selfcheck._lognormal_mg1(2e5, seed)
    bad = [(c.group, c.name, c.theory, c.simulated, c.tolerance) for c in checks if not c.passed]
    assert not bad


@pytest.mark.parametrize("seed", [1, 2])
def test_hit_ratio_age_and_drift(seed):
    checks = selfcheck._hit_checks(2e5, seed, quick=True) + [selfcheck._age_check(seed, quick=True)]
    checks += selfcheck._drift_checks(seed, quick=True) + selfcheck._diurnal_check(seed)
    bad = [(c.group, c.name, c.theory, c.simulated, c.tolerance) for c in checks if not c.passed]
    assert not bad


def test_a_wrong_theory_fails():
    # the checks can fail: compare M/M/1 waits with the M/D/1 formula (half the wait)
    c = selfcheck._queue_checks("M/M/1", dict(distribution="exponential", mean=0.0004), 2000, 1, 2e5, 1,
                                mean_s=0.0004, es2=0.0004 ** 2)[0]
    assert not c.passed


@pytest.mark.parametrize("preset", ["spam", "ad-conversion"])
def test_advisor_agrees_with_simulator(preset):
    checks = selfcheck._preset_checks(preset, 1, quick=True)
    bad = [(c.name, c.theory, c.simulated, c.tolerance) for c in checks if not c.passed]
    assert not bad


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["voice-to-text", "voice-personalized", "spam-slow-change"])
@pytest.mark.parametrize("seed", [1, 2])
def test_advisor_agrees_with_simulator_slow(preset, seed):
    checks = selfcheck._preset_checks(preset, seed, quick=False)
    bad = [(c.name, c.theory, c.simulated, c.tolerance) for c in checks if not c.passed]
    assert not bad


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_full_selfcheck(seed):
    bad = [(c.group, c.name) for c in selfcheck.run(quick=False, seed=seed) if not c.passed]
    assert not bad


def test_selfcheck_cli_json_shape(cli, monkeypatch):
    # the command's shape and exit code, on a cheap subset of the experiments
    real = selfcheck.run
    monkeypatch.setattr(selfcheck, "run", lambda quick, seed, progress: real(quick, seed, progress, presets=[]))
    res = cli("selfcheck", "--quick", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["passed"] is True and len(doc["checks"]) >= 15
    for c in doc["checks"]:
        assert {"check", "theory", "simulated", "ci95", "rel_error", "passed"} <= set(c)


def test_selfcheck_cli_exits_1_on_a_mismatch(cli, monkeypatch):
    bad = selfcheck.Check("g", "deliberate mismatch", 1.0, 2.0, 1.9, 2.1, 0.1)
    monkeypatch.setattr(selfcheck, "run", lambda quick, seed, progress: [bad])
    res = cli("selfcheck", "--quick")
    assert res.exit_code == 1 and "FAIL" in res.stdout
