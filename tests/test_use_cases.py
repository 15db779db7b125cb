"""Held-out use cases beyond the presets: the decision the course's rules imply, and why.

Each case is written from its own domain (not tuned to the advisor); the test checks that the
advisor reaches the decision the rules give. Rules (Google Cloud, Architecting Production ML
Systems): training is static when the world changes slowly enough that a frozen model stays
within the accuracy budget for the deployment's lifetime, dynamic otherwise; serving is static
for a small input space, dynamic for a huge and flat one, hybrid for a huge and peaked one.
Three cases cannot be met as given: each listed remedy, applied with --set, must make the goal
met (the advisor checks this itself; the test re-checks it from the outside).
"""
import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from advisor import advise
from scenarios import load_scenario


def _case(name, *, rate, card, s, velocity, half_life, inference, slo, label_delay="0s",
          train="{fixed: 5m, per_million_examples: 10m}", window="2d", budget=0.02, amplitude=0.3,
          horizon="90d", extra=None):
    doc = {"name": name, "horizon": horizon,
           "traffic": {"rate": rate, "diurnal_amplitude": amplitude, "cardinality": card,
                       "peakedness": {"zipf_s": s}},
           "data": {"velocity": velocity, "concept_half_life": half_life, "label_delay": label_delay},
           "model": {"inference_time": yaml.safe_load(inference), "train_time": yaml.safe_load(train),
                     "training_window": window},
           "slo": {"latency_p99": slo, "max_accuracy_loss": budget}}
    for path, v in (extra or {}).items():
        cur = doc
        *head, last = path.split(".")
        for h in head:
            cur = cur.setdefault(h, {})
        cur[last] = v
    return doc


CASES = {
    # card fraud: every transaction is new (unbounded, flat); fraud rings adapt within a week;
    # analysts confirm alerts within the hour -> dynamic training, dynamic serving
    "fraud": (_case("fraud", rate="800/s", card="unbounded", s=0.2, velocity="5e6/d", half_life="7d",
                    label_delay="1h", inference="{distribution: lognormal, median: 8ms, p99: 30ms}",
                    slo="80ms", window="3d"), "dynamic", {"dynamic"}),
    # search autocomplete: prefixes are extremely peaked over a huge space; language drifts
    # slowly -> static training, hybrid serving (precompute the head). The course's rule reads
    # the budget against the expected loss (confidence 0.5); see PEAKED_AT_DEFAULT_CONFIDENCE
    "autocomplete": (_case("autocomplete", rate="3000/s", card="1e9", s=1.3, velocity="1e7/d",
                           half_life="1095d", inference="{distribution: lognormal, median: 25ms, p99: 120ms}",
                           slo="60ms", window="30d", extra={"slo.accuracy_confidence": 0.5}),
                     "static", {"hybrid"}),
    # image tagging of uploads: every image is new; what a cat looks like does not drift
    # -> static training, dynamic serving
    "image-tagging": (_case("image-tagging", rate="50/s", card="unbounded", s=0.0, velocity="1e5/d",
                            half_life="never", inference="{distribution: lognormal, median: 150ms, p99: 600ms}",
                            slo="2s", window="30d"), "static", {"dynamic"}),
    # demand forecast per store and product: a small finite space, slow seasonal drift ->
    # static training, static serving (precompute every forecast)
    "demand-forecast": (_case("demand-forecast", rate="20/s", card="50000", s=0.8, velocity="5e4/d",
                              half_life="1095d", inference="{distribution: lognormal, median: 40ms, p99: 200ms}",
                              slo="100ms", window="60d"), "static", {"static"}),
    # keyboard next-word: very peaked over a vast space of contexts (1e12: too many to
    # precompute), language slow -> static, hybrid
    "keyboard": (_case("keyboard", rate="2000/s", card="1e12", s=1.25, velocity="1e6/d", half_life="1500d",
                       inference="{distribution: lognormal, median: 30ms, p99: 150ms}", slo="50ms",
                       window="30d", extra={"slo.accuracy_confidence": 0.5}), "static", {"hybrid"}),
    # delivery ETA: routes x times are unbounded and flat; traffic patterns shift within a day
    # -> dynamic training, dynamic serving
    "eta": (_case("eta", rate="400/s", card="unbounded", s=0.4, velocity="2e7/d", half_life="1d",
                  label_delay="30m", inference="{distribution: lognormal, median: 15ms, p99: 60ms}",
                  slo="150ms", window="12h", train="{fixed: 2m, per_million_examples: 1m}"),
            "dynamic", {"dynamic"}),
    # credit scoring: applicants are new (unbounded), repayment behaviour changes over a decade;
    # defaults are known after 90 days, so even a new model is 90 days old, which a decade-long
    # half-life tolerates -> static training, dynamic serving
    "credit": (_case("credit", rate="5/s", card="unbounded", s=0.0, velocity="2e3/d", half_life="3650d",
                     label_delay="90d", inference="{distribution: lognormal, median: 50ms, p99: 200ms}",
                     slo="1s", window="365d"), "static", {"dynamic"}),
}

