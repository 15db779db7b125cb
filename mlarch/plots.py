"""Figures (PNG, headless): from a `simulate --out` directory, a sweep CSV, or a comparison.

Every axis carries its unit and every title says what to look for."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scenarios.accounting import MONTH_S  # noqa: E402
from scenarios.loader import read_regular_file  # noqa: E402

MAX_INPUT_BYTES = 500_000_000   # a sweep CSV of a million rows; nothing mlarch writes is larger


def _read(path: Path) -> io.BytesIO:
    """An input file's bytes: regular files only, capped (a FIFO or /dev/zero is refused)."""
    return io.BytesIO(read_regular_file(path, MAX_INPUT_BYTES, "file written by mlarch"))

PATH_COLORS = {"table": "#2a9d8f", "model": "#e76f51", "fallback": "#6c757d", "all": "#264653"}
KIND_COLORS = {"static": "#2a9d8f", "hybrid": "#e9c46a", "dynamic": "#e76f51"}


def _save(fig, path: Path) -> Path:
    # a figure with a legend below its panels keeps room for it (compare_figure)
    fig.tight_layout(rect=getattr(fig, "layout_rect", None))
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


# ------------------------------------------------------------- a simulation run

def run_figures(run_dir: Path, out_dir: Path) -> list[Path]:
    """Latency CDF by path, accuracy and model age over time, cost breakdown."""
    metrics = json.loads(_read(run_dir / "metrics.json").getvalue())
    ts = pd.read_csv(_read(run_dir / "timeseries.csv"))
    hist = pd.read_csv(_read(run_dir / "latency_hist.csv"))
    events = json.loads(_read(run_dir / "events.json").getvalue()) if (run_dir / "events.json").exists() else []
    out = [latency_cdf(metrics, hist, out_dir / "latency_cdf.png"),
           accuracy_over_time(metrics, ts, events, out_dir / "accuracy_age.png"),
           cost_breakdown(metrics, out_dir / "cost_breakdown.png")]
    if "replicas_mean" in ts or "replicas_up_mean" in ts:
        out.append(replicas_over_time(metrics, ts, out_dir / "replicas_load.png"))
    return out


def replicas_over_time(metrics: dict, ts: pd.DataFrame, path: Path) -> Path:
    """An autoscaled run (serving.autoscale): replicas against the offered load, and p99 per window."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    hours = (ts["t_start_s"] + ts["t_end_s"]) / 2 / 3600
    if "replicas_mean" in ts:
        a1.step(hours, ts["replicas_mean"], where="mid", color="#264653", lw=1.6,
                label="replicas (billed, mean per window)")
        a1.plot(hours, ts["offered_load_mean"], color="#e76f51", lw=1.2,
                label="offered load (busy replicas = arrival rate x mean inference time)")
    if "replicas_up_mean" in ts:
        a1.step(hours, ts["replicas_up_mean"], where="mid", color="#d62828", lw=1.2,
                label="replicas up (failures and repairs), mean per window")
    fixed = (metrics.get("autoscale") or {}).get("replicas_max")
    if fixed:
        a1.axhline(fixed, color="grey", ls=":", lw=1, label=f"most replicas at once ({fixed})")
    a1.set_ylabel("replicas / Erlangs")
    a1.legend(fontsize=7, loc="lower left")
    p99 = ts["latency_p99_ms"]
    a2.plot(hours, p99, color="#264653", lw=1.2, label="p99 per window")
    slo_ms = _slo(metrics).get("latency_p99_ms")
    if slo_ms is not None:
        a2.axhline(slo_ms, color="#d62828", lw=1.2, label=f"p99 SLO {slo_ms:g} ms")
        a2.legend(fontsize=7, loc="lower right")
    a2.set_ylabel("p99 latency per window (ms)")
    a2.set_xlabel("simulated time (h)")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    pos = p99[p99 > 0]
    if len(pos) and pos.max() / pos.min() > 20:   # a failure's spike: decades apart
        a2.set_yscale("log")
    else:
        a2.set_ylim(0, max(float(p99.max()) if len(p99) else 0.0, slo_ms or 0.0) * 1.15 or 1.0)
        a2.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.4g"))
    a1.set_title(f"{metrics['scenario']}: the replica pool over time\n"
                 "look at the p99 under it: it rises where replicas are short (a failure, a late scale-up)",
                 fontsize=10)
    return _save(fig, path)


PATH_LABELS = {"table": "table lookup", "model": "model (queue + inference)", "fallback": "fallback (no model)",
               "all": "all requests"}


def _slo(metrics: dict) -> dict:
    """The scenario's goals as recorded in metrics.json (runs written before they were: none)."""
    return metrics.get("slo") or {}


