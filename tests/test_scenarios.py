"""The scenario language: every class of bad input gets one line, exit 2, the field named."""
import pytest

from scenarios import ScenarioError, load_scenario, preset_names
from tests.conftest import SPAM_MIN


def test_presets_load_and_are_frozen():
    for name in preset_names():
        sc = load_scenario(name)
        with pytest.raises(Exception):
            sc.traffic.rate = 1.0  # immutable after load


def test_minimal_scenario_defaults(write):
    sc = load_scenario(write(SPAM_MIN))
    assert sc.horizon == 86400 and sc.seed == 0 and sc.data.label_noise == 0
    assert sc.costs.vcpu_hour == pytest.approx(0.0864)
    assert sc.traffic.zipf_s == 1.0


def test_top_share_is_solved_for_s(write):
    text = SPAM_MIN.replace("peakedness: {zipf_s: 1.0}", "peakedness: {top_share: {keys: 1%, traffic: 60%}}")
    sc = load_scenario(write(text))
    from scenarios.popularity import zipf_coverage
    assert zipf_coverage(10, 1000, sc.traffic.zipf_s) == pytest.approx(0.6, abs=1e-6)


def test_override_applies_and_validates(write):
    sc = load_scenario(write(SPAM_MIN), ["traffic.rate=120/s", "architecture.serving=hybrid"])
    assert sc.traffic.rate == 120 and sc.architecture.serving == "hybrid"
    with pytest.raises(ScenarioError, match=r"--set traffic.rate=-3/s: traffic.rate"):
        load_scenario(write(SPAM_MIN), ["traffic.rate=-3/s"])
    with pytest.raises(ScenarioError, match="did you mean 'rate'"):
        load_scenario(write(SPAM_MIN), ["traffic.rat=3/s"])


BAD = {
    # name: (text or bytes, expected substring of the error line)
    "malformed": ("name: x\ntraffic: [1, 2\n", "malformed YAML"),
    "empty": ("", "empty"),
    "only-comments": ("# nothing\n", "empty"),
    "binary": (b"\x00\x01\x02name: x", "binary"),
    "not-utf8": (b"name: \xff\xfe\n", "UTF-8"),
    "not-a-mapping": ("- 1\n- 2\n", "mapping"),
    "wrong-type": (SPAM_MIN.replace("rate: 50/s", "rate: [1]"), "traffic.rate"),
    "nan": (SPAM_MIN.replace("rate: 50/s", "rate: .nan"), "traffic.rate"),
    "inf": (SPAM_MIN.replace("rate: 50/s", "rate: .inf"), "traffic.rate"),
    "negative-rate": (SPAM_MIN.replace("rate: 50/s", "rate: -5/s"), "traffic.rate"),
    "amplitude": (SPAM_MIN.replace("rate: 50/s", "rate: 50/s\n  diurnal_amplitude: 1.0"), "traffic.diurnal_amplitude"),
    "label-noise": (SPAM_MIN.replace("concept_half_life: 3d", "concept_half_life: 3d\n  label_noise: 0.5"), "data.label_noise"),
    "p99-below-median": (SPAM_MIN.replace("{distribution: exponential, mean: 10ms}",
                                          "{distribution: lognormal, median: 20ms, p99: 10ms}"), "model.inference_time"),
    "share-over-100": (SPAM_MIN.replace("peakedness: {zipf_s: 1.0}", "peakedness: {top_share: {keys: 1%, traffic: 120%}}"),
                       "traffic.peakedness.top_share.traffic"),
    "both-peakedness": (SPAM_MIN.replace("peakedness: {zipf_s: 1.0}",
                                         "peakedness: {zipf_s: 1.0, top_share: {keys: 1%, traffic: 60%}}"), "traffic.peakedness"),
    "python-tag": ("!!python/object/apply:os.system ['echo hi']\n", "tag"),
    "custom-tag": (SPAM_MIN.replace("rate: 50/s", "rate: !rate 50"), "traffic.rate"),
    "alias-bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", "alias bomb"),
    "duplicate-key": (SPAM_MIN.replace("rate: 50/s", "rate: 50/s\n  rate: 60/s"), "duplicate key"),
    "unknown-key": (SPAM_MIN.replace("rate: 50/s", "rat: 50/s"), "did you mean 'rate'"),
    "missing-field": (SPAM_MIN.replace("  latency_p99: 100ms\n", "  max_accuracy_loss: 1%\n"), "slo.latency_p99"),
    "bad-unit": (SPAM_MIN.replace("rate: 50/s", "rate: 50/fortnight"), "traffic.rate"),
    "absurd-cardinality": (SPAM_MIN.replace("cardinality: 1000", "cardinality: 1e30"), "traffic.cardinality"),
    "absurd-horizon": (SPAM_MIN + "horizon: 100000d\n", "horizon"),
    "absurd-duration": (SPAM_MIN.replace("concept_half_life: 3d", "concept_half_life: 1e12d"), "data.concept_half_life"),
    "absurd-p99": (SPAM_MIN.replace("{distribution: exponential, mean: 10ms}",
                                    "{distribution: lognormal, median: 1ms, p99: 4.19e+18}"), "model.inference_time"),
    "absurd-price": (SPAM_MIN + "costs: {vcpu_hour: 1e300}\n", "costs.vcpu_hour"),
    "bad-name": (SPAM_MIN.replace("name: mini", "name: Mini Scenario!"), "name"),
    "static-unbounded": (SPAM_MIN.replace("cardinality: 1000", "cardinality: unbounded")
                         + "architecture: {serving: static}\n", "static"),
    "fault-feature": (SPAM_MIN.replace("concept_half_life: 3d", "concept_half_life: 3d\n  faults:\n"
                                       "    - {at: 1d, kind: missing_feature, feature: 99}"), "faults"),
    "bad-distribution": (SPAM_MIN.replace("distribution: exponential", "distribution: gamma"), "model.inference_time"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_exit_2(case, cli, write):
    text, expect = BAD[case]
    path = write(text)
    res = cli("advise", path)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert expect in lines[0]
    assert str(path) in lines[0]
    assert "Traceback" not in res.output + res.stderr
    assert res.stdout == ""


def test_error_names_the_line(cli, write):
    res = cli("advise", write(SPAM_MIN.replace("rate: 50/s", "rate: -5/s")))
    assert ":3: traffic.rate:" in res.stderr  # `rate:` is on line 3


def test_missing_file_and_unknown_preset(cli, tmp_path):
    res = cli("advise", tmp_path / "nope.yaml")
    assert res.exit_code == 2 and "no such file" in res.stderr
    res = cli("advise", "spma")
    assert res.exit_code == 2 and "did you mean 'spam'" in res.stderr


def test_bad_override_syntax(cli):
    res = cli("advise", "spam", "--set", "traffic.rate")
    assert res.exit_code == 2 and "PATH=VALUE" in res.stderr
