"""Figures of `mlarch fit --figures DIR` (PNG, headless): what each fitted number rests on."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scenarios.popularity import harmonic  # noqa: E402

from . import fit as fitmod  # noqa: E402
from .plots import _save  # noqa: E402


def figures(res, out_dir: Path) -> list[Path]:
    """counts_per_hour.png, rank_frequency.png, unseen_mass.png and, with a label log,
    label_delay_survival.png."""
    est = res.doc["estimates"]
    paths = [counts_per_hour(res.scan, est, out_dir / "counts_per_hour.png"),
             rank_frequency(res.scan, est, out_dir / "rank_frequency.png"),
             unseen_mass(est, out_dir / "unseen_mass.png")]
    if "data.label_delay" in est:
        paths.append(label_delay_survival(est, out_dir / "label_delay_survival.png"))
    return paths


def counts_per_hour(scan, est, path: Path) -> Path:
    starts, c = fitmod.counts_per_hour(scan)
    r = est["traffic.rate"]
    a = est["traffic.diurnal_amplitude"] or {"value": 0.0}
    h = (starts - scan.t_min) / 3600.0
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.step(h, c / 3600.0, where="post", color="#264653", label="observed (requests/s, per hour)")
    # the fitted curve a(1 + A sin(ωt + φ)): re-fit the phase on the hourly counts for display
    t = np.linspace(scan.t_min, scan.t_max, 500)
    om = 2 * math.pi / fitmod.DAY_S
    X = np.column_stack([np.sin(om * (starts + 1800)), np.cos(om * (starts + 1800))])
    bc, *_ = np.linalg.lstsq(X, c / 3600.0 - r["value"], rcond=None)
    phase = math.atan2(bc[1], bc[0])
    fitted = r["value"] * (1 + a["value"] * np.sin(om * t + phase))
    ax.plot((t - scan.t_min) / 3600.0, fitted, color="#e76f51",
            label=f"fitted: rate {r['value']:.4g}/s, amplitude {a['value']:.3f}")
    ax.set_xlabel("hours since the first request")
    ax.set_ylabel("requests per second")
    ax.set_title("Arrivals per hour and the fitted daily curve")
    ax.legend()
    return _save(fig, path)


def rank_frequency(scan, est, path: Path) -> Path:
    counts = np.sort(scan.keys.counts)[::-1]
    p = scan.keys.fraction
    ranks = (np.arange(counts.size) + 1) / p
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.loglog(ranks, counts, ".", ms=2, color="#264653", label="observed keys" + (f" (hash sample, p={p:.3g})" if p < 1 else ""))
    z = est.get("traffic.peakedness.zipf_s")
    if z is not None:
        s = z["value"]
        n_keys = est["traffic.cardinality"]["value"]
        k = np.geomspace(1, ranks[-1], 200)
        norm = harmonic(n_keys, s) if n_keys else (harmonic(1e18, s) if s <= 1 else float(
            __import__("scipy.special", fromlist=["zeta"]).zeta(s)))
        ax.loglog(k, scan.rows * k ** (-s) / norm, color="#e76f51",
                  label=f"fitted Zipf s = {s:.3f} (alpha = {z['alpha']:.3f})")
        ax.axhline(z["x_min"], color="#6c757d", ls="--", lw=1, label=f"x_min = {z['x_min']} requests")
    ax.set_xlabel("key rank")
    ax.set_ylabel("requests per key")
    ax.set_title("Rank-frequency (log-log)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def unseen_mass(est, path: Path) -> Path:
    c = est["traffic.cardinality"]
    pts = [(q["requests"], q["unseen_mass"]) for q in c["unseen_mass_curve"] if q["unseen_mass"] > 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    if pts:
        n, m = zip(*pts)
        ax.loglog(n, m, "o-", color="#264653", label="Good-Turing unseen mass n1/n")
        ax.loglog(n, [m[0] * n[0] / x for x in n], ":", color="#6c757d", label="slope -1 (a bounded space falls faster)")
    ax.set_xlabel("requests read")
    ax.set_ylabel("P(next request is an unseen key)")
    ax.set_title(f"Unseen-key mass vs log size: {'bounded' if c['bounded'] else 'unbounded'}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def label_delay_survival(est, path: Path) -> Path:
    d = est["data.label_delay"]
    pts = d["survival"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if pts:
        t, S = zip(*pts)
        ax.step(np.array(t) / 3600.0, S, where="post", color="#264653", label="Kaplan-Meier")
    if d["median_s"] is not None:
        ax.axvline(d["median_s"] / 3600.0, color="#e76f51", ls="--", label=f"median {d['median_s'] / 3600:.3g}h (written)")
    if d["p90_s"] is not None:
        ax.axvline(d["p90_s"] / 3600.0, color="#e9c46a", ls="--", label=f"p90 {d['p90_s'] / 3600:.3g}h")
    ax.set_xlabel("label delay (hours)")
    ax.set_ylabel("share of examples still unlabelled")
    ax.set_title(f"Label delay survival ({d['censored']:,} unlabelled at the log's end)")
    ax.legend(fontsize=8)
    return _save(fig, path)
