"""The README cannot go stale: every fenced example that starts with `$ mlarch ...` is run and
its output compared with the text shown, with only machine-dependent figures masked (wall
time and simulation speed). A `| jq ...` tail is applied to the JSON in Python.

When a change alters an example's output on purpose, regenerate the block by running the
command shown (stdout not a terminal, as here) and paste it.
"""
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MASKS = [(re.compile(r"requests in \d+(\.\d+)? s"), "requests in <wall> s"),
         (re.compile(r"\d+(\.\d+)?M requests/s"), "<speed> requests/s")]


def _examples():
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"```\n\$ (mlarch [^\n]*)\n(.*?)```", text, re.S):
            if m.group(1).endswith("\\") or "\n$ " in m.group(2):
                continue   # a session of several commands: a walkthrough, not an output excerpt
            yield pytest.param(m.group(1), m.group(2), id=f"{doc.name}:{m.group(1)[:60]}")


def _normalise(text: str) -> str:
    for rx, rep in MASKS:
        text = rx.sub(rep, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _jq(doc, program: str):
    """The small jq subset the README uses: `.a.b | {k1, k2}`."""
    cur = doc
    for stage in [s.strip() for s in program.split("|")]:
        if stage.startswith("{"):
            keys = [k.strip() for k in stage.strip("{}").split(",")]
            cur = {k: cur[k] for k in keys}
        else:
            for part in [p for p in stage.split(".") if p]:
                cur = cur[part]
    return cur


EXAMPLES = list(_examples())


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("command,shown", EXAMPLES)
def test_readme_example_matches_the_program(cli, command, shown):
    jq = None
    if " | jq " in command:
        command, jq = command.split(" | jq ", 1)
        jq = shlex.split(jq)[0]
    args = shlex.split(command)[1:]
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    if jq is not None:
        out = json.dumps(_jq(json.loads(out), jq), indent=2)
    assert _normalise(out) == _normalise(shown)