# cases where nothing is feasible as given: (doc, decision, serving set, which goal, binding)
INFEASIBLE = {
    # a firehose of labels with a slow single-worker trainer: a full-window job takes weeks
    # while the concept halves in two days -> still dynamic, binding model.train_time
    "clickstream-slow-trainer": (_case("clickstream-slow-trainer", rate="500/s", card="unbounded", s=0.3,
                                       velocity="1e9/d", half_life="2d",
                                       inference="{distribution: lognormal, median: 10ms, p99: 40ms}",
                                       slo="100ms", window="7d",
                                       train="{fixed: 5m, per_million_examples: 10m}"),
                                 "dynamic", "training", "model.train_time"),
    # loan repayment in a fast-moving market: labels take 30 days, the concept halves in 3
    # -> no retraining schedule can help, binding data.label_delay
    "bnpl-default": (_case("bnpl-default", rate="30/s", card="unbounded", s=0.0, velocity="1e5/d",
                           half_life="3d", label_delay="30d",
                           inference="{distribution: lognormal, median: 20ms, p99: 80ms}",
                           slo="200ms", window="2d"), "dynamic", "training", "data.label_delay"),
    # a heavy model under a tight SLO over flat unbounded inputs: inference alone is too slow
    "video-moderation": (_case("video-moderation", rate="20/s", card="unbounded", s=0.2, velocity="1e5/d",
                               half_life="never", inference="{distribution: lognormal, median: 50ms, p99: 200ms}",
                               slo="20ms", window="30d"), "static", "serving", "model.inference_time"),
}


def _load(tmp_path, doc, sets=()):
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_scenario(path, list(sets)), path


@pytest.mark.parametrize("name", sorted(CASES))
def test_use_case_reaches_the_courses_decision(tmp_path, name):
    doc, training, serving = CASES[name]
    sc, _ = _load(tmp_path, doc)
    a = advise(sc)
    assert a.training.decision == training, a.training.reasons
    assert a.serving.decision in serving, a.serving.reasons
    assert a.training.feasible and a.serving.feasible
    assert a.training.budget_met and a.serving.slo_met


PEAKED_AT_DEFAULT_CONFIDENCE = ("autocomplete", "keyboard")


@pytest.mark.parametrize("name", PEAKED_AT_DEFAULT_CONFIDENCE)
def test_peaked_slow_cases_retrain_when_the_budget_must_hold_at_90_percent(tmp_path, name):
    # a few keys carry much of the traffic, so one deployment's loss spreads widely around its
    # mean: a frozen model within the budget on average misses it in more than 10% of worlds,
    # and at the default confidence (0.9) the advisor retrains, saying so in its reasons
    doc, _, serving = CASES[name]
    doc = {**doc, "slo": {k: v for k, v in doc["slo"].items() if k != "accuracy_confidence"}}
    sc, _ = _load(tmp_path, doc)
    a = advise(sc)
    static = a.training.options["static"]
    assert static["accuracy_loss"] <= sc.slo.max_accuracy_loss < static["decision_loss"]
    assert a.training.decision == "dynamic" and a.training.budget_met
    assert "at 90% confidence" in " ".join(a.training.reasons)


@pytest.mark.parametrize("name", sorted(INFEASIBLE))
def test_infeasible_case_names_its_binding_input_and_remedies_work(tmp_path, name):
    doc, training, goal, binding = INFEASIBLE[name]
    sc, path = _load(tmp_path, doc)
    a = advise(sc)
    assert a.training.decision == training
    part = a.training if goal == "training" else a.serving
    assert not part.feasible and part.binding == binding
    assert part.remedies, "an infeasible goal must come with remedies"
    for fix in part.remedies:
        fixed = advise(load_scenario(path, [fix["set"]]))
        ok = fixed.training if goal == "training" else fixed.serving
        assert ok.feasible, (fix, ok.reasons)
        if goal == "training":
            assert fixed.training.budget_met
        else:
            assert fixed.predicted.latency_p99_ms <= load_scenario(path, [fix["set"]]).slo.latency_p99 * 1e3 * (1 + 1e-9)