def latency_cdf(metrics: dict, hist: pd.DataFrame, path: Path) -> Path:
    """CDF of latency per serving path with the overall p99 and the p99 SLO."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    lo, hi = math.inf, 0.0
    for name, g in hist.groupby("path", sort=False):
        g = g[g["count"] > 0].sort_values("upper_edge_ms")
        if g.empty:
            continue
        cdf = g["count"].cumsum() / g["count"].sum()
        x = np.maximum(g["upper_edge_ms"].to_numpy(), 1e-3)
        lo, hi = min(lo, x[0]), max(hi, x[-1])
        # start each curve at 0 just left of its first bin, so a path whose latency is one
        # value (a table lookup) shows as a visible step, not a line hidden on the axis edge
        ax.step(np.r_[x[0] / 1.05, x], np.r_[0.0, cdf], where="post",
                label=f"{PATH_LABELS.get(name, name)} ({int(g['count'].sum()):,} requests)",
                color=PATH_COLORS.get(name), lw=2.2 if name == "all" else 1.6)
    p99 = metrics["latency_ms"]["p99"]
    slo_ms = _slo(metrics).get("latency_p99_ms")
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    if p99 is not None:   # null when the run had no requests
        ax.axvline(p99, color=PATH_COLORS["all"], ls="--", lw=1)
        ax.annotate(f"overall p99 {p99:.1f} ms", (p99, 0.5), rotation=90, va="center", ha="right", fontsize=8)
        lo, hi = min(lo, p99), max(hi, p99)
    if slo_ms is not None:
        ax.axvline(slo_ms, color="#d62828", ls="-", lw=1.2, label=f"p99 SLO {slo_ms:g} ms")
        lo, hi = min(lo, slo_ms), max(hi, slo_ms)
    ax.set_xscale("log")
    if math.isfinite(lo) and hi > 0:
        ax.set_xlim(lo / 2, hi * 2)
    ax.set_xlabel("latency: queue wait + service, or table lookup (ms, log scale)")
    ax.set_ylabel("share of requests at or below")
    ax.set_ylim(0, 1.01)
    serving = (metrics.get("architecture") or {}).get("serving")
    hint = {"static": "every request is a table lookup: the curve is a step at the lookup time",
            "dynamic": "every request takes the model path: it meets the SLO if it crosses 0.99 left of the red line",
            "hybrid": "table hits are fast and flat, the model path queues: 'all' must cross 0.99 left of the red line",
            }.get(serving, "look at where each curve crosses 0.99")
    ax.set_title(f"{metrics['scenario']}: latency by serving path\n{hint}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def accuracy_over_time(metrics: dict, ts: pd.DataFrame, events: list, path: Path) -> Path:
    """Served accuracy (with the budget line) and mean model age over simulated time, with
    deployments, quarantined batches and gate rejections marked."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    hours = (ts["t_start_s"] + ts["t_end_s"]) / 2 / 3600
    acc_pct = ts["accuracy"] * 100
    a1.plot(hours, acc_pct, color="#264653", lw=1.2, label="served accuracy (vs noisy labels)")
    shown = [acc_pct]
    budget = _slo(metrics).get("max_accuracy_loss")
    if "fresh_expected_accuracy" in ts:
        fresh = ts["fresh_expected_accuracy"] * 100
        a1.plot(hours, fresh, color="#2a9d8f", lw=1, ls="--", label="same model when fresh (expected)")
        a1.plot(hours, ts["served_expected_accuracy"] * 100, color="#e76f51", lw=1,
                label="served (expected over label noise)")
        shown += [fresh, ts["served_expected_accuracy"] * 100]
        if budget is not None:
            floor = fresh - budget * 100
            a1.plot(hours, floor, color="#d62828", lw=1, ls=":",
                    label=f"budget: fresh minus {budget * 100:.3g} points (served should stay above)")
            shown.append(floor)
    # a y range of at least 2 points (or 3 budgets), so window-to-window noise is not magnified
    vals = pd.concat(shown).replace([np.inf, -np.inf], np.nan).dropna()
    if len(vals):
        mid, span = (vals.max() + vals.min()) / 2, vals.max() - vals.min()
        span = max(span * 1.15, 2.0, 3 * (budget or 0) * 100)
        a1.set_ylim(mid - span, mid + span / 2)   # the lower half holds the legend
    if "monitor_accuracy" in ts:
        a1.plot(hours, ts["monitor_accuracy"] * 100, color="#6a4c93", lw=0.9, ls=":",
                label="monitor's estimate (labels so far)")
    _issue17_marks(a1, events)
    a1.set_ylabel("accuracy (%)")
    a1.legend(fontsize=7, loc="lower left", ncol=2, framealpha=0.85)
    a2.plot(hours, ts["model_age_mean_s"] / 3600, color="#e76f51", lw=1.4)
    a2.set_ylabel("mean model age (h)")
    a2.set_xlabel("simulated time (h)")
    a2.set_ylim(bottom=0)
    dep = [e["t_s"] / 3600 for e in events if e["event"] == "deploy" and e["t_s"] > 0]
    quar = [e["t_s"] / 3600 for e in events if e["event"] == "quarantine"]
    rej = [e["t_s"] / 3600 for e in events if e["event"] == "gate_reject"]
    for ax in (a1, a2):
        for k, t in enumerate(dep):
            ax.axvline(t, color="#2a9d8f", lw=0.8, alpha=0.7, label="deployment" if (k == 0 and ax is a2) else None)
        for k, t in enumerate(quar):
            ax.axvline(t, color="#d62828", lw=0.8, ls=":", label="quarantined batch" if (k == 0 and ax is a2) else None)
        for k, t in enumerate(rej):
            ax.axvline(t, color="black", lw=0.8, ls="-.", label="gate rejection" if (k == 0 and ax is a2) else None)
        ax.grid(alpha=0.3)
    if dep or quar or rej:
        a2.legend(fontsize=7, loc="upper left")
    training = (metrics.get("architecture") or {}).get("training")
    if training == "continuous":
        hint = "continuous updates keep the model young: age stays near the update delay"
    elif len(dep) >= 2:
        hint = "look for the sawtooth: age grows until a deployment resets it, and accuracy falls with age"
    elif dep:
        hint = "one deployment in this span: age resets once, then grows again"
    else:
        hint = "no deployment in this span: the model only ages, and accuracy falls with age"
    a1.set_title(f"{metrics['scenario']}: accuracy and model age over time\n{hint}", fontsize=10)
    return _save(fig, path)


