"""The advisor against the simulator on every preset and every training and serving mode,
in CI (issue 18). spam and ad-conversion as advised are in test_selfcheck.py; these add the
other presets and pin the modes the presets do not choose: continuous and static training,
dynamic serving of a table preset, and a hybrid with a real queue behind its table hits.

Each case runs `selfcheck._preset_checks` in its quick form: p99 latency and hit ratio over
20 minutes at the full rate, model age and accuracy lost over up to 14 days at a low rate;
every check's tolerance is stated in mlarch/selfcheck.py and docs/fidelity.md."""
import pytest

from mlarch import selfcheck

CASES = {
    "spam-slow-change": ("spam-slow-change", ()),
    "voice-to-text": ("voice-to-text", ()),
    "voice-personalized": ("voice-personalized", ()),
    "continuous training": ("spam", ("architecture.training=continuous",)),
    "static training": ("spam", ("architecture.training=static",)),
    "dynamic serving of a table preset": ("voice-to-text", ("architecture.serving=dynamic",)),
    "hybrid with queueing behind the hits": ("spam", ("traffic.cardinality=1e6", "traffic.peakedness={zipf_s: 1.2}",
                                                      "architecture.serving=hybrid", "architecture.cache_top_k=1e4")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_advisor_agrees_with_simulator_in_every_mode(case):
    name, sets = CASES[case]
    checks = selfcheck._preset_checks(name, 1, quick=True, sets=sets)
    assert {c.name for c in checks} >= {"p99 latency", "cache hit ratio", "mean model age", "accuracy lost to staleness"}
    bad = [(c.name, c.theory, c.simulated, c.tolerance) for c in checks if not c.passed]
    assert not bad


def test_the_modes_are_the_ones_named():
    """The pinned cases run the mode they are named after (a typo in a --set would not)."""
    from advisor import design_for
    from scenarios import load_scenario
    d = design_for(load_scenario("spam", list(CASES["continuous training"][1])))
    assert d.training == "continuous"
    d = design_for(load_scenario("spam", list(CASES["hybrid with queueing behind the hits"][1])))
    assert d.serving == "hybrid" and d.cache_top_k == 10_000 and d.replicas >= 1
    d = design_for(load_scenario("voice-to-text", list(CASES["dynamic serving of a table preset"][1])))
    assert d.serving == "dynamic"
