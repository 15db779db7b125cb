"""Mutation score per module from the last `mutmut run` (make mutate).

Score = killed / (killed + survived + no tests): a mutant no test reaches counts against
the suite, as it would if it were a real bug. Timeouts count as killed (the mutant hung the
test). Mutants listed in docs/testing.md as equivalent can be excluded with --equivalent."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--equivalent", type=Path, default=Path("docs/testing.md"),
                    help="file whose `module.x_function__mutmut_N` names are equivalent mutants "
                         "(only those in its 'Equivalent mutants' section, if it has one)")
    args = ap.parse_args()
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         capture_output=True, text=True, check=False).stdout
    equivalent = set()
    if args.equivalent.exists():
        equivalent = set(re.findall(r"`([\w.]+__mutmut_\d+)`", _equivalent_section(args.equivalent.read_text())))
    per: dict[str, Counter] = defaultdict(Counter)
    for line in out.splitlines():
        if ":" not in line:
            continue
        name, status = (x.strip() for x in line.rsplit(":", 1))
        if name in equivalent:
            status = "equivalent"
        module = name.split(".x_")[0] if ".x_" in name else name.rsplit(".", 1)[0]
        per[module][status] += 1
    if not per:
        print("no mutmut results: run `make mutate` first", file=sys.stderr)
        return 1
    total = Counter()
    print(f"{'module':<28} {'killed':>7} {'survived':>9} {'no tests':>9} {'equiv.':>7} {'score':>7}")
    for module in sorted(per):
        c = per[module]
        total.update(c)
        _row(module, c)
    _row("all", total)
    return 0


def _equivalent_section(text: str) -> str:
    """The "Equivalent mutants" section of the doc if it has one (surviving mutants named
    elsewhere in it are not equivalent), else the whole text."""
    m = re.search(r"^#+ Equivalent mutants$(.*?)(?=^#)", text + "\n#", flags=re.M | re.S)
    return m.group(1) if m else text


def _row(name: str, c: Counter) -> None:
    killed = c["killed"] + c["timeout"]
    counted = killed + c["survived"] + c["no tests"]
    score = f"{killed / counted:.1%}" if counted else "-"
    print(f"{name:<28} {killed:>7} {c['survived']:>9} {c['no tests']:>9} {c['equivalent']:>7} {score:>7}")


if __name__ == "__main__":
    sys.exit(main())
