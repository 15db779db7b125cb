"""Rendering for people (rich tables) and machines (strict JSON). No decisions here."""
from __future__ import annotations

import json
import math

from rich.console import Console
from rich.table import Table

from scenarios.units import format_bytes, format_count, format_duration


def to_jsonable(obj):
    """Replace non-finite floats by None and tuples by lists so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return to_jsonable(obj.item())
    return obj


def dumps(obj) -> str:
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False)


def _ms(x) -> str:
    return "inf" if x is None or not math.isfinite(x) else f"{x:,.1f} ms"


def _usd(x) -> str:
    return f"${x:,.2f}"


def advice(console: Console, adv: dict, scenario) -> None:
    """Print one advise result (the JSON form) for people."""
    t, s, p, a = adv["training"], adv["serving"], adv["predicted"], adv["architecture"]
    console.print(f"[bold]mlarch advise: {adv['scenario']}[/bold]"
                  + (f" — {scenario.description}" if scenario.description else ""))
    every = f" every {format_duration(t['retrain_every_s'])}" if t["retrain_every_s"] else ""
    console.print(f"\n[bold cyan]Training: {t['decision']}[/bold cyan] ({t['mode']}{every})   "
                  f"scores: " + ", ".join(f"{k} {v:.1f}" for k, v in t["scores"].items()))
    for r in t["reasons"]:
        console.print(f"  • {r}", highlight=False)
    k = f", top {format_count(s['cache_top_k'])} precomputed" if s["cache_top_k"] else ""
    console.print(f"\n[bold cyan]Serving: {s['decision']}[/bold cyan] ({s['replicas']} replicas{k})   "
                  f"scores: " + ", ".join(f"{k2} {v:.1f}" for k2, v in s["scores"].items()))
    for r in s["reasons"]:
        console.print(f"  • {r}", highlight=False)
    pinned = [f for f in ("training", "serving") if getattr(scenario.architecture, f)]
    title = "Predicted figures" + (f" (architecture pinned: {', '.join(pinned)} = "
                                   f"{', '.join(a[f] for f in pinned)})" if pinned else "")
    tab = Table(title=title, title_justify="left", show_header=True)
    tab.add_column("figure")
    tab.add_column("value", justify="right")
    rows = [
        ("p99 latency", _ms(p["latency_p99_ms"])),
        ("cache hit ratio", f"{p['cache_hit_ratio']:.1%}"),
        ("table size", format_bytes(p["table_bytes"])),
        ("storage", _usd(p["storage_usd_per_month"]) + "/month"),
        ("compute (serving + training + batch)", _usd(p["compute_usd_per_month"]) + "/month"),
        ("mean model age", format_duration(p["mean_model_age_s"])),
        ("fresh-model accuracy", f"{p['fresh_accuracy']:.2%}"),
        ("accuracy lost to staleness", f"{p['accuracy_loss']:.2%}"),
    ]
    for r in rows:
        tab.add_row(*r)
    console.print()
    console.print(tab)


def compare_table(console: Console, rows: list[dict], simulated: bool) -> None:
    """The course's use-case table, with numbers: one row per scenario."""
    tab = Table(title="Use cases side by side" + (" (advisor, and simulated where shown)" if simulated else ""),
                title_justify="left")
    for c in ("scenario", "cardinality", "peakedness", "half-life", "training", "serving",
              "p99", "hit", "storage $/mo", "compute $/mo", "model age", "acc. loss"):
        tab.add_column(c, justify="left" if c in ("scenario", "training", "serving") else "right")
    for r in rows:
        sc, adv = r["scenario_obj"], r["advice"]
        t, s, p = adv["training"], adv["serving"], r.get("predicted_span") or adv["predicted"]
        every = f" {format_duration(t['retrain_every_s'])}" if t["retrain_every_s"] else ""
        card = "unbounded" if sc.traffic.cardinality is None else format_count(sc.traffic.cardinality)
        a = adv["architecture"]
        cells = [sc.name, card, f"s={sc.traffic.zipf_s:.2f}", format_duration(sc.data.concept_half_life),
                 f"{t['decision']} ({a['training']}{every})",
                 s["decision"] + (f" (top {format_count(s['cache_top_k'])})" if s["cache_top_k"] else ""),
                 _ms(p["latency_p99_ms"]), f"{p['cache_hit_ratio']:.0%}",
                 _usd(p["storage_usd_per_month"]), _usd(p["compute_usd_per_month"]),
                 format_duration(p["mean_model_age_s"]), f"{p['accuracy_loss']:.2%}"]
        tab.add_row(*cells)
        sim = r.get("simulated")
        if sim:
            tab.add_row("  simulated", "", "", "", "", "", _ms(sim["latency_ms"]["p99"]),
                        f"{sim['cache_hit_ratio']:.0%}", _usd(sim["storage"]["usd_per_month"]),
                        _usd(sim["cost_usd_per_month"] - sim["storage"]["usd_per_month"]),
                        format_duration(sim["staleness"]["model_age_s"]["mean"]),
                        f"{sim['accuracy']['lost_to_staleness']:.2%}", style="dim")
    console.print(tab)