def test_infeasible_training_is_never_static_by_default(tmp_path):
    doc = INFEASIBLE["clickstream-slow-trainer"][0]
    sc, _ = _load(tmp_path, doc)
    a = advise(sc)
    assert a.training.decision == "dynamic"
    assert a.training.scores["dynamic"] > a.training.scores["static"]
    assert not any(r.startswith("Static training stays within the budget") for r in a.training.reasons)


def test_an_slo_at_the_no_queue_floor_does_not_search_forever(tmp_path):
    """Found by the property test: a hybrid whose p99 floor sits within the bisection's
    tolerance of the SLO made the replica search double until lgamma overflowed."""
    doc = _case("floor", rate="500/s", card="1000", s=0.9, velocity="1e4/d", half_life="30d",
                inference="{distribution: exponential, mean: 30ms}", slo="100ms")
    sc, _ = _load(tmp_path, doc)
    a = advise(sc)
    assert math.isfinite(a.predicted.latency_p99_ms) and a.serving.slo_met


def test_trainers_follow_the_stated_speed_up_law():
    """Amdahl: fixed part serial, per-example part divided by the workers."""
    sc = load_scenario("spam", ["model.train_time={fixed: 10m, per_million_examples: 60m}"])
    one = sc.model.train_time.seconds(4e6, 1)
    four = sc.model.train_time.seconds(4e6, 4)
    assert one == pytest.approx(600 + 4 * 3600)
    assert four == pytest.approx(600 + 3600)
    # and the advisor bills every worker for the whole job
    a1 = advise(load_scenario("spam", ["model.trainers=1"])).predicted
    a4 = advise(load_scenario("spam", ["model.trainers=4"])).predicted
    assert a4.train_job_s < a1.train_job_s
    s = load_scenario("spam")
    ex = s.data.velocity * s.model.training_window
    expect4 = s.model.train_time.seconds(ex, 4) * 4 * s.costs.vcpu_hour / 3600
    assert a4.one_off_usd["initial_training"] == pytest.approx(expect4)


# ------------------------------------------------- claims match the numbers
_RANDOM = dict(rate=st.sampled_from(["5/s", "50/s", "500/s", "3000/s"]),
               card=st.sampled_from(["unbounded", "1000", "1e6", "1e9"]),
               s=st.sampled_from([0.0, 0.5, 0.9, 1.1, 1.4]),
               velocity=st.sampled_from(["1e4/d", "1e6/d", "1e8/d"]),
               half_life=st.sampled_from(["12h", "3d", "30d", "365d", "never"]),
               label_delay=st.sampled_from(["0s", "1h", "2d", "20d"]),
               inference=st.sampled_from(["{distribution: lognormal, median: 20ms, p99: 80ms}",
                                          "{distribution: exponential, mean: 30ms}",
                                          "{distribution: deterministic, value: 5ms}",
                                          "{distribution: lognormal, median: 300ms, p99: 2s}"]),
               slo=st.sampled_from(["10ms", "100ms", "1s"]),
               budget=st.sampled_from([0.005, 0.02, 0.05]))


# no shrinking: each example runs the whole advisor (seconds), and the falsifying example is
# printed as drawn
# derandomized so CI is repeatable; `make fuzz` explores fresh inputs
@settings(max_examples=20, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate), derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**_RANDOM)
def test_reasons_never_claim_what_the_numbers_deny(tmp_path, **kw):
    doc = _case("random-case", window="2d", **kw)
    sc, _ = _load(tmp_path, doc)
    a = advise(sc)
    p = a.predicted
    budget_met = p.accuracy_loss <= sc.slo.max_accuracy_loss + 1e-12
    slo_met = p.latency_p99_ms <= sc.slo.latency_p99 * 1e3 * (1 + 1e-9)
    assert a.training.budget_met == budget_met or sc.architecture.training
    assert a.serving.slo_met == slo_met
    t_text, s_text = " ".join(a.training.reasons), " ".join(a.serving.reasons)
    if not budget_met:
        assert "Static training stays within the budget" not in t_text
        assert not a.training.feasible
    if not slo_met:
        assert "meets the latency SLO over" not in s_text
        assert not a.serving.feasible
    doc_json = a.to_json()
    assert all(v >= 0 for v in doc_json["training"]["scores"].values())
    assert all(0 <= v <= 10 for v in doc_json["serving"]["scores"].values())
    assert a.serving.replicas != 0 or a.serving.decision == "static"
    assert math.isfinite(p.latency_p99_ms)
    json.dumps(doc_json, allow_nan=False)
