"""`mlarch report`: one self-contained HTML page (figures inlined, no external references)
with the advice and its reasons, the simulated figures, and trade-off plots from a small
automatic sweep around the recommendation."""
from __future__ import annotations

import base64
import html
import math
import tempfile
from pathlib import Path

from scenarios.schema import Scenario
from scenarios.units import format_bytes, format_count, format_duration

from advisor import predict

REPORT_SWEEP_SPAN_S = 2 * 3600.0     # latency/caching trade-off: short runs at the full rate
REPORT_LOW_RATE = "20/s"             # staleness trade-off: full horizon, low rate (accuracy does not depend on it)


def cache_grid(sc: Scenario, k: int | None) -> list[str]:
    """Cache sizes around the recommendation, from none (dynamic) to all (static, if finite)."""
    n = sc.traffic.cardinality
    center = k or 10_000
    ks = sorted({max(1, int(center * f)) for f in (0.01, 0.1, 1, 10)})
    if n is not None:
        ks = [x for x in ks if x < n]
    out = ["0"] + [str(x) for x in ks]
    if n is not None and n <= 10**8:
        out.append("all")
    return out


def retrain_grid(sc: Scenario, every: float | None) -> list[str]:
    """Retrain intervals around the recommendation (whole data batches, within the horizon)."""
    B, H = sc.data.batch_interval, sc.horizon
    center = every or max(B, H / 4)
    vals = sorted({max(1, round(center * f / B)) * B for f in (0.25, 0.5, 1, 2, 4)})
    return [f"{v:g}s" for v in vals if v < H]


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def build(scenario: str, sets: list[str], progress=None, jobs: int = 0) -> str:
    """Run everything the page needs and return the HTML text."""
    import pandas as pd

    from simulator import simulate
    from scenarios import load_scenario

    from . import plots
    from . import sweep as sw
    from .files import write_run   # the same files `simulate --out` writes
    from advisor import advise

    def step(msg, frac):
        if progress:
            progress(msg, frac)

    sc = load_scenario(scenario, sets)
    adv = advise(sc)
    d = adv.design
    msg = f"simulating {sc.name} over {format_duration(sc.horizon)}"
    step(msg, 0.0)
    res = simulate(sc, d, progress=lambda f: step(msg, 0.5 * f),   # the rest: two sweeps
                   on_stage=lambda stage, f: step(stage, 0.0))        # a large initial table fill
    m = res.metrics
    figs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_dir = tmp / "run"
        write_run(run_dir, res)
        run_figs = plots.run_figures(run_dir, run_dir)
        # trade-off sweeps around the recommendation
        step("sweeping cache sizes", 0.5)
        names, runs = sw.plan(scenario, sets, [f"architecture.cache_top_k={','.join(cache_grid(sc, d.cache_top_k))}"], 1)
        rows = sw.run_grid(scenario, sets, runs, jobs=jobs, horizon_s=min(REPORT_SWEEP_SPAN_S, sc.horizon),
                           progress=lambda k, n=len(runs): step("sweeping cache sizes", 0.5 + 0.25 * k / n))
        pd.DataFrame(rows).to_csv(tmp / "cache.csv", index=False)
        cache_fig = plots.storage_vs_latency(pd.read_csv(tmp / "cache.csv"), tmp / "cache.png")
        grid = retrain_grid(sc, d.retrain_every_s)
        if grid:
            step("sweeping retrain intervals", 0.75)
            low = list(sets) + [f"traffic.rate={REPORT_LOW_RATE}", "architecture.training=periodic"]
            names, runs = sw.plan(scenario, low, [f"architecture.retrain_every={','.join(grid)}"], 1)
            rows = sw.run_grid(scenario, low, runs, jobs=jobs,
                               progress=lambda k, n=len(runs): step("sweeping retrain intervals", 0.75 + 0.2 * k / n))
            static_row = sw.run_one(scenario, tuple(list(sets) + [f"traffic.rate={REPORT_LOW_RATE}"]),
                                    sw.Run((("architecture.training", "static"),), sc.seed))
            df = pd.DataFrame(rows + [static_row])
            df.to_csv(tmp / "retrain.csv", index=False)
            retrain_fig = plots.accuracy_vs_retrain(pd.read_csv(tmp / "retrain.csv"), tmp / "retrain.png")
        else:
            retrain_fig = None   # said so on the page, not an error about a --vary nobody passed
        step("drawing the serving map", 0.95)
        from .servingmap import serving_map
        map_fig = plots.serving_map_figure(serving_map(sc, jobs=jobs), tmp / "map.png")
        figs = {
            "map": _img(map_fig, "Where this use case sits: the cheapest serving design that meets the SLO "
                                 "over cardinality and peakedness (advisor)"),
            "latency": _img(run_figs[0], "Latency distribution by serving path (simulated)"),
            "accuracy": _img(run_figs[1], "Served accuracy and model age over the simulated horizon"),
            "cost": _img(run_figs[2], "Monthly cost by kind (simulated)"),
            "cache": _img(cache_fig, "Trade-off: precomputed keys vs latency and cost "
                                     f"({format_duration(min(REPORT_SWEEP_SPAN_S, sc.horizon))} runs at the full rate)")
            if isinstance(cache_fig, Path) else f'<p class="note">{html.escape(cache_fig)}</p>',   # nothing to draw
            "retrain": _img(retrain_fig, "Trade-off: retrain interval vs accuracy lost and training cost "
                                         f"(full horizon at {REPORT_LOW_RATE})") if retrain_fig else
            '<p class="note">No retrain-interval trade-off: a periodic job retrains at most once per data '
            f"batch, and data.batch_interval ({html.escape(format_duration(sc.data.batch_interval))}) leaves "
            f"no whole-batch interval shorter than the horizon ({html.escape(format_duration(sc.horizon))}), "
            "so the sweep was skipped.</p>",
        }
    return _page(sc, adv.to_json(), m, predict(sc, d).to_json(), figs)  # same span as simulated


