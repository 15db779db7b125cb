"""Figures of a fit (PNG, headless): what each fitted number rests on. Drawn from the fit
record (mlarch.fit.fit_record: the --json document and its figure data), so that `fit
--figures DIR` and `report` on a fitted scenario draw the same figures."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import fit as fitmod  # noqa: E402
from .plots import _save  # noqa: E402

NAMES = ("counts_per_hour.png", "rank_frequency.png", "unseen_mass.png", "label_delay_survival.png")
CAPTIONS = {
    "counts_per_hour.png": "Requests per hour in the log and the fitted daily curve (traffic.rate, "
                           "traffic.diurnal_amplitude)",
    "rank_frequency.png": "Requests per key by rank (log-log) with the fitted Zipf exponent and x_min "
                          "(traffic.peakedness.zipf_s)",
    "unseen_mass.png": "Chance that the next request is a new key as the log grows: bounded or not "
                       "(traffic.cardinality)",
    "label_delay_survival.png": "Share of examples still unlabelled against the delay, Kaplan-Meier "
                                "(data.label_delay)",
}


def figures(record: dict, out_dir: Path) -> list[Path]:
    """counts_per_hour.png, rank_frequency.png, unseen_mass.png and, with a label log,
    label_delay_survival.png, in out_dir (created if needed)."""
    est, fd = record["estimates"], record["figure_data"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [counts_per_hour(fd, est, out_dir / NAMES[0]),
             rank_frequency(fd, est, out_dir / NAMES[1]),
             unseen_mass(est, out_dir / NAMES[2])]
    if est.get("data.label_delay"):
        paths.append(label_delay_survival(est, out_dir / NAMES[3]))
    return paths


def _time_unit(span_s: float) -> tuple[float, str]:
    """Seconds per unit and its name, for an axis spanning span_s."""
    for limit, sec, name in ((120.0, 1.0, "seconds"), (2 * 3600.0, 60.0, "minutes"), (4 * 86400.0, 3600.0, "hours")):
        if span_s <= limit:
            return sec, name
    return 86400.0, "days"


def counts_per_hour(fd: dict, est: dict, path: Path) -> Path:
    cph = fd["counts_per_hour"]
    starts, c = np.asarray(cph["start"], float), np.asarray(cph["requests"], float)
    t0, t1 = fd["t_start"], fd["t_end"]
    width = float(starts[1] - starts[0]) if starts.size > 1 else 3600.0
    unit, uname = _time_unit(t1 - t0)
    r = est["traffic.rate"]
    a = est["traffic.diurnal_amplitude"]
    fig, ax = plt.subplots(figsize=(8, 4))
    # steps over each bin's whole width (the last bin too)
    edges = np.append(starts, starts[-1] + width) if starts.size else starts
    ax.stairs(c / width, (edges - t0) / unit, baseline=None, color="#264653", lw=1.5, zorder=3,
              label=f"observed (requests/s, mean over each {width / 3600:g}h)")
    t = np.linspace(t0, t1, 800)
    lo, hi = r["ci95"]
    if a is not None:
        # the fitted curve a(1 + A sin(ωt + φ)): the record keeps rate and amplitude, not the
        # phase, so the phase is re-fitted on the hourly counts for display
        om = 2 * math.pi / fitmod.DAY_S
        mid = starts + width / 2
        X = np.column_stack([np.sin(om * mid), np.cos(om * mid)])
        bc, *_ = np.linalg.lstsq(X, c / width - r["value"], rcond=None)
        phase = math.atan2(bc[1], bc[0])
        fitted = r["value"] * (1 + a["value"] * np.sin(om * t + phase))
        label = f"fitted: rate {r['value']:.4g}/s (95% {lo:.4g} – {hi:.4g}), daily amplitude {a['value']:.3f}"
    else:
        fitted = np.full(t.size, r["value"])
        label = f"fitted: flat rate {r['value']:.4g}/s (95% {lo:.4g} – {hi:.4g}; log under 6h)"
    ax.plot((t - t0) / unit, fitted, color="#e76f51", lw=2, label=label)
    ax.set_ylim(0, 1.15 * max(float(np.max(c / width, initial=0.0)), float(fitted.max()), 1e-9))
    ax.set_xlabel(f"{uname} since the first request")
    ax.set_ylabel("requests per second")
    ax.set_title("Arrivals and the fitted daily curve")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def rank_frequency(fd: dict, est: dict, path: Path) -> Path:
    rf = fd["rank_frequency"]
    ranks, counts = np.asarray(rf["rank"], float), np.asarray(rf["requests"], float)
    p = rf["sample_fraction"]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.loglog(ranks, counts, ".", ms=3, color="#264653",
              label="observed keys" + (f" (hash sample p = {p:.3g}, ranks x 1/p)" if p < 1 else ""))
    z = est.get("traffic.peakedness.zipf_s")
    if z is not None and ranks.size:
        s, x_min = z["value"], z["x_min"]
        # the MLE fits the exponent on keys with >= x_min requests: draw slope -s through them
        # (anchored by least squares in log space), not a normalisation the fit never saw
        tail = counts >= x_min
        anchor = float(np.mean(np.log(counts[tail]) + s * np.log(ranks[tail])))
        k = np.geomspace(1, ranks[tail].max(), 200)
        lo, hi = (("inf" if v is None or not math.isfinite(v) else f"{v:.3f}") for v in z["ci95"])
        ax.loglog(k, np.exp(anchor) * k ** (-s), color="#e76f51", lw=2,
                  label=f"fitted Zipf s = {s:.3f} (95% {lo} – {hi})")
        ax.axhline(x_min, color="#6c757d", ls="--", lw=1, label=f"x_min = {x_min} requests (fitted above it)")
    ax.set_xlabel("key rank (1 = most requested)")
    ax.set_ylabel("requests per key")
    ax.set_title("Rank-frequency of keys (log-log)")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def unseen_mass(est: dict, path: Path) -> Path:
    c = est["traffic.cardinality"]
    pts = [(q["requests"], q["unseen_mass"]) for q in c["unseen_mass_curve"] if q["unseen_mass"] > 0]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if pts:
        n, m = zip(*pts)
        ax.loglog(n, m, "o-", color="#264653", label="Good-Turing unseen mass n1/n")
        ax.loglog(n, [m[0] * n[0] / x for x in n], ":", color="#6c757d",
                  label="slope -1: a bounded key space ends up falling faster")
    gone = [q["requests"] for q in c["unseen_mass_curve"] if q["unseen_mass"] == 0]
    if gone:   # zero has no place on a log axis: say where the curve stops
        ax.text(0.02, 0.04, f"no key seen only once from {gone[0]:,} requests on (unseen mass 0)",
                transform=ax.transAxes, fontsize=8, color="#6c757d")
    verdict = "bounded" if c["bounded"] else "unbounded"
    slope = c.get("unseen_mass_slope")
    ax.set_xlabel("requests read")
    ax.set_ylabel("P(next request is an unseen key)")
    ax.set_title(f"Unseen-key mass vs log size: {verdict}"
                 + (f" (last slope {slope:.2f})" if slope is not None else ""))
    ax.legend(fontsize=8)
    return _save(fig, path)


def label_delay_survival(est: dict, path: Path) -> Path:
    d = est["data.label_delay"]
    pts = [[0.0, 1.0]] + [list(x) for x in d["survival"]]     # S = 1 before any label arrives
    t, S = np.array(pts).T
    # at least 1 s wide: delays under 1 ms share the first bin, whose upper edge is 1 ms
    far = max(t.max(), d["p90_s"] or 0.0, d["median_s"] or 0.0, 1.0)
    unit, uname = _time_unit(far)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    # S holds after each point's delay: extend the last step a little to show where it ends
    t_end = far * 1.1
    ax.step(np.append(t, t_end) / unit, np.append(S, S[-1]), where="post", color="#264653", lw=2,
            label="Kaplan-Meier (unlabelled rows censored at the log's end)")
    if d["median_s"] is not None:
        lo, hi = d["median_ci95_s"]
        ax.axvline(d["median_s"] / unit, color="#e76f51", ls="--",
                   label=f"median {d['median_s'] / unit:.4g} {uname} (written)")
        if lo is not None and hi is not None and hi > lo:
            ax.axvspan(lo / unit, hi / unit, color="#e76f51", alpha=0.12, lw=0, label="median 95% interval")
    if d["p90_s"] is not None:
        ax.axvline(d["p90_s"] / unit, color="#e9c46a", ls=":", lw=2, label=f"p90 {d['p90_s'] / unit:.4g} {uname}")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(-0.02 * t_end / unit, t_end / unit)    # a step at 0 stays visible off the spine
    ax.set_xlabel(f"label delay ({uname})")
    ax.set_ylabel("share of examples still unlabelled")
    ax.set_title(f"Label-delay survival ({d['labelled']:,} labelled, {d['censored']:,} unlabelled at the end)")
    ax.legend(fontsize=8)
    return _save(fig, path)