def _issue17_marks(ax, events: list) -> None:
    """Sudden shifts, monitor alerts and training–serving skew (from fault to detection) on the
    accuracy panel, so their accuracy cost is visible."""
    marks = [("shift", "#8338ec", "-", "sudden shift"), ("alert", "#fb8500", "--", "monitor alert")]
    for kind, color, ls, label in marks:
        ts = [e["t_s"] / 3600 for e in events if e["event"] == kind]
        for k, t in enumerate(ts):
            ax.axvline(t, color=color, lw=0.9, ls=ls, alpha=0.8, label=label if k == 0 else None)
    starts = [e["t_s"] / 3600 for e in events if e["event"] == "serving_skew"]
    ends = [e["t_s"] / 3600 for e in events if e["event"] == "skew_detected"]
    for k, t0 in enumerate(starts):
        t1 = next((t for t in ends if t >= t0), None)
        if t1 is None:
            t1 = ax.get_xlim()[1]
        ax.axvspan(t0, t1, color="#d62828", alpha=0.15, label="training–serving skew (until caught)" if k == 0 else None)
    if any(e["event"] in ("shift", "alert", "serving_skew") for e in events):
        ax.legend(fontsize=7, loc="lower left")


def cost_breakdown(metrics: dict, path: Path) -> Path:
    rec = metrics["cost_usd"]["recurring_usd_per_month"]
    one = metrics["cost_usd"]["one_off_usd"]
    kinds = ["serving", "retraining", "table_refreshes", "storage"]
    vals = [rec[k] for k in kinds]
    labels = [k.replace("_", " ") for k in kinds]
    colors = ["#e76f51", "#264653", "#e9c46a", "#2a9d8f"]
    auto = metrics.get("autoscale")
    if auto and auto.get("mean_replicas"):
        # what the same replicas would cost as a fixed pool sized for the most used at once,
        # at the run's own price per replica
        per_replica_month = rec["serving"] / auto["mean_replicas"]
        labels[0] = "serving (autoscaled)"
        labels.insert(1, f"serving if fixed at the peak ({auto['replicas_max']} replicas)")
        vals.insert(1, auto["replicas_max"] * per_replica_month)
        colors.insert(1, "#f4a261")
    fig, ax = plt.subplots(figsize=(7 if len(vals) == 4 else 9, 3.2 + 0.4 * (len(vals) - 4)))
    bars = ax.barh(labels, vals, color=colors)
    for b, v in zip(bars, vals):
        ax.annotate(f"\\${v:,.2f}", (b.get_width(), b.get_y() + b.get_height() / 2), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel("cost (USD per month)")
    ax.set_xlim(0, max(vals) * 1.25 if max(vals) > 0 else 1)
    # "\\$": a bare pair of dollar signs would be read as mathtext
    ax.set_title(f"{metrics['scenario']}: \\${rec['total']:,.2f}/month recurring, "
                 f"\\${one['total']:,.2f} once (initial model and table)\n"
                 "look at the largest bar: that is the design's main cost driver", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


# -------------------------------------------------------------------- a sweep

def varied_columns(df: pd.DataFrame) -> list[str]:
    """The sweep's varied fields: the columns before `seed`."""
    cols = list(df.columns)
    return cols[: cols.index("seed")] if "seed" in cols else []


def _per_month(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col] * MONTH_S / df["horizon_s"]


def sweep_figures(csv: Path, out_dir: Path, notes: list | None = None) -> list[Path]:
    """The trade-off figures a sweep supports. A figure with nothing to show is not drawn;
    the sentence that says so is appended to `notes`."""
    df = pd.read_csv(_read(csv))
    varied = varied_columns(df)
    if not varied or "latency_ms_p99" not in df:
        raise ValueError("not a sweep CSV from `mlarch sweep` (no seed or metric columns)")
    notes = [] if notes is None else notes
    out = []
    serving_axes = [v for v in varied if v.startswith("architecture.cache_top_k") or v in
                    ("architecture", "architecture.serving", "traffic.peakedness", "traffic.peakedness.zipf_s")]
    retrain_axes = [v for v in varied if v in ("architecture.retrain_every", "architecture.training",
                                               "data.concept_half_life")]
    if serving_axes or df["architecture_serving"].nunique() > 1:
        fig = storage_vs_latency(df, out_dir / "tradeoff_storage_latency.png")
        if isinstance(fig, Path):
            out.append(fig)
        else:
            notes.append(fig)
    if retrain_axes or df["architecture_retrain_every_s"].nunique() > 1:
        out.append(accuracy_vs_retrain(df, out_dir / "tradeoff_retrain.png"))
    for v in varied:
        out.append(metrics_vs_field(df, v, out_dir / f"metrics_vs_{_slug(v)}.png"))
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def _group(df: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    """Mean and sd over seeds per grid point (sd 0 for a single seed)."""
    g = df.groupby(keys, sort=False, dropna=False)[cols]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    return pd.concat([mean, std.add_suffix("_sd")], axis=1).reset_index()


def _yerr(g: pd.DataFrame, col: str):
    """Error bars only where seeds differ: None when every sd is 0 (one seed, or identical values)."""
    sd = g[f"{col}_sd"]
    return sd if (sd > 0).any() else None


def _positions(values) -> tuple[np.ndarray, dict, bool]:
    """x positions for plotting `values` on one axis: (x, {position: tick label}, log).

    A log axis when the positive values span decades; then 0 (no cache) sits one decade below
    the smallest positive value and a word such as "all" one decade above the largest, each
    with its own tick label, instead of overlapping on a linear axis. Non-numeric values are
    categories at 0, 1, 2, ..."""
    v = pd.Series(list(values))
    num = pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)
    words = np.isnan(num)
    if words.all():
        return np.arange(len(v), dtype=float), {float(k): str(x).replace("_", " ") for k, x in enumerate(v)}, False
    pos = num[~words & (num > 0)]
    log = len(pos) >= 2 and pos.max() / pos.min() >= 20 and not (num[~words] < 0).any()
    if not log:
        if words.any():   # a word on a linear axis: one step past the largest value
            step = np.ptp(num[~words]) or 1.0
            x = np.where(words, np.nanmax(num) + step, num)
            return x, {float(np.nanmax(num) + step): str(v[words].iloc[0])}, False
        return num, {}, False
    ticks = {}
    x = num.copy()
    if (num[~words] == 0).any():
        x[~words & (num == 0)] = pos.min() / 10
        ticks[float(pos.min() / 10)] = "0"
    if words.any():
        x[words] = pos.max() * 10
        ticks[float(pos.max() * 10)] = str(v[words].iloc[0])
    return x, ticks, True


def _apply_axis(ax, x: np.ndarray, ticks: dict, log: bool, counts: bool = False) -> None:
    """Scale and tick labels for positions made by `_positions`."""
    from scenarios.units import format_count
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        # one labelled tick per value plotted: decades alone would hide which points were run
        xs = sorted(set(float(t) for t in x if np.isfinite(t)))
        ax.set_xticks(xs)
        ax.set_xticklabels([ticks.get(t, format_count(t) if counts else f"{t:.3g}") for t in xs], fontsize=7)
    elif ticks:
        xs = sorted(set(float(t) for t in x if np.isfinite(t)))
        ax.set_xticks(xs)
        ax.set_xticklabels([ticks.get(t, f"{t:.3g}") for t in xs], fontsize=7,
                           rotation=20 if len(xs) > 4 else 0)


def _pareto(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points not dominated (lower x and lower y are better), sorted by x."""
    order = np.argsort(x, kind="stable")
    front, best = [], math.inf
    for i in order:
        if y[i] < best - 1e-12:
            front.append(i)
            best = y[i]
    return np.array(front, dtype=int)


def _point_label(r) -> str:
    from scenarios.units import format_count
    return {"static": "static (all)", "dynamic": "dynamic (none)"}.get(
        r["architecture_serving"], f"top {format_count(r['k'])} ({r['cache_hit_ratio']:.0%} hits)")


def storage_vs_latency(df: pd.DataFrame, path: Path) -> Path | str:
    """p99 against table storage and against total cost, per serving design, with the Pareto
    front. When no table helps (hits < 1% everywhere), returns the sentence saying so instead."""
    d = df.copy()
    table_gb = d["storage_table_bytes"] if "storage_table_bytes" in d else 0.0
    d["table_gb"] = table_gb / 1e9
    d["total_month"] = d["cost_usd_per_month"]
    d["k"] = d["architecture_cache_top_k"].fillna(0)
    g = _group(d, ["architecture_serving", "k"], ["table_gb", "latency_ms_p99", "total_month",
                                                  "cache_hit_ratio"])
    if g["cache_hit_ratio"].max() < 0.01:
        return (f"No serving trade-off to draw: at most {g['cache_hit_ratio'].max():.2%} of requests hit "
                f"a precomputed table of any size tried (largest: {_point_label(g.loc[g['k'].idxmax()])}), "
                "so precomputing buys no latency; serve from the model (dynamic).")
    slo = df["slo_latency_p99_ms"].iloc[0] if "slo_latency_p99_ms" in df else None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, xcol, xlabel in ((a1, "table_gb", "precomputed table size (GB)"),
                             (a2, "total_month", "total cost: storage + compute (USD per month)")):
        x, ticks, log = _positions(g[xcol])
        y = g["latency_ms_p99"].to_numpy()
        for kind in g["architecture_serving"].unique():
            m = (g["architecture_serving"] == kind).to_numpy()
            ax.errorbar(x[m], y[m], yerr=_yerr(g[m], "latency_ms_p99"), fmt="o", ms=7,
                        color=KIND_COLORS.get(kind), label=kind, capsize=3)
        front = _pareto(x, y)
        if len(front) > 1:   # one point that beats all others is no front to draw
            ax.plot(x[front], y[front], color="black", lw=1, ls="--", label="Pareto front")
        if slo is not None:
            ax.axhline(slo, color="#d62828", lw=1, label=f"p99 SLO {slo:g} ms")
        if log:
            ax.set_xscale("log")
            if ticks:   # the 0 of a dynamic design, one decade below the smallest table
                ax.set_xticks(list(ticks), [*ticks.values()], minor=True)
        scale = "log" if log else "linear"
        # labels of points that sit on top of each other would be unreadable: label a point
        # only if it is far enough (in the axis's own scale) from the last one labelled
        tx = (lambda v: np.log10(v)) if log else (lambda v: v)  # noqa: E731
        xr = max(np.ptp(tx(x)), 1e-12)
        yr = max(np.ptp(y), 1e-12)
        last = None
        for i in np.argsort(x, kind="stable"):
            if last is not None and abs(tx(x[i]) - tx(last[0])) < 0.08 * xr and abs(y[i] - last[1]) < 0.08 * yr:
                continue
            last = (x[i], y[i])
            ax.annotate(_point_label(g.iloc[i]), (x[i], y[i]), xytext=(5, 4), textcoords="offset points", fontsize=7)
        ax.set_xlabel(xlabel + ("" if scale == "linear" else f" ({scale} scale)"))
        ax.set_ylabel("p99 latency (ms)")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.4g"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    a1.set_title("space vs time: more precomputed keys buy lower latency\n"
                 "look for the knee of the Pareto front", fontsize=10)
    a2.set_title("what it costs in all: the cheapest point on the front\nbelow the SLO line is the design to pick",
                 fontsize=10)
    return _save(fig, path)


def accuracy_vs_retrain(df: pd.DataFrame, path: Path) -> Path:
    d = df.copy()
    d["interval_h"] = d["architecture_retrain_every_s"].fillna(d["horizon_s"]) / 3600
    d.loc[d["architecture_training"] == "continuous", "interval_h"] = np.nan
    d["loss_pct"] = d["accuracy_lost_to_staleness"] * 100
    d["train_month"] = _per_month(d, "cost_usd_training")
    d = d.dropna(subset=["interval_h"])
    g = _group(d, ["interval_h"], ["loss_pct", "train_month"]).sort_values("interval_h")
    fig, ax = plt.subplots(figsize=(7.5, 4.3))
    ax.errorbar(g["interval_h"], g["loss_pct"], yerr=_yerr(g, "loss_pct"), fmt="o-", color="#e76f51",
                capsize=3, label="accuracy lost to staleness")
    if "slo_max_accuracy_loss" in df:
        budget = df["slo_max_accuracy_loss"].iloc[0] * 100
        ax.axhline(budget, color="#d62828", lw=1, ls=":", label=f"accuracy budget {budget:.3g} points")
    log = g["interval_h"].max() / max(g["interval_h"].min(), 1e-12) >= 20
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("retrain interval (h; static = the whole horizon)" + (", log scale" if log else ""))
    ax.set_ylabel("accuracy lost to staleness (percentage points)", color="#e76f51")
    ax2 = ax.twinx()
    ax2.errorbar(g["interval_h"], g["train_month"], yerr=_yerr(g, "train_month"), fmt="s--", color="#264653",
                 capsize=3, label="training cost")
    ax2.set_ylabel("training compute (USD per month)", color="#264653")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center")   # both axes' lines in one legend
    ax.grid(alpha=0.3)
    ax.set_title("fresher models cost more training: accuracy lost vs retrain interval\n"
                 "look for the longest interval whose loss is within your budget", fontsize=10)
    return _save(fig, path)


FIELD_LABELS = {"architecture.cache_top_k": "precomputed keys: top k inputs",
                "architecture.retrain_every": "retrain interval", "traffic.rate": "traffic rate",
                "traffic.cardinality": "distinct inputs (cardinality)"}


def metrics_vs_field(df: pd.DataFrame, field: str, path: Path) -> Path:
    """p99, total cost and accuracy lost against one varied field (mean ± sd over seeds,
    error bars only where seeds differ)."""
    d = df.copy()
    d["total_month"] = d["cost_usd_per_month"]
    d["loss_pct"] = d["accuracy_lost_to_staleness"] * 100
    g = _group(d, [field], ["latency_ms_p99", "total_month", "loss_pct"])
    x, ticks, log = _positions(g[field])
    g = g.assign(_x=x).sort_values("_x")
    x = g["_x"].to_numpy()
    counts = field in ("architecture.cache_top_k", "traffic.cardinality")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    slo = df["slo_latency_p99_ms"].iloc[0] if "slo_latency_p99_ms" in df else None
    for ax, col, label in zip(axes, ["latency_ms_p99", "total_month", "loss_pct"],
                              ["p99 latency (ms)", "total cost (USD per month)", "accuracy lost (points)"]):
        ax.errorbar(x, g[col], yerr=_yerr(g, col), fmt="o-", capsize=3, color="#264653")
        # latency and cost may span decades (a table lookup against a queue, a table against
        # a pool of replicas); accuracy lost stays linear so that 0 and the budget show
        vals = list(g[col].dropna()) + ([slo] if col == "latency_ms_p99" and slo is not None else [])
        if col != "loss_pct" and (g[col] > 0).all() and _spans_decades(vals):
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis, vals)
            label += ", log scale"
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        _apply_axis(ax, x, ticks, log, counts)
        ax.set_xlabel(FIELD_LABELS.get(field, field) + (" (log scale)" if log else ""))
    if "slo_latency_p99_ms" in df:
        axes[0].axhline(df["slo_latency_p99_ms"].iloc[0], color="#d62828", lw=1, label="p99 SLO")
        axes[0].legend(fontsize=7)
    if "slo_max_accuracy_loss" in df:
        axes[2].axhline(df["slo_max_accuracy_loss"].iloc[0] * 100, color="#d62828", lw=1, ls=":", label="budget")
        axes[2].legend(fontsize=7)
    seeds = df.groupby(varied_columns(df), dropna=False).size().max() if varied_columns(df) else 1
    fig.suptitle(f"what changes with {FIELD_LABELS.get(field, field)}"
                 + (f" (mean ± sd over {seeds} seeds)" if seeds > 1 else " (one seed per point)"), fontsize=10)
    return _save(fig, path)


# ------------------------------------------------------------------ compare

def _plain_log_ticks(axis, values) -> None:
    """Tick labels on a log axis as plain numbers (`60`, `0.01`), not `6 x 10^1`; 1-2-5 ticks
    when the values span up to 3 decades (else too few ticks), powers of ten beyond."""
    v = [x for x in values if x is not None and x > 0]
    subs = (1.0, 2.0, 5.0) if v and max(v) / min(v) <= 1e3 else (1.0,)
    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.4g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _spans_decades(values) -> bool:
    """True when positive values span more than a factor of 10: worth a log axis."""
    v = [x for x in values if x is not None and x > 0]
    return bool(v) and max(v) / min(v) > 10


def compare_figure(rows: list[dict], path: Path) -> Path:
    """Measured vs predicted p99, cost, model age and accuracy lost per scenario, each
    scenario's p99 SLO and accuracy budget marked over its bars."""
    names = [r["advice"]["scenario"] for r in rows]
    pred = [r.get("predicted_span") or r["advice"]["predicted"] for r in rows]
    sim = [r["simulated"] for r in rows]
    slos = [s.get("slo") or {} for s in sim]
    panels = [
        ("p99 latency (ms)", [p["latency_p99_ms"] for p in pred], [s["latency_ms"]["p99"] for s in sim],
         [g.get("latency_p99_ms") for g in slos], "p99 SLO"),
        ("cost (USD per month)", [p["cost_usd_per_month"] for p in pred], [s["cost_usd_per_month"] for s in sim],
         None, None),
        ("mean model age (h)", [p["mean_model_age_s"] / 3600 for p in pred],
         [s["staleness"]["model_age_s"]["mean"] / 3600 for s in sim], None, None),
        ("accuracy lost to staleness (points)", [p["accuracy_loss"] * 100 for p in pred],
         [s["accuracy"]["lost_to_staleness"] * 100 for s in sim],
         [None if g.get("max_accuracy_loss") is None else g["max_accuracy_loss"] * 100 for g in slos],
         "accuracy budget"),
    ]
    linear = {"accuracy lost to staleness (points)"}   # a loss of 0 must show, and the budget beside it
    fig, axes = plt.subplots(1, 4, figsize=(14, 4.2))
    x = np.arange(len(names))
    for ax, (label, pv, sv, goals, goal_label) in zip(axes, panels):
        ax.bar(x - 0.2, [v if v is not None else 0 for v in pv], 0.4, label="advisor", color="#e9c46a")
        ax.bar(x + 0.2, [v if v is not None else 0 for v in sv], 0.4, label="simulated", color="#264653")
        if goals is not None:
            # each scenario has its own goal: a short line across its pair of bars
            for i, g in enumerate(goals):
                if g is not None:
                    ax.hlines(g, i - 0.45, i + 0.45, colors="#d62828", linestyles="--", lw=1.4,
                              label=goal_label if i == 0 or goals[:i].count(None) == i else None)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(label)
        if label not in linear and _spans_decades(pv + sv + (goals or [])):
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis, pv + sv + (goals or []))
        top = max([v for v in pv + sv + (goals or []) if v is not None] or [1.0])
        ax.set_ylim(top=top * (1.6 if ax.get_yscale() == "log" else 1.15))   # room above the goal lines
        ax.grid(alpha=0.3, axis="y")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(color="#e9c46a", label="advisor"), Patch(color="#264653", label="simulated"),
                        Line2D([], [], color="#d62828", ls="--", label="each scenario's goal: p99 SLO, accuracy budget")],
               loc="lower center", ncol=3, fontsize=8, frameon=False)
    spans = {s["sampling"]["simulated_span_s"] if s.get("sampling") else s.get("horizon_s") for s in sim}
    from scenarios.units import format_duration
    span = (f"{format_duration(spans.pop())} simulated per scenario" if len(spans) == 1 and None not in spans
            else "simulated spans differ")
    fig.suptitle(f"use cases side by side: the advisor's prediction vs the simulation ({span}, one seed); "
                 f"bars that match: the closed-form models hold", fontsize=9.5)
    fig.layout_rect = (0, 0.06, 1, 1)   # room for the shared legend below the panels
    return _save(fig, path)