def _fmt(x, spec: str, suffix: str = "", prefix: str = "") -> str:
    """A figure, or '-' when it is undefined (null: e.g. no requests in the run)."""
    return "-" if x is None or not math.isfinite(x) else prefix + format(x, spec) + suffix


def _row(*cells, head=False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def _page(sc: Scenario, adv: dict, m: dict, p: dict, figs: dict) -> str:
    t, s, a = adv["training"], adv["serving"], adv["architecture"]
    e = html.escape
    every = f" every {format_duration(t['retrain_every_s'])}" if t["retrain_every_s"] else ""
    k = f", top {format_count(s['cache_top_k'])} inputs precomputed" if s["cache_top_k"] else ""
    card = "unbounded" if sc.traffic.cardinality is None else format_count(sc.traffic.cardinality)
    inputs = [
        ("requests", f"{sc.traffic.rate:,.0f}/s on average, ±{sc.traffic.diurnal_amplitude:.0%} over the day"),
        ("distinct inputs (cardinality)", card),
        ("peakedness", f"Zipf s = {sc.traffic.zipf_s:.2f}"),
        ("labelled data", f"{sc.data.velocity * 86400:,.0f} examples/day, labels {format_duration(sc.data.label_delay)} late"),
        ("drift", f"a frozen model loses half its edge every {format_duration(sc.data.concept_half_life)}"),
        ("inference", f"mean {sc.model.inference_time.mean_s * 1e3:.0f} ms per request"),
        ("latency SLO", f"p99 ≤ {sc.slo.latency_p99 * 1e3:.0f} ms"),
        ("accuracy budget", f"≤ {sc.slo.max_accuracy_loss:.1%} lost to staleness"),
    ]
    lat, acc = m["latency_ms"], m["accuracy"]
    f, dur = _fmt, (lambda x: "-" if x is None or not math.isfinite(x) else format_duration(x))  # noqa: E731
    compare = [
        ("p99 latency", f(p["latency_p99_ms"], ".1f", " ms"), f(lat["p99"], ".1f", " ms")),
        ("cache hit ratio", f(p["cache_hit_ratio"], ".1%"), f(m["cache_hit_ratio"], ".1%")),
        ("table size", format_bytes(p["table_bytes"]), format_bytes(m["storage"]["table_bytes"])),
        ("storage", f(p["storage_usd_per_month"], ",.2f", "/month", "$"),
         f(m["storage"]["usd_per_month"], ",.2f", "/month", "$")),
        ("one-off (initial model and table)", f(p["one_off_usd"]["total"], ",.2f", "", "$"),
         f(m["cost_usd"]["one_off_usd"]["total"], ",.2f", "", "$")),
        ("recurring cost", f(p["cost_usd_per_month"], ",.2f", "/month", "$"), f(m["cost_usd_per_month"], ",.2f", "/month", "$")),
        ("total over the lifetime", f(p["total_usd_over_horizon"], ",.2f", "", "$"),
         f(m["cost_usd"]["total_usd_over_horizon"], ",.2f", "", "$")),
        ("mean model age", dur(p["mean_model_age_s"]), dur(m["staleness"]["model_age_s"]["mean"])),
        ("accuracy served", f(p["served_accuracy"], ".2%"), f(acc["served"], ".2%")),
        ("accuracy lost to staleness", f(p["accuracy_loss"], ".2%"), f(acc["lost_to_staleness"], ".2%")),
        ("requests over the SLO", "", f(m["slo_violation_fraction"], ".2%")),
        ("data batches quarantined", "", f"{m['validation']['quarantined']} of {m['validation']['batches']}"),
        ("training runs / deployed / rejected", "",
         f"{m['training']['runs']} / {m['training']['deployed']} / {m['training']['rejected_by_gate']}"),
    ]
    css = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{flex:1 1 420px;border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;background:#fafafa}
.card h2{margin:.1em 0 .4em;font-size:1.25em}.decision{font-size:1.4em;font-weight:700;color:#264653}
table{border-collapse:collapse;margin:.6em 0}td,th{border-bottom:1px solid #e5e5e5;padding:.3em .8em;text-align:left}th{background:#f0f0f0}
figure{margin:1.2em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.note{color:#666;font-size:.9em}
"""
    reasons = lambda rs: "<ul>" + "".join(f"<li>{e(r)}</li>" for r in rs) + "</ul>"  # noqa: E731
    scores = lambda sc_: ", ".join(f"{e(kk)} {v:.1f}" for kk, v in sc_.items())  # noqa: E731
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlarch report: {e(sc.name)}</title>
<style>{css}</style></head><body>
<h1>How to build {e(sc.name)}</h1>
<p class="sub">{e(sc.description)} — generated by mlarch; every number below comes from the scenario's
inputs, closed-form models, and a simulation that runs the real pipeline on synthetic traffic.</p>
<h2>The recommendation</h2>
<div class="cards">
<div class="card"><h2>Training</h2><div class="decision">{e(t['decision'])} ({e(a['training'])}{e(every)})</div>
<p class="note">scores: {scores(t['scores'])}</p>{reasons(t['reasons'])}</div>
<div class="card"><h2>Serving</h2><div class="decision">{e(s['decision'])} ({s['replicas']} replicas{e(k)})</div>
<p class="note">scores: {scores(s['scores'])}</p>{reasons(s['reasons'])}</div>
</div>
<h2>The use case</h2>
<table>{''.join(_row(a_, b_) for a_, b_ in inputs)}</table>
<h2>Predicted and simulated</h2>
<p>The advisor's closed-form prediction next to a simulation of {format_duration(m['horizon_s'])}
({m['requests']:,} requests, seed {m['seed']}). Close agreement means the simple models can be trusted for this case.</p>
<table>{_row('figure', 'advisor', 'simulated', head=True)}{''.join(_row(*r) for r in compare)}</table>
{figs['latency']}
{figs['accuracy']}
{figs['cost']}
<h2>Trade-offs around the recommendation</h2>
<p>Each point is a separate simulation. The first pair shows the space–time trade-off of serving: precomputing more
of the most popular inputs lowers latency and the number of model replicas, and costs table storage and batch
prediction. The second shows the freshness trade-off of training: retraining more often loses less accuracy to
staleness and costs more training compute.</p>
{figs['cache']}
{figs['retrain']}
<p>The map below answers the course's serving question for use cases like this one: with everything else as in
the scenario, which design is cheapest while meeting the latency SLO as the number of distinct inputs and the
concentration of requests change. The star is this scenario.</p>
{figs['map']}
<h2>How to read the scores</h2>
<p class="note">Training scores (0–10) follow the course's axes: staleness decides; effort to build, test and validate
breaks ties, so static training wins whenever it stays within the accuracy budget. Serving scores follow cost among the
designs that meet the latency SLO, with maintenance as a tie-breaker; the axes (storage cost, latency level and
variability, maintenance, space vs time) are in <code>mlarch advise --json</code>.
Prices are public list prices at one date (Cloud Storage, DynamoDB, Cloud Run); the scenario's <code>costs:</code>
overrides them. The simulator's agreement with queueing and caching theory is shown by <code>mlarch selfcheck</code>.</p>
</body></html>
"""
