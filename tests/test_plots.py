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


def _compare_rows():
    """Three scenarios as `compare --simulate` passes them: p99 from 2 ms to 300 ms, own goals."""
    rows = []
    for name, p99, slo, loss, budget, cost in (("a", 80.0, 100.0, 0.007, 0.02, 750.0),
                                               ("b", 2.0, 50.0, 0.001, 0.03, 0.005),
                                               ("c", 300.0, 600.0, 0.0, 0.02, 1400.0)):
        pred = {"latency_p99_ms": p99, "cost_usd_per_month": cost, "mean_model_age_s": 7200.0,
                "accuracy_loss": loss}
        sim = {"latency_ms": {"p99": p99 * 1.01}, "cost_usd_per_month": cost,
               "staleness": {"model_age_s": {"mean": 7300.0}}, "accuracy": {"lost_to_staleness": loss},
               "slo": {"latency_p99_ms": slo, "max_accuracy_loss": budget},
               "sampling": {"simulated_span_s": 1800.0}}
        rows.append({"advice": {"scenario": name, "predicted": pred}, "predicted_span": pred, "simulated": sim})
    return rows


def _goal_segments(ax):
    """(y, x from, x to) of the horizontal goal segments drawn with hlines."""
    out = []
    for c in ax.collections:
        for seg in getattr(c, "get_segments", lambda: [])():
            if len(seg) == 2 and seg[0][1] == seg[1][1]:
                out.append((seg[0][1], seg[0][0], seg[1][0]))
    return sorted(out, key=lambda t: t[1])


def test_compare_figure_marks_each_scenarios_slo_and_budget(captured, tmp_path):
    plots.compare_figure(_compare_rows(), tmp_path / "x.png")
    fig = captured[0]
    p99, cost, age, acc = fig.axes
    # one goal line over each scenario's bars, at that scenario's own SLO and budget
    assert [y for y, *_ in _goal_segments(p99)] == [100.0, 50.0, 600.0]
    assert [y for y, *_ in _goal_segments(acc)] == pytest.approx([2.0, 3.0, 2.0])
    assert p99.get_yscale() == "log" and cost.get_yscale() == "log"   # 2 ms to 600 ms; $0.005 to $1,400
    assert acc.get_yscale() == "linear"          # a loss of 0 must show
    assert age.get_yscale() == "linear"          # 2.0 h against 2.03 h: no decades to span
    fig.canvas.draw()
    labels = [t.get_text() for t in p99.get_yticklabels() + cost.get_yticklabels()]
    assert labels and not any("10^" in t or "times" in t or "e+" in t for t in labels)
    assert "30m simulated" in fig.texts[0].get_text() or "30m simulated" in fig._suptitle.get_text()


def _capacity(curves, slo=100.0):
    designs = []
    for kind, ys in curves:
        designs.append({"kind": kind, "design": {"cache_top_k": 100000 if kind == "hybrid" else None},
                        "hit_ratio": 0.0, "replicas": 12, "capacity_rate_per_s": 300.0,
                        "curve": [(10.0 * (i + 1), y) for i, y in enumerate(ys)],
                        "simulated": [{"rate_per_s": 300.0, "p99_ms": 101.0}, {"rate_per_s": 330.0, "p99_ms": 430.0}]})
    return {"scenario": "t", "slo_p99_ms": slo, "today_rate_per_s": 300.0, "simulated_horizon_s": 1800.0,
            "designs": designs}


def test_capacity_figure_slo_line_coincident_curves_and_scale(captured, tmp_path):
    same = [80.0, 85.0, 100.0, 300.0]
    plots.capacity_figure(_capacity([("dynamic", same), ("hybrid", same)]), tmp_path / "a.png")
    ax = captured[0].axes[0]
    labels = [ln.get_label() for ln in ax.lines]
    assert any("SLO" in lb for lb in labels)
    slo = [ln for ln in ax.lines if "SLO" in ln.get_label()][0]
    assert set(slo.get_ydata()) == {100.0}
    # a hybrid whose table catches nothing draws the dynamic curve again: the legend says so
    assert any(lb.startswith("hybrid") and "same curve as dynamic" in lb for lb in labels)
    assert ax.get_yscale() == "linear"       # 80 to 430 ms: less than a decade
    assert "30m" in ax.get_title()
    plots.capacity_figure(_capacity([("static", [2.0] * 4), ("dynamic", same)]), tmp_path / "b.png")
    ax = captured[1].axes[0]
    assert ax.get_yscale() == "log"          # a 2 ms lookup against a queue: decades
    assert not any("same curve" in ln.get_label() for ln in ax.lines)


def test_cost_spanning_decades_is_drawn_on_a_log_axis(captured, tmp_path):
    df = pd.DataFrame([{"architecture.cache_top_k": k, "seed": 1, "cost_usd_per_month": c, "latency_ms_p99": p,
                        "accuracy_lost_to_staleness": 0.001, "slo_latency_p99_ms": 600.0,
                        "slo_max_accuracy_loss": 0.02}
                       for k, c, p in (("0", 8400.0, 400.0), ("1000", 3000.0, 330.0), ("all", 0.7, 5.0))])
    plots.metrics_vs_field(df, "architecture.cache_top_k", tmp_path / "x.png")
    lat, cost, acc = captured[0].axes
    assert cost.get_yscale() == "log" and lat.get_yscale() == "log" and acc.get_yscale() == "linear"
    assert "log scale" in cost.get_ylabel()


def test_retrain_trade_off_legend_names_both_axes(captured, tmp_path):
    df = pd.DataFrame([{"architecture.retrain_every": f"{h}h", "seed": 1, "architecture_retrain_every_s": h * 3600.0,
                        "architecture_training": "periodic", "horizon_s": 86400.0, "accuracy_lost_to_staleness": h / 500,
                        "cost_usd_training": 10.0 / h, "slo_max_accuracy_loss": 0.02} for h in (1, 2, 4, 8)])
    plots.accuracy_vs_retrain(df, tmp_path / "x.png")
    legend = captured[0].axes[0].get_legend()
    names = [t.get_text() for t in legend.get_texts()]
    assert any("budget" in n for n in names) and "training cost" in names and "accuracy lost to staleness" in names


def test_serving_map_star_does_not_hide_its_cells_hit_ratio(captured, tmp_path):
    cells = [{"cardinality": n, "zipf_s": s, "decision": "hybrid", "hit_ratio": h}
             for n, s, h in ((1e6, 1.0, 0.5), (None, 1.0, 0.4), (1e6, 1.2, 0.7), (None, 1.2, 0.93))]
    m = {"scenario": "t", "cardinality": None, "zipf_s": 1.2, "decision": "hybrid", "slo_p99_ms": 100.0,
         "cardinalities": [1e6, None], "zipf_exponents": [1.0, 1.2], "cells": cells}
    plots.serving_map_figure(m, tmp_path / "x.png")
    ax = captured[0].axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["40%", "50%", "70%"]   # not "93%" under the star
    assert any(ln.get_label() == "t (hybrid, 93% hits)" for ln in ax.lines)