# ------------------------------------------------------------------- capacity

def capacity_figure(cap: dict, path: Path) -> Path:
    """p99 latency against the mean traffic rate for each design (the advisor's model as a
    line, simulations as points), with the SLO and today's rate."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    styles = {"static": "-", "dynamic": "-", "hybrid": "--"}
    drawn: list[tuple[str, list, list]] = []
    all_y = [cap["slo_p99_ms"]]
    for d in cap["designs"]:
        color = KIND_COLORS.get(d["kind"], "#264653")
        xs = [r for r, p in d["curve"] if p is not None]
        ys = [p for r, p in d["curve"] if p is not None]
        all_y += ys + [s["p99_ms"] for s in d["simulated"] if s.get("p99_ms") is not None]
        if d["kind"] == "static":
            label = "static (table lookups: no queue)"
        elif d["kind"] == "hybrid":
            from scenarios.units import format_count
            label = (f"hybrid (top {format_count(d['design'].get('cache_top_k') or 0)}, hit {d['hit_ratio']:.1%}; "
                     f"{d['replicas']} replicas)")
        else:
            label = f"{d['kind']} ({d['replicas']} replicas)"
        # a design whose curve is another's (a hybrid whose table catches nothing) would hide it
        same = next((k for k, xs2, ys2 in drawn if len(xs2) == len(xs) and np.allclose(xs2, xs)
                     and np.allclose(ys2, ys)), None)
        if same is not None:
            label += f": same curve as {same}"
        drawn.append((d["kind"], xs, ys))
        ax.plot(xs, ys, color=color, ls=styles.get(d["kind"], "-"), lw=2.4 if same is None else 1.4, label=label)
        for s in d["simulated"]:
            ax.scatter([s["rate_per_s"]], [s["p99_ms"]], color=color, edgecolor="black", zorder=3)
        if d["capacity_rate_per_s"]:
            ax.axvline(d["capacity_rate_per_s"], color=color, linestyle=":", linewidth=1)
    ax.axhline(cap["slo_p99_ms"], color="#d62828", linestyle="--", linewidth=1.2,
               label=f"p99 SLO {cap['slo_p99_ms']:g} ms")
    ax.axvline(cap["today_rate_per_s"], color="grey", linewidth=1, label=f"today's rate {cap['today_rate_per_s']:g}/s")
    ax.scatter([], [], color="white", edgecolor="black", label="simulated (at capacity and 1.1x)")
    ax.plot([], [], color="black", ls=":", lw=1, label="capacity: model p99 reaches the SLO")
    ax.set_xlabel("mean traffic rate (requests/s)")
    ax.set_ylabel("p99 latency at the daily peak (ms)" + (", log scale" if _spans_decades(all_y) else ""))
    if _spans_decades(all_y):
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, all_y)
    from scenarios.units import format_duration
    sim_h = cap.get("simulated_horizon_s")
    dots = (f"dots: simulated, {format_duration(sim_h)} at the peak rate held flat"
            if any(d["simulated"] for d in cap["designs"]) and sim_h else "not simulated (--no-simulate)")
    ax.set_title(f"{cap['scenario']}: how much traffic each design takes within the p99 SLO\n"
                 f"(lines: the advisor's model at the daily peak; {dots})", fontsize=9)
    ax.legend(fontsize=7.5)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


# ------------------------------------------------------------------- serving map

def serving_map_figure(m: dict, path: Path) -> Path:
    """Cells coloured by the cheapest serving design that meets the SLO (grey: none does),
    over cardinality and Zipf exponent, with the scenario marked."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    cards, zipfs = m["cardinalities"], m["zipf_exponents"]
    order = ["static", "hybrid", "dynamic", "none"]
    colors = [KIND_COLORS["static"], KIND_COLORS["hybrid"], KIND_COLORS["dynamic"], "#adb5bd"]
    z = np.full((len(zipfs), len(cards)), np.nan)
    cell_of = {(c["cardinality"], c["zipf_s"]): c for c in m["cells"]}
    own_hit = None
    fig, ax = plt.subplots(figsize=(8, 4.8))
    finite = [n for n in cards if n is not None]
    lx = np.log10(finite)
    if len(finite) < len(cards):   # unbounded: one more column, a step past the largest
        lx = np.r_[lx, lx[-1] + (lx[-1] - lx[-2] if len(lx) > 1 else 1.0)]
    for i, s in enumerate(zipfs):
        for j, n in enumerate(cards):
            c = cell_of.get((n, s))
            if c is None:
                continue
            z[i, j] = order.index(c["decision"])
            if c["decision"] == "hybrid" and c["hit_ratio"] is not None:
                if n == m["cardinality"] and math.isclose(s, m["zipf_s"], rel_tol=1e-6):
                    own_hit = c["hit_ratio"]   # the star covers this cell: its ratio goes in the legend
                    continue
                ax.text(lx[j], s, f"{c['hit_ratio']:.0%}", ha="center", va="center", fontsize=6.5)

    def edges(v):
        v = np.asarray(v, dtype=float)
        mid = (v[1:] + v[:-1]) / 2
        return np.r_[v[0] - (mid[0] - v[0]), mid, v[-1] + (v[-1] - mid[-1])]
    ax.pcolormesh(edges(lx), edges(zipfs), z, cmap=ListedColormap(colors), vmin=-0.5, vmax=3.5)
    star_x = lx[-1] if m["cardinality"] is None else math.log10(m["cardinality"])
    ax.plot([star_x], [m["zipf_s"]], marker="*", ms=18, color="white", markeredgecolor="black",
            label=f"{m['scenario']} ({m['decision']}" + (f", {own_hit:.0%} hits)" if own_hit is not None else ")"))
    from scenarios.units import format_count
    ax.set_xticks(lx, [format_count(n) if n is not None else "unbounded" for n in cards], fontsize=8)
    ax.set_xlabel("distinct inputs (cardinality, log scale)")
    ax.set_ylabel("peakedness (Zipf exponent s)")
    handles = [Patch(color=c, label=k if k != "none" else "none meets the SLO") for k, c in zip(order, colors)]
    handles.append(ax.get_legend_handles_labels()[0][0])
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{m['scenario']}: the cheapest serving design that meets the {m['slo_p99_ms']:g} ms p99 SLO\n"
                 f"(advisor, everything else as in the scenario; hybrid cells show the table's hit ratio)",
                 fontsize=9)
    return _save(fig, path)
