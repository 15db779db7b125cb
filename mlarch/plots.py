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
    fig.tight_layout()
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
    return [latency_cdf(metrics, hist, out_dir / "latency_cdf.png"),
            accuracy_over_time(metrics, ts, events, out_dir / "accuracy_age.png"),
            cost_breakdown(metrics, out_dir / "cost_breakdown.png")]


def latency_cdf(metrics: dict, hist: pd.DataFrame, path: Path, slo_ms: float | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, g in hist.groupby("path", sort=False):
        g = g.sort_values("upper_edge_ms")
        cdf = g["count"].cumsum() / g["count"].sum()
        x = np.maximum(g["upper_edge_ms"].to_numpy(), 1e-3)
        ax.step(x, cdf, where="post", label=f"{name} ({int(g['count'].sum()):,} requests)",
                color=PATH_COLORS.get(name), lw=2.2 if name == "all" else 1.4)
    p99 = metrics["latency_ms"]["p99"]
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    if p99 is not None:   # null when the run had no requests
        ax.axvline(p99, color=PATH_COLORS["all"], ls="--", lw=1)
        ax.annotate(f"overall p99 {p99:.1f} ms", (p99, 0.5), rotation=90, va="center", ha="right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency: queue wait + service, or table lookup (ms, log scale)")
    ax.set_ylabel("share of requests at or below")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{metrics['scenario']}: latency by serving path\n"
                 "look at where each curve crosses 0.99: table hits are fast and flat, the model path queues",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def accuracy_over_time(metrics: dict, ts: pd.DataFrame, events: list, path: Path) -> Path:
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    hours = (ts["t_start_s"] + ts["t_end_s"]) / 2 / 3600
    a1.plot(hours, ts["accuracy"] * 100, color="#264653", lw=1.2, label="served accuracy (vs noisy labels)")
    if "fresh_expected_accuracy" in ts:
        a1.plot(hours, ts["fresh_expected_accuracy"] * 100, color="#2a9d8f", lw=1, ls="--",
                label="same model when fresh (expected)")
        a1.plot(hours, ts["served_expected_accuracy"] * 100, color="#e76f51", lw=1,
                label="served (expected over label noise)")
    if "monitor_accuracy" in ts:
        a1.plot(hours, ts["monitor_accuracy"] * 100, color="#6a4c93", lw=0.9, ls=":",
                label="monitor's estimate (labels so far)")
    _issue17_marks(a1, events)
    a1.set_ylabel("accuracy (%)")
    a1.legend(fontsize=7, loc="lower left")
    a2.plot(hours, ts["model_age_mean_s"] / 3600, color="#e76f51", lw=1.4)
    a2.set_ylabel("mean model age (h)")
    a2.set_xlabel("simulated time (h)")
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
    a1.set_title(f"{metrics['scenario']}: accuracy and model age over time\n"
                 "look for the sawtooth: age grows until a deployment resets it, and accuracy falls with age",
                 fontsize=10)
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
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.barh([k.replace("_", " ") for k in kinds], vals, color=["#e76f51", "#264653", "#e9c46a", "#2a9d8f"])
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


def sweep_figures(csv: Path, out_dir: Path) -> list[Path]:
    df = pd.read_csv(_read(csv))
    varied = varied_columns(df)
    if not varied or "latency_ms_p99" not in df:
        raise ValueError("not a sweep CSV from `mlarch sweep` (no seed or metric columns)")
    out = []
    serving_axes = [v for v in varied if v.startswith("architecture.cache_top_k") or v in
                    ("architecture", "architecture.serving", "traffic.peakedness", "traffic.peakedness.zipf_s")]
    retrain_axes = [v for v in varied if v in ("architecture.retrain_every", "architecture.training",
                                               "data.concept_half_life")]
    if serving_axes or df["architecture_serving"].nunique() > 1:
        out.append(storage_vs_latency(df, out_dir / "tradeoff_storage_latency.png"))
    if retrain_axes or df["architecture_retrain_every_s"].nunique() > 1:
        out.append(accuracy_vs_retrain(df, out_dir / "tradeoff_retrain.png"))
    for v in varied:
        out.append(metrics_vs_field(df, v, out_dir / f"metrics_vs_{_slug(v)}.png"))
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def _group(df: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    g = df.groupby(keys, sort=False, dropna=False)[cols]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    return pd.concat([mean, std.add_suffix("_sd")], axis=1).reset_index()


def _pareto(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points not dominated (lower x and lower y are better), sorted by x."""
    order = np.argsort(x, kind="stable")
    front, best = [], math.inf
    for i in order:
        if y[i] < best - 1e-12:
            front.append(i)
            best = y[i]
    return np.array(front, dtype=int)


def storage_vs_latency(df: pd.DataFrame, path: Path) -> Path:
    d = df.copy()
    d["storage_month"] = d["storage_usd_per_month"]
    d["total_month"] = d["cost_usd_per_month"]
    d["k"] = d["architecture_cache_top_k"].fillna(0)
    g = _group(d, ["architecture_serving", "k"], ["storage_month", "latency_ms_p99", "total_month",
                                                  "cache_hit_ratio"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, xcol, xlabel in ((a1, "storage_month", "table storage (USD per month, log scale)"),
                             (a2, "total_month", "total cost: storage + compute (USD per month)")):
        x, y = g[xcol].to_numpy(), g["latency_ms_p99"].to_numpy()
        for kind, gg in g.groupby("architecture_serving"):
            ax.errorbar(gg[xcol], gg["latency_ms_p99"], yerr=gg["latency_ms_p99_sd"], fmt="o", ms=7,
                        color=KIND_COLORS.get(kind), label=kind, capsize=3)
        front = _pareto(x, y)
        ax.plot(x[front], y[front], color="black", lw=1, ls="--", label="Pareto front")
        last = None
        xr, yr = max(np.ptp(x), 1e-12), max(np.ptp(y), 1e-12)
        for i in np.argsort(x, kind="stable"):
            r = g.iloc[i]
            if last is not None and abs(x[i] - last[0]) < 0.04 * xr and abs(y[i] - last[1]) < 0.04 * yr:
                continue   # labels of points that sit on top of each other would be unreadable
            last = (x[i], y[i])
            lab = {"static": "static (all)", "dynamic": "dynamic (none)"}.get(
                r["architecture_serving"], f"top {r['k']:.3g} ({r['cache_hit_ratio']:.0%} hits)")
            ax.annotate(lab, (x[i], y[i]), xytext=(5, 4), textcoords="offset points", fontsize=7)
        logx = xcol == "storage_month" and (x > 0).all() and x.max() / x.min() > 20
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel if logx else xlabel.replace(", log scale", ""))
        if g["cache_hit_ratio"].max() < 0.01:
            ax.text(0.5, 0.5, f"no cache size helps here:\nat most {g['cache_hit_ratio'].max():.2%} of requests hit",
                    transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#6c757d")
        ax.set_ylabel("p99 latency (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    a1.set_title("space vs time: more precomputed keys buy lower latency\n"
                 "look for the knee of the Pareto front", fontsize=10)
    a2.set_title("what it costs in all: the cheapest point on the front\nthat meets the SLO is the design to pick",
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
    ax.errorbar(g["interval_h"], g["loss_pct"], yerr=g["loss_pct_sd"], fmt="o-", color="#e76f51",
                capsize=3, label="accuracy lost to staleness")
    ax.set_xlabel("retrain interval (h; static = the whole horizon)")
    ax.set_ylabel("accuracy lost to staleness (percentage points)", color="#e76f51")
    ax2 = ax.twinx()
    ax2.errorbar(g["interval_h"], g["train_month"], yerr=g["train_month_sd"], fmt="s--", color="#264653",
                 capsize=3, label="training cost")
    ax2.set_ylabel("training compute (USD per month)", color="#264653")
    ax.grid(alpha=0.3)
    ax.set_title("fresher models cost more training: accuracy lost vs retrain interval\n"
                 "look for the longest interval whose loss is within your budget", fontsize=10)
    return _save(fig, path)


def metrics_vs_field(df: pd.DataFrame, field: str, path: Path) -> Path:
    d = df.copy()
    d["total_month"] = d["cost_usd_per_month"]
    d["loss_pct"] = d["accuracy_lost_to_staleness"] * 100
    g = _group(d, [field], ["latency_ms_p99", "total_month", "loss_pct"])
    numeric = pd.to_numeric(g[field], errors="coerce")
    xs = numeric if numeric.notna().all() else pd.Series(range(len(g)))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, col, label in zip(axes, ["latency_ms_p99", "total_month", "loss_pct"],
                              ["p99 latency (ms)", "total cost (USD per month)", "accuracy lost (points)"]):
        ax.errorbar(xs, g[col], yerr=g[f"{col}_sd"], fmt="o-", capsize=3, color="#264653")
        ax.set_ylabel(label)
        ax.set_xlabel(field)
        ax.grid(alpha=0.3)
        if numeric.notna().all() and (numeric > 0).all() and numeric.max() / numeric.min() > 50:
            ax.set_xscale("log")
        if not numeric.notna().all():
            ax.set_xticks(list(xs))
            ax.set_xticklabels([str(v) for v in g[field]], rotation=20, fontsize=7)
    fig.suptitle(f"what changes with {field} (mean ± sd over seeds)", fontsize=10)
    return _save(fig, path)


# ------------------------------------------------------------------ compare

def compare_figure(rows: list[dict], path: Path) -> Path:
    """Measured vs predicted p99, cost, model age and accuracy lost per scenario."""
    names = [r["advice"]["scenario"] for r in rows]
    pred = [r.get("predicted_span") or r["advice"]["predicted"] for r in rows]
    sim = [r["simulated"] for r in rows]
    panels = [
        ("p99 latency (ms)", [p["latency_p99_ms"] for p in pred], [s["latency_ms"]["p99"] for s in sim], True),
        ("cost (USD per month)", [p["cost_usd_per_month"] for p in pred], [s["cost_usd_per_month"] for s in sim], True),
        ("mean model age (h)", [p["mean_model_age_s"] / 3600 for p in pred],
         [s["staleness"]["model_age_s"]["mean"] / 3600 for s in sim], True),
        ("accuracy lost (points)", [p["accuracy_loss"] * 100 for p in pred],
         [s["accuracy"]["lost_to_staleness"] * 100 for s in sim], False),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(14, 4))
    x = np.arange(len(names))
    for ax, (label, pv, sv, logy) in zip(axes, panels):
        ax.bar(x - 0.2, pv, 0.4, label="advisor", color="#e9c46a")
        ax.bar(x + 0.2, sv, 0.4, label="simulated", color="#264653")
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(label)
        if logy and min(v for v in pv + sv if v is not None) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    fig.suptitle("use cases side by side: advisor's prediction vs simulation "
                 "(bars that match mean the closed-form models hold)", fontsize=10)
    return _save(fig, path)


# ------------------------------------------------------------------- capacity

def capacity_figure(cap: dict, path: Path) -> Path:
    """p99 latency against the mean traffic rate for each design (the advisor's model as a
    line, simulations as points), with the SLO and today's rate."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for d in cap["designs"]:
        color = KIND_COLORS.get(d["kind"], "#264653")
        xs = [r for r, p in d["curve"] if p is not None]
        ys = [p for r, p in d["curve"] if p is not None]
        label = f"{d['kind']} ({d['replicas']} replicas)"
        ax.plot(xs, ys, color=color, label=f"{label}, model")
        for s in d["simulated"]:
            ax.scatter([s["rate_per_s"]], [s["p99_ms"]], color=color, edgecolor="black", zorder=3)
        if d["capacity_rate_per_s"]:
            ax.axvline(d["capacity_rate_per_s"], color=color, linestyle=":", linewidth=1)
    ax.axhline(cap["slo_p99_ms"], color="black", linestyle="--", linewidth=1, label="p99 SLO")
    ax.axvline(cap["today_rate_per_s"], color="grey", linewidth=1, label="today's rate")
    ax.set_xlabel("mean traffic rate (requests/s)")
    ax.set_ylabel("p99 latency at the daily peak (ms)")
    ax.set_yscale("log")
    ax.set_title(f"{cap['scenario']}: capacity of each design (dotted: where p99 reaches the SLO; dots: simulated)",
                 fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)
