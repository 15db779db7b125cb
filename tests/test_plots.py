"""Figures answer the question: goal lines, readable axes, no empty figures (issue 15).

Each test inspects the matplotlib figure a plotting function draws (captured before it is
saved), so it fails when a line, a tick label or a scale is missing."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlarch import plots


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """The figures the plotting functions would save, kept open for inspection."""
    figs = []

    def keep(fig, path):
        figs.append(fig)
        return path
    monkeypatch.setattr(plots, "_save", keep)
    return figs


def _metrics(serving="hybrid", training="periodic", slo_ms=100.0, budget=0.02):
    return {"scenario": "t", "architecture": {"serving": serving, "training": training},
            "slo": {"latency_p99_ms": slo_ms, "max_accuracy_loss": budget},
            "latency_ms": {"p99": 80.0}}


def _hist():
    rows = [("table", 2.0, 500), ("model", 10.0, 300), ("model", 50.0, 200), ("all", 2.0, 500),
            ("all", 10.0, 300), ("all", 50.0, 200)]
    return pd.DataFrame(rows, columns=["path", "upper_edge_ms", "count"])


def test_latency_cdf_has_the_slo_line_and_shows_the_table_step(captured, tmp_path):
    plots.latency_cdf(_metrics(slo_ms=100.0), _hist(), tmp_path / "x.png")
    ax = captured[0].axes[0]
    vlines = [ln for ln in ax.lines if len(set(ln.get_xdata())) == 1]
    assert any(ln.get_xdata()[0] == 100.0 and "SLO" in ln.get_label() for ln in vlines)
    lo, hi = ax.get_xlim()
    assert lo < 2.0 / 1.05 and hi > 100.0   # the table step and the SLO are inside the axes
    assert "table hits" in ax.get_title()


def test_latency_cdf_subtitle_fits_the_design(captured, tmp_path):
    plots.latency_cdf(_metrics(serving="dynamic"), _hist()[lambda d: d.path != "table"], tmp_path / "x.png")
    title = captured[0].axes[0].get_title()
    assert "table" not in title and "model path" in title


def _ts(n=20, age_saw=True):
    t = np.arange(n) * 300.0
    age = (t % 3000) if age_saw else t + 100
    return pd.DataFrame({"t_start_s": t, "t_end_s": t + 300, "accuracy": 0.85 + 1e-4 * np.sin(t),
                         "fresh_expected_accuracy": 0.87, "served_expected_accuracy": 0.85,
                         "model_age_mean_s": age})


def test_accuracy_figure_has_the_budget_line_and_a_calm_y_range(captured, tmp_path):
    plots.accuracy_over_time(_metrics(budget=0.02), _ts(), [], tmp_path / "x.png")
    a1 = captured[0].axes[0]
    budget = [ln for ln in a1.lines if "budget" in ln.get_label()]
    assert budget and np.allclose(budget[0].get_ydata(), 87.0 - 2.0)
    lo, hi = a1.get_ylim()
    assert hi - lo >= 2.0   # tiny wiggles are not magnified to fill the panel


def test_accuracy_subtitle_only_promises_a_sawtooth_when_there_is_one(captured, tmp_path):
    plots.accuracy_over_time(_metrics(training="static"), _ts(age_saw=False), [], tmp_path / "a.png")
    assert "sawtooth" not in captured[0].axes[0].get_title()
    events = [{"t_s": 900.0, "event": "deploy"}, {"t_s": 3900.0, "event": "deploy"}]
    plots.accuracy_over_time(_metrics(), _ts(), events, tmp_path / "b.png")
    assert "sawtooth" in captured[1].axes[0].get_title()


def test_positions_put_zero_and_all_on_their_own_ticks():
    x, ticks, log = plots._positions(["0", "1000", "100000", "all"])
    assert log
    assert x[0] == pytest.approx(100.0) and ticks[100.0] == "0"          # a decade below 1e3
    assert x[3] == pytest.approx(1e6) and ticks[1e6] == "all"            # a decade above 1e5
    assert len(set(x)) == 4
    x, ticks, log = plots._positions(["1", "2", "3"])
    assert not log and list(x) == [1, 2, 3] and ticks == {}
    x, ticks, log = plots._positions(["static", "dynamic"])
    assert list(x) == [0, 1] and ticks == {0.0: "static", 1.0: "dynamic"}


def _sweep_rows(hits):
    rows = []
    for seed in (1, 2):
        for serving, k, hit in (("dynamic", None, 0.0), ("hybrid", 1000, hits), ("hybrid", 100000, hits * 1.5)):
            rows.append({"architecture.cache_top_k": k or 0, "seed": seed, "architecture_serving": serving,
                         "architecture_cache_top_k": k, "storage_table_bytes": (k or 0) * 8.0,
                         "cost_usd_per_month": 100.0 - (k or 0) / 1e4, "latency_ms_p99": 90.0 - hit * 10,
                         "cache_hit_ratio": hit, "slo_latency_p99_ms": 100.0})
    return pd.DataFrame(rows)


def test_no_serving_trade_off_figure_when_no_cache_helps(captured, tmp_path):
    out = plots.storage_vs_latency(_sweep_rows(hits=0.001), tmp_path / "x.png")
    assert isinstance(out, str) and "No serving trade-off" in out and not captured


def test_serving_trade_off_labels_and_error_bars(captured, tmp_path):
    plots.storage_vs_latency(_sweep_rows(hits=0.3), tmp_path / "x.png")
    a1 = captured[0].axes[0]
    texts = [t.get_text() for t in a1.texts]
    assert any(t.startswith("top 1k") for t in texts) and not any("e+" in t for t in texts)
    assert a1.get_xscale() == "log"
    # identical values over seeds: no error bars at all
    assert all(len(c.get_segments()) == 0 for c in a1.collections if hasattr(c, "get_segments"))


def test_serving_map_cell_matches_the_advice_at_the_scenario():
    """The map's coarse table-size search agrees with the advice where the scenario sits."""
    from advisor import advise
    from mlarch.servingmap import serving_map
    from scenarios import load_scenario
    for name in ("voice-to-text", "ad-conversion"):
        sc = load_scenario(name, [])
        m = serving_map(sc, n_cardinality=2, n_zipf=2, jobs=1)
        here = [c for c in m["cells"] if c["cardinality"] == (None if sc.traffic.cardinality is None
                                                              else float(sc.traffic.cardinality))
                and math.isclose(c["zipf_s"], sc.traffic.zipf_s, rel_tol=1e-6)]
        assert len(here) == 1
        assert here[0]["decision"] == advise(sc).serving.decision, name


def test_cost_figure_of_an_autoscaled_run_shows_the_fixed_pool_it_replaces(captured, tmp_path):
    rec = {"serving": 500.0, "retraining": 5.0, "table_refreshes": 0.0, "storage": 0.0, "total": 505.0}
    m = {"scenario": "t", "horizon_s": 86400.0,
         "cost_usd": {"recurring_usd_per_month": rec, "one_off_usd": {"total": 0.0}},
         # 240 replica-hours in a day = 10 replicas on average; at most 13 at once
         "autoscale": {"replica_hours": 240.0, "mean_replicas": 10.0, "replicas_max": 13}}
    plots.cost_breakdown(m, tmp_path / "x.png")
    ax = captured[0].axes[0]
    widths = {t.get_text(): p.get_width() for t, p in zip(ax.get_yticklabels(), ax.patches)}
    assert widths["serving (autoscaled)"] == 500.0
    assert widths["serving if fixed at the peak (13 replicas)"] == pytest.approx(500.0 * 13 / 10)
