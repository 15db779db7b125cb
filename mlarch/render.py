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


def _f(x, spec: str, suffix: str = "") -> str:
    """Format a number, or '-' for a figure that is undefined (null, NaN or infinite)."""
    if x is None or not math.isfinite(x):
        return "-"
    return format(x, spec) + suffix


def _dur(x) -> str:
    return "-" if x is None or not math.isfinite(x) else format_duration(x)


def _usd(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"${x:,.2f}"


def _replicas(n: int) -> str:
    return f"{n} replica{'s' if n != 1 else ''}"


def _training_head(t: dict) -> str:
    if t["mode"] == "static":
        return t["decision"]
    every = f" every {format_duration(t['retrain_every_s'])}" if t["retrain_every_s"] else ""
    return f"{t['decision']} ({t['mode']}{every})"


def _serving_head(s: dict) -> str:
    if s["decision"] == "static":
        return "static (a precomputed table)"
    k = f", top {format_count(s['cache_top_k'])} precomputed" if s["cache_top_k"] else ""
    prov = s.get("provisioning") or {}
    if prov.get("configured") and prov.get("autoscaled"):
        a = prov["autoscaled"]
        return f"{s['decision']} (autoscaled {a['replicas_min']}-{_replicas(a['replicas_max'])}{k})"
    return f"{s['decision']} ({_replicas(s['replicas'])}{k})"


def _provisioning_rows(prov: dict | None) -> list:
    """Fixed peak vs autoscaled serving side by side (with the default autoscaler when the
    scenario has no serving.autoscale: what autoscaling would save)."""
    if not prov or not prov.get("fixed_peak") or not prov.get("autoscaled"):
        return []
    f, a = prov["fixed_peak"], prov["autoscaled"]
    which = "autoscaled" if prov.get("configured") else "if autoscaled"
    return [(f"  serving: fixed peak / {which}", f"{_usd(f['usd_per_month'])} / {_usd(a['usd_per_month'])}"),
            (f"  replica-hours/month: fixed / {which}",
             f"{f['replica_hours_per_month']:,.0f} / {a['replica_hours_per_month']:,.0f}")]


def advice(console: Console, adv: dict, scenario) -> None:
    """Print one advise result (the JSON form) for people."""
    t, s, p, a = adv["training"], adv["serving"], adv["predicted"], adv["architecture"]
    console.print(f"[bold]mlarch advise: {adv['scenario']}[/bold]"
                  + (f" — {scenario.description}" if scenario.description else ""))
    for title, part, head in (("Training", t, _training_head(t)), ("Serving", s, _serving_head(s))):
        flag = "" if part["feasible"] else "   [bold red]goal not met as given[/bold red]"
        console.print(f"\n[bold cyan]{title}: {head}[/bold cyan]   scores: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in part["scores"].items()) + flag)
        console.print(f"  [dim]({part['score_legend']})[/dim]")
        for r in part["reasons"]:
            console.print(f"  • {r}", highlight=False, markup=False)
    pinned = [f for f in ("training", "serving") if getattr(scenario.architecture, f)]
    title = "Predicted figures" + (f" (architecture pinned: {', '.join(pinned)} = "
                                   f"{', '.join(a[f] for f in pinned)})" if pinned else "")
    tab = Table(title=title, title_justify="left", show_header=True)
    tab.add_column("figure")
    tab.add_column("value", justify="right")
    one, rec = p["one_off_usd"], p["recurring_usd_per_month"]
    rows = [
        ("p99 latency", _ms(p["latency_p99_ms"])),
        ("cache hit ratio", f"{p['cache_hit_ratio']:.1%}"),
        ("table size", format_bytes(p["table_bytes"])),
        ("one-off: initial training / table fill", f"{_usd(one['initial_training'])} / {_usd(one['initial_table_fill'])}"),
        ("per month: serving", _usd(rec["serving"])),
        *_provisioning_rows(s.get("provisioning")),
        ("per month: retraining / table refreshes", f"{_usd(rec['retraining'])} / {_usd(rec['table_refreshes'])}"),
        ("per month: storage", _usd(rec["storage"])),
        ("per month: total", _usd(rec["total"])),
        (f"total over the {format_duration(scenario.horizon)} lifetime", _usd(p["total_usd_over_horizon"])),
        ("mean model age", format_duration(p["mean_model_age_s"])),
        ("fresh-model accuracy", f"{p['fresh_accuracy']:.2%}"),
        ("accuracy lost to staleness", f"{p['accuracy_loss']:.2%}"),
    ]
    if "accuracy_loss_band90" in p:
        lo, hi = p["accuracy_loss_band90"]
        rows.append(("  90% band across worlds", f"{lo:.2%} – {hi:.2%}"))
        rows.append((f"  at {p['accuracy_confidence']:.0%} confidence", f"{p['accuracy_loss_at_confidence']:.2%}"))
    for r in rows:
        tab.add_row(*r)
    console.print()
    console.print(tab)
    for note in p.get("notes", []):
        console.print(f"note: {note}")


def compare_table(console: Console, rows: list[dict], simulated: bool) -> None:
    """The course's use-case table, with numbers: one column per scenario (and its simulated
    figures beside it), one row per figure, so that it fits a 100-column terminal."""
    tab = Table(title="Use cases side by side" + (" (advisor | simulated)" if simulated else ""),
                title_justify="left")
    tab.add_column("")
    cols = []
    for r in rows:
        sc, adv = r["scenario_obj"], r["advice"]
        t, s, p = adv["training"], adv["serving"], r.get("predicted_span") or adv["predicted"]
        a = adv["architecture"]
        every = f" {format_duration(t['retrain_every_s'])}" if t["retrain_every_s"] else ""
        card = "unbounded" if sc.traffic.cardinality is None else format_count(sc.traffic.cardinality)
        rec = p["recurring_usd_per_month"]
        cols.append((sc.name, [
            card, f"{sc.traffic.zipf_s:.2f}", format_duration(sc.data.concept_half_life),
            t["decision"] + (f" ({a['training']}{every})" if a["training"] != "static" else ""),
            s["decision"] + (f" top {format_count(s['cache_top_k'])}" if s["cache_top_k"] else ""),
            _ms(p["latency_p99_ms"]), f"{p['cache_hit_ratio']:.0%}",
            _usd(p["one_off_usd"]["total"]), _usd(rec["total"]),
            format_duration(p["mean_model_age_s"]), f"{p['accuracy_loss']:.2%}"]))
        sim = r.get("simulated")
        if sim:
            srec = sim["cost_usd"]["recurring_usd_per_month"]
            cols.append(("  simulated", ["", "", "", "", "", _f(sim["latency_ms"]["p99"], ",.1f", " ms"),
                                         _f(sim["cache_hit_ratio"], ".0%"),
                                         _usd(sim["cost_usd"]["one_off_usd"]["total"]), _usd(srec["total"]),
                                         _dur(sim["staleness"]["model_age_s"]["mean"]),
                                         _f(sim["accuracy"]["lost_to_staleness"], ".2%")]))
    for name, _ in cols:
        tab.add_column(name, justify="right", style="dim" if name.startswith("  ") else None)
    labels = ["cardinality", "Zipf s", "concept half-life", "training", "serving", "p99 latency",
              "cache hit ratio", "one-off $", "per month $", "mean model age", "accuracy lost"]
    for i, label in enumerate(labels):
        tab.add_row(label, *[c[1][i] for c in cols])
    console.print(tab)


def _autoscale_rows(auto: dict | None, p: dict) -> list:
    """Replica-hours and pool size of an autoscaled run (serving.autoscale), with the advisor's."""
    if not auto:
        return []
    pa = p.get("autoscale") if p else None
    return [("  replica-hours (autoscaled)", f"{auto['replica_hours']:,.1f}",
             f"{p['replica_hours']:,.1f}" if pa else ""),
            ("  replicas least / mean / most", f"{auto['replicas_min']} / {auto['mean_replicas']:.2f} / "
             f"{auto['replicas_max']}", f"{pa['replicas_min']} / {pa['mean_replicas']:.2f} / {pa['replicas_max']}"
             if pa else "")]


def simulation(console: Console, m: dict, predicted: dict | None = None) -> None:
    """Human summary of one simulation, with the advisor's prediction alongside."""
    a = m["architecture"]
    every = f" every {format_duration(a['retrain_every_s'])}" if a["retrain_every_s"] else ""
    k = f", top {format_count(a['cache_top_k'])} precomputed" if a["cache_top_k"] else ""
    sm = m.get("sampling") or {}
    if sm.get("mode") == "slices":
        span = (f"{format_duration(m['horizon_s'])} lifetime sampled in {sm['slices']} slices of "
                f"{format_duration(sm['slice_s'])} ({sm['recorded_s'] / m['horizon_s']:.2%} of the time)")
    else:
        span = f"{format_duration(m['horizon_s'])} simulated contiguously"
    console.print(f"[bold]mlarch simulate: {m['scenario']}[/bold]  seed {m['seed']}, {span}: "
                  f"{m['requests']:,} requests in {m['wall_s']:.1f} s")
    console.print(f"architecture: training {a['training']}{every}; serving {a['serving']}{k}"
                  + (f"; {_replicas(a['replicas'])}" if a['replicas'] else ""))
    if m.get("estimator"):
        console.print(f"model: {m['estimator']['class']} (trained, gated and predicting in the pipeline; "
                      "accuracy is from its predictions)", markup=False)
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
        ("latency p50 / p95", f"{_f(lat['p50'], '.1f')} / {_f(lat['p95'], '.1f')} ms", ""),
        ("latency p99", _f(lat["p99"], ",.1f", " ms"), _ms(p.get("latency_p99_ms"))),
        ("latency p99.9 / max", f"{_f(lat['p999'], '.1f')} / {_f(lat['max'], '.1f')} ms", ""),
    ]
    for path, h in m["latency_ms_by_path"].items():
        rows.append((f"  {path} path p50 / p99", f"{_f(h['p50'], '.1f')} / {_f(h['p99'], '.1f')} ms", ""))
    qw = m["queue_wait_ms"]
    rows += [
        ("queue wait mean / p99", f"{_f(qw['mean'], '.2f')} / {_f(qw['p99'], '.1f')} ms", ""),
        ("requests that queued (model path)", _f(m["waited_fraction"], ".1%"), ""),
        ("SLO violations", _f(m["slo_violation_fraction"], ".2%"), ""),
        ("cache hit ratio", _f(m["cache_hit_ratio"], ".1%"),
         _f(p["cache_hit_ratio"], ".1%") if p else ""),
        ("table size", format_bytes(m["storage"]["table_bytes"]), format_bytes(p["table_bytes"]) if p else ""),
        ("storage", _usd(m["storage"]["usd_per_month"]) + "/month",
         _usd(p["storage_usd_per_month"]) + "/month" if p else ""),
    ]
    one, rec = m["cost_usd"]["one_off_usd"], m["cost_usd"]["recurring_usd_per_month"]
    pone, prec = (p.get("one_off_usd"), p.get("recurring_usd_per_month")) if p else (None, None)
    pair = lambda d, a2, b2: f"{_usd(d[a2])} / {_usd(d[b2])}" if d else ""  # noqa: E731
    rows += [
        ("one-off: initial training / table fill", pair(one, "initial_training", "initial_table_fill"),
         pair(pone, "initial_training", "initial_table_fill")),
        ("per month: serving", _usd(rec["serving"]), _usd(prec["serving"]) if prec else ""),
        *_autoscale_rows(m.get("autoscale"), p),
        ("per month: retraining / table refreshes", pair(rec, "retraining", "table_refreshes"),
         pair(prec, "retraining", "table_refreshes")),
        ("per month: total", _usd(rec["total"]), _usd(prec["total"]) if prec else ""),
        ("total over the lifetime", _usd(m["cost_usd"]["total_usd_over_horizon"]),
         _usd(p["total_usd_over_horizon"]) if p else ""),
        ("model age mean / p95 / max", f"{_dur(age['mean'])} / {_dur(age['p95'])} / {_dur(age['max'])}",
         _dur(p["mean_model_age_s"]) if p else ""),
        ("accuracy served (fresh model)", f"{_f(acc['served'], '.2%')} ({_f(acc['fresh_model'], '.2%')})",
         f"{_f(p['served_accuracy'], '.2%')} ({_f(p['fresh_accuracy'], '.2%')})" if p else ""),
        ("accuracy lost to staleness", _f(acc["lost_to_staleness"], ".2%"),
         _f(p["accuracy_loss"], ".2%") if p else ""),
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
    for note in m.get("notes", []):
        console.print(f"note: {note}", markup=False)


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
    for c in ("check", "theory", "simulated", "95% CI", "rel. error", "tolerance", "detects", ""):
        tab.add_column(c, justify="left" if c == "check" else "right")
    group = None
    for c in checks:
        if c.group != group:
            tab.add_row(f"[bold]{c.group}[/bold]", "", "", "", "", "", "", "")
            group = c.group
        ci = (f"{_num(c.ci_low, c.unit)} – {_num(c.ci_high, c.unit)}" if c.ci_low is not None else "exact")
        rel = "-" if c.rel_error is None else f"{c.rel_error:.2%}"
        tol = f"±{_num(c.tolerance, c.unit)}" if c.tolerance else "exact"
        det = (f"{c.detectable_bias / abs(c.theory):.1%}" if c.theory else _num(c.detectable_bias, c.unit)) \
            if c.se else "-"
        tab.add_row("  " + c.name, _num(c.theory, c.unit), _num(c.simulated, c.unit), ci, rel, tol, det,
                    "[green]pass[/green]" if c.passed else "[red]FAIL[/red]")
    console.print(tab)
    failed = sum(not c.passed for c in checks)
    from .selfcheck import FALSE_FAILURE_RATE, POWER
    console.print(f"{len(checks) - failed} of {len(checks)} checks passed" +
                  (f"; [red]{failed} failed[/red]" if failed else "") +
                  f". Statistical checks fail a correct simulator with probability {FALSE_FAILURE_RATE:g} each; "
                  f"'detects' is the systematic error they catch with probability {POWER:.0%}.")


def random_table(console: Console, agreement: dict) -> None:
    """`selfcheck --random`: per-metric error distributions and the share of runs whose claims hold."""
    from .randomcheck import table
    summ = agreement["summary"]
    tab = Table(title=f"advisor vs simulator on random scenarios ({summ['runs']} runs)", title_justify="left")
    for c in ("metric / claim", "runs", "median |error| / holds", "p90", "max"):
        tab.add_column(c, justify="left" if c == "metric / claim" else "right")
    for row in table(summ):
        tab.add_row(*row)
    console.print(tab)
    v = summ["validation"]
    rate = f" ({v['rate']:.2%}; stated at most {v['stated_rate_any_check']:.2%})" if v.get("rate") is not None else ""
    console.print(f"clean batches quarantined: {v['false_alarms']} of {v['clean_batches']}{rate}; "
                  f"runs with a negative loss: {summ['negative_loss_runs']} "
                  f"({summ['negative_loss_outside_band_runs']} below the predicted 90% band); cost lines over the "
                  f"{summ['runs'] - summ['runs_with_false_alarms']} runs without a false alarm")
    for sk in summ.get("skipped", []):
        console.print(f"scenario {sk['scenario'] + 1} not simulated: {sk['reason']}")


def capacity_table(console: Console, cap: dict) -> None:
    """One row per candidate design: capacity, headroom, simulated check, growth."""
    t = Table(title=f"mlarch capacity: {cap['scenario']}  (p99 SLO {cap['slo_p99_ms']:,.0f} ms, today "
                    f"{cap['today_rate_per_s']:,.4g}/s mean, peak x{1 + cap['diurnal_amplitude']:.2g})")
    above = cap["above_factor"]
    for col in ("design", "replicas", "p99 today", "capacity (mean rate)", "headroom",
                "simulated p99 at capacity", f"at {above:g}x capacity", "confirmed", "replicas at 2x / 10x"):
        t.add_column(col, justify="left" if col == "design" else "right")
    for d in cap["designs"]:
        a = d["design"]
        name = d["kind"] + (f" (k={format_count(a['cache_top_k'])}, hit {d['hit_ratio']:.1%})"
                            if d["kind"] == "hybrid" else "")
        if d["capacity_rate_per_s"] is None:
            capacity, headroom = "unbounded", "-"
        else:
            capacity = f"{d['capacity_rate_per_s']:,.4g}/s"
            headroom = f"{d['headroom']:.2f}x"
        sims = ["-", "-"]
        for k, s in enumerate(d["simulated"][:2]):
            sims[k] = f"{_ms(s['p99_ms'])} ({'within' if s['within_slo'] else 'over'})"
        grow = " / ".join("-" if v is None else str(v) for v in d["replicas_for_rate"].values())
        conf = {None: "-", True: "yes", False: "no"}[d["confirmed"]]
        t.add_row(name, str(d["replicas"]), _ms(d["today_p99_ms"]), capacity, headroom, *sims, conf, grow)
    console.print(t)
    for d in cap["designs"]:
        if d["note"]:
            console.print(f"  {d['kind']}: {d['note']}")
    if cap["simulated_horizon_s"]:
        console.print(f"  simulated: each design at its capacity's peak rate held flat for "
                      f"{format_duration(cap['simulated_horizon_s'])}, and at {above:g}x; confirmed: p99 within "
                      f"{cap['confirm_tolerance']:.0%} of the SLO there and over it at {above:g}x; "
                      "'-' at 2x/10x: no replica count meets the SLO")


_FIT_METHOD = {"traffic.rate": "harmonic regression", "traffic.diurnal_amplitude": "harmonic regression",
               "traffic.dispersion": "Pearson chi2 (not written)",
               "traffic.cardinality": "Chao1 / Good-Turing", "traffic.peakedness.zipf_s": "power-law MLE",
               "data.velocity": "Poisson rate", "data.label_delay": "Kaplan-Meier median"}


def fit_rows(doc: dict) -> list[tuple[str, str, str, str, str]]:
    """(field, written, estimate, 95% interval, method) per estimate of a `fit --json` document."""
    def num(v):
        if v is None:
            return "inf"
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    rows = []
    for path, e in doc["estimates"].items():
        if not e:
            continue
        ci = e.get("ci95")
        ci_txt = f"{num(ci[0])} – {num(ci[1])}" if ci else ""
        val = e.get("value")
        extra = ""
        if path == "traffic.cardinality":
            seen = f"{e['distinct_observed']:,.0f} distinct seen"
            if e.get("distinct_method") == "hyperloglog":
                lo, hi = e["distinct_ci95"]
                seen += f" (HyperLogLog, 95% {lo:,.0f} – {hi:,.0f})"
            extra = f"; {seen}, unseen mass {e['unseen_mass']:.3g}"
        elif path == "traffic.peakedness.zipf_s":
            ts = e["top_share"]
            extra = (f"; top 1% of keys: {ts['observed']:.1%} of requests observed, "
                     f"{ts['fitted']:.1%} fitted; x_min {e['x_min']}")
        elif path == "data.label_delay" and e.get("p90_s") is not None:
            extra = f"; p90 {format_duration(e['p90_s'])}; {e['censored']:,} unlabelled at the end"
        rows.append((path, str(e["written"]) if e.get("written") is not None else "(not written)",
                     num(val) if isinstance(val, (int, float)) else "—", ci_txt, _FIT_METHOD.get(path, "") + extra))
    return rows


def fit_summary(console: Console, doc: dict) -> None:
    """Print a `mlarch fit` result (the JSON form) for people: one row per estimate."""
    inp = doc["input"]
    console.print(f"[bold]mlarch fit[/bold]: {inp['rows']:,} requests over {format_duration(inp['span_s'])} "
                  f"({inp['time_format']}; keys: {inp['keys_are']})")
    tab = Table(show_header=True)
    for col, just in (("field", "left"), ("written", "right"), ("estimate", "right"),
                      ("95% interval", "right"), ("method", "left")):
        tab.add_column(col, justify=just, overflow="fold")
    for row in fit_rows(doc):
        tab.add_row(*row)
    console.print(tab)
    console.print(f"fitted: {', '.join(doc['fitted'])}; every other field taken from {doc['base']}")
