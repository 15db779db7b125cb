"""mlarch capacity: bisection on the advisor's model finds the SLO boundary, the simulator
confirms it, and the command prints one table, one JSON and one figure."""
import json

import pytest

from mlarch import capacity as cap
from scenarios import load_scenario


def test_capacity_is_the_slo_boundary_of_the_model():
    sc = load_scenario("ad-conversion", ["architecture.serving=dynamic"])
    slo = sc.slo.latency_p99
    for hit, c in [(0.0, 2), (0.0, 5), (0.6, 1)]:
        peak = cap.max_peak_rate(sc, hit, c)
        assert cap.model_p99_s(sc, hit, c, peak) <= slo
        assert cap.model_p99_s(sc, hit, c, peak * (1 + 3 * cap.BISECT_REL_TOL)) > slo
    assert cap.max_peak_rate(sc, 0.0, 5) > cap.max_peak_rate(sc, 0.0, 2)   # more replicas, more capacity
    assert cap.max_peak_rate(sc, 1.0, 0) is None                            # a table does not queue
    slow = load_scenario("ad-conversion", ["slo.latency_p99=1ms"])
    assert cap.max_peak_rate(slow, 0.0, 3) == 0.0                           # service alone breaks the SLO


def test_capacity_report_for_every_candidate_confirmed_by_simulation():
    res = cap.capacity("ad-conversion", [], horizon_s=600.0)
    by = {d["kind"]: d for d in res["designs"]}
    assert set(by) == {"static", "dynamic", "hybrid"}
    assert by["static"]["capacity_rate_per_s"] is None and by["static"]["simulated"] == []
    dyn = by["dynamic"]
    amp = res["diurnal_amplitude"]
    assert dyn["headroom"] == pytest.approx(dyn["capacity_rate_per_s"] / res["today_rate_per_s"])
    at, above = dyn["simulated"]
    assert at["peak_rate_per_s"] == pytest.approx(dyn["capacity_rate_per_s"] * (1 + amp))
    assert above["rate_per_s"] == pytest.approx(at["rate_per_s"] * cap.ABOVE)
    assert at["p99_ms"] < above["p99_ms"] and not above["within_slo"]
    assert dyn["confirmed"] is True
    r2, r10 = dyn["replicas_for_rate"]["2x"], dyn["replicas_for_rate"]["10x"]
    assert dyn["replicas"] <= r2 < r10


def test_capacity_cli_table_json_figure_and_bad_design(cli, tmp_path):
    res = cli("capacity", "ad-conversion", "--design", "dynamic", "--no-simulate", "--json", "--out", tmp_path)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [d["kind"] for d in doc["designs"]] == ["dynamic"] and doc["designs"][0]["confirmed"] is None
    assert (tmp_path / "capacity.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "capacity.json").read_text()) == doc
    res = cli("capacity", "spam", "--no-simulate")
    assert res.exit_code == 0 and "capacity (mean rate)" in res.stdout and "dynamic" in res.stdout
    res = cli("capacity", "spam", "--design", "cached")
    assert res.exit_code == 2 and "--design cached" in res.stderr and len(res.stderr.strip().splitlines()) == 1