def simulation(console: Console, m: dict, predicted: dict | None = None) -> None:
    """Human summary of one simulation, with the advisor's prediction alongside."""
    a = m["architecture"]
    every = f" every {format_duration(a['retrain_every_s'])}" if a["retrain_every_s"] else ""
    k = f", top {format_count(a['cache_top_k'])} precomputed" if a["cache_top_k"] else ""
    console.print(f"[bold]mlarch simulate: {m['scenario']}[/bold]  seed {m['seed']}, "
                  f"{format_duration(m['horizon_s'])} simulated in {m['wall_s']:.1f} s "
                  f"({m['requests'] / max(m['wall_s'], 1e-9) / 1e6:.2f}M requests/s)")
    console.print(f"architecture: training {a['training']}{every}; serving {a['serving']}{k}; "
                  f"{a['replicas']} replicas")
    p = predicted or {}
    tab = Table(show_header=True)
    tab.add_column("figure")
    tab.add_column("simulated", justify="right")
    tab.add_column("advisor predicted", justify="right")
    lat = m["latency_ms"]
    acc = m["accuracy"]
    age = m["staleness"]["model_age_s"]
    rows = [
        ("requests", f"{m['requests']:,}", ""),
        ("latency p50 / p95", f"{lat['p50']:.1f} / {lat['p95']:.1f} ms", ""),
        ("latency p99", _ms(lat["p99"]), _ms(p.get("latency_p99_ms"))),
        ("latency p99.9 / max", f"{lat['p999']:.1f} / {lat['max']:.1f} ms", ""),
    ]
    for path, h in m["latency_ms_by_path"].items():
        rows.append((f"  {path} path p50 / p99", f"{h['p50']:.1f} / {h['p99']:.1f} ms", ""))
    rows += [
        ("queue wait mean / p99", f"{m['queue_wait_ms']['mean']:.2f} / {m['queue_wait_ms']['p99']:.1f} ms", ""),
        ("requests that queued (model path)", f"{m['waited_fraction']:.1%}", ""),
        ("SLO violations", f"{m['slo_violation_fraction']:.2%}", ""),
        ("cache hit ratio", f"{m['cache_hit_ratio']:.1%}",
         f"{p['cache_hit_ratio']:.1%}" if p else ""),
        ("table size", format_bytes(m["storage"]["table_bytes"]), format_bytes(p["table_bytes"]) if p else ""),
        ("storage", _usd(m["storage"]["usd_per_month"]) + "/month",
         _usd(p["storage_usd_per_month"]) + "/month" if p else ""),
        ("cost: serving / training / batch", " / ".join(_usd(m["cost_usd"][k2]) for k2 in
                                                     ("serving", "training", "batch_prediction")), ""),
        ("cost per month (all)", _usd(m["cost_usd_per_month"]), _usd(p["cost_usd_per_month"]) if p else ""),
        ("model age mean / p95 / max", f"{format_duration(age['mean'])} / {format_duration(age['p95'])} / "
                                       f"{format_duration(age['max'])}",
         format_duration(p["mean_model_age_s"]) if p else ""),
        ("accuracy served (fresh model)", f"{acc['served']:.2%} ({acc['fresh_model']:.2%})",
         f"{p['served_accuracy']:.2%} ({p['fresh_accuracy']:.2%})" if p else ""),
        ("accuracy lost to staleness", f"{acc['lost_to_staleness']:.2%}",
         f"{p['accuracy_loss']:.2%}" if p else ""),
    ]
    v, t = m["validation"], m["training"]
    kinds = ", ".join(f"{k2} {c}" for k2, c in sorted(v["by_kind"].items())) or "none"
    rows += [
        ("data batches / quarantined", f"{v['batches']} / {v['quarantined']}", ""),
        ("anomalies", kinds, ""),
        ("training runs / deployed / gate rejections",
         f"{t['runs']} / {t['deployed']} / {t['rejected_by_gate']}", ""),
    ]
    for r in rows:
        tab.add_row(*r)
    console.print(tab)


