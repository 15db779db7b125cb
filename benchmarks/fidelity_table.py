"""docs/fidelity.md's results table from `mlarch selfcheck --json`: one row per check with its
error, tolerance, false-failure rate and detectable bias (issue: tolerances with a stated power).

    mlarch selfcheck --json -q > selfcheck.json
    python benchmarks/fidelity_table.py selfcheck.json > table.md

With `--random N` in that run (or a file holding only the `random` document, as
`mlarch.randomcheck.run` returns it), also the random-scenario table of docs/fidelity.md.
"""
from __future__ import annotations

import json
import sys


def _num(x, unit: str = "") -> str:
    if x is None:
        return ""
    s = f"{x:.4g}"
    return f"{s} {unit}".strip() if unit and unit not in ("requests",) else s


def table(doc: dict) -> str:
    rows = ["| check | theory | simulated | error | error / se | tolerance | false-failure rate | "
            "detects (90%) | result |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in doc["checks"]:
        rel = "" if c["rel_error"] is None else f"{c['rel_error']:.2%}"
        z = "" if c["error_in_se"] is None else f"{c['error_in_se']:.2f}"
        ffr = "fixed bar" if c["false_failure_rate"] is None else f"{c['false_failure_rate']:g}"
        det = (f"{c['detectable_bias_rel']:.2%}" if c["detectable_bias_rel"] is not None
               else _num(c["detectable_bias"], c["unit"]))
        rows.append(f"| {c['check']} | {_num(c['theory'], c['unit'])} | {_num(c['simulated'])} | {rel} | {z} | "
                    f"±{_num(c['tolerance'])} | {ffr} | {det} | {'pass' if c['passed'] else 'FAIL'} |")
    return "\n".join(rows)


def random_table(agreement: dict) -> str:
    """The random-scenario summary (mlarch/randomcheck.py) as a Markdown table and notes."""
    from mlarch.randomcheck import table as rows_of
    s = agreement["summary"]
    out = ["| metric / claim | runs | median abs. error (claims: share holding) | p90 | max |",
           "|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows_of(s)]
    v = s["validation"]
    out.append("")
    out.append(f"Clean batches quarantined: {v['false_alarms']} of {v['clean_batches']} ({v['rate']:.2%}; stated at "
               f"most {v['stated_rate_any_check']:.2%} for the three statistical checks together). Runs with a "
               f"false alarm: {s['runs_with_false_alarms']} of {s['runs']} (cost lines above are over the others). "
               f"Runs with a negative loss: {s['negative_loss_runs']}, of which below the predicted 90% band: "
               f"{s['negative_loss_outside_band_runs']}.")
    for sk in s.get("skipped", []):
        out.append(f"Scenario {sk['scenario']} not simulated: {sk['reason']}")
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    if "checks" in doc:
        print(table(doc))
    if "random" in doc or "summary" in doc:
        print()
        print(random_table(doc.get("random", doc)))
