"""docs/fidelity.md's results table from `mlarch selfcheck --json`: one row per check with its
error, tolerance, false-failure rate and detectable bias (issue: tolerances with a stated power).

    mlarch selfcheck --json -q > selfcheck.json
    python benchmarks/fidelity_table.py selfcheck.json > table.md
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


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