def _num(x: float, unit: str) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if unit == "s":
        return f"{x * 1e3:.4g} ms" if abs(x) < 1 else format_duration(x)
    if unit == "B":
        return format_bytes(x)
    if unit == "ms":
        return f"{x:.4g} ms"
    if unit == "requests":
        return f"{x:,.4g}"
    return f"{x:.4g}"


def selfcheck_table(console: Console, checks) -> None:
    """The agreement table: check, theory, simulated, 95% CI, relative error, pass/fail."""
    tab = Table(title="mlarch selfcheck: simulator vs theory, advisor vs simulator", title_justify="left")
    for c in ("check", "theory", "simulated", "95% CI", "rel. error", "tolerance", ""):
        tab.add_column(c, justify="left" if c == "check" else "right")
    group = None
    for c in checks:
        if c.group != group:
            tab.add_row(f"[bold]{c.group}[/bold]", "", "", "", "", "", "")
            group = c.group
        ci = (f"{_num(c.ci_low, c.unit)} – {_num(c.ci_high, c.unit)}" if c.ci_low is not None else "exact")
        rel = "-" if c.rel_error is None else f"{c.rel_error:.2%}"
        tol = f"±{_num(c.tolerance, c.unit)}" if c.tolerance else "exact"
        tab.add_row("  " + c.name, _num(c.theory, c.unit), _num(c.simulated, c.unit), ci, rel, tol,
                    "[green]pass[/green]" if c.passed else "[red]FAIL[/red]")
    console.print(tab)
    failed = sum(not c.passed for c in checks)
    console.print(f"{len(checks) - failed} of {len(checks)} checks passed" +
                  (f"; [red]{failed} failed[/red]" if failed else ""))


_FIT_METHOD = {"traffic.rate": "harmonic regression", "traffic.diurnal_amplitude": "harmonic regression",
               "traffic.dispersion": "Pearson chi2 (not written)",
               "traffic.cardinality": "Chao1 / Good-Turing", "traffic.peakedness.zipf_s": "power-law MLE",
               "data.velocity": "Poisson rate", "data.label_delay": "Kaplan-Meier median"}


def fit_summary(console: Console, doc: dict) -> None:
    """Print a `mlarch fit` result (the JSON form) for people: one row per estimate."""
    inp = doc["input"]
    console.print(f"[bold]mlarch fit[/bold]: {inp['rows']:,} requests over {format_duration(inp['span_s'])} "
                  f"({inp['time_format']}; keys: {inp['keys_are']})")
    tab = Table(show_header=True)
    for col, just in (("field", "left"), ("written", "right"), ("estimate", "right"),
                      ("95% interval", "right"), ("method", "left")):
        tab.add_column(col, justify=just, overflow="fold")

    def num(v):
        if v is None:
            return "inf"
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    for path, e in doc["estimates"].items():
        if not e:
            continue
        ci = e.get("ci95")
        ci_txt = f"{num(ci[0])} – {num(ci[1])}" if ci else ""
        val = e.get("value")
        extra = ""
        if path == "traffic.cardinality":
            extra = f"; {e['distinct_observed']:,.0f} distinct seen, unseen mass {e['unseen_mass']:.3g}"
        elif path == "traffic.peakedness.zipf_s":
            ts = e["top_share"]
            extra = (f"; top 1% of keys: {ts['observed']:.1%} of requests observed, "
                     f"{ts['fitted']:.1%} fitted; x_min {e['x_min']}")
        elif path == "data.label_delay" and e.get("p90_s") is not None:
            extra = f"; p90 {format_duration(e['p90_s'])}; {e['censored']:,} unlabelled at the end"
        method = _FIT_METHOD.get(path, "")
        tab.add_row(path, str(e["written"]) if e.get("written") is not None else "(not written)",
                    num(val) if isinstance(val, (int, float)) else "—", ci_txt, method + extra)
    console.print(tab)
    console.print(f"fitted: {', '.join(doc['fitted'])}; every other field taken from {doc['base']}")
