"""The README (and docs/*.md) cannot go stale: every `mlarch` command in a fenced block is
checked against the program.

- A block that starts with `$ mlarch ...` and holds one command is an output excerpt: the
  command is run and its stdout compared with the text shown, with only machine-dependent
  figures masked (wall time and simulation speed). A `| jq ...` tail is applied to the JSON
  in Python.
- A block with several `$ ` commands is a walkthrough: the commands run in order in one
  temporary directory, and the lines shown under each must be its output (stdout and stderr
  as a terminal shows them, progress off: it depends on the machine's speed); a line `…`
  stands for any number of lines left out.
- In a ```sh block every `mlarch` command (continuation lines joined, `&&` split) runs in
  order in one temporary directory and must exit 0; a file named in its trailing comment
  (`# serving_map.png`) must exist afterwards. Other commands (make, pip, dask, python) are
  not run.
- Every `mlarch` command of every block must parse (its options and arguments exist), even
  when the block is not run: `<!-- readme-test: not run (REASON) -->` before a block says why
  it cannot run here; `<!-- readme-test: slow -->` runs it only with `-m slow`.

When a change alters an example's output on purpose, regenerate the block by running the
command shown (stdout not a terminal, as here; `MLARCH_QUIET=1`) and paste it.
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
ELLIPSIS = "…"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>[^>]*?) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.S | re.M)


def _blocks():
    """(doc, line number, mark, language, body) of every fenced block."""
    for doc in DOCS:
        text = doc.read_text()
        for m in BLOCK.finditer(text):
            yield doc, text[:m.start("body")].count("\n") + 1, m.group("mark") or "", m.group("lang"), m.group("body")


def _session(body: str) -> list[tuple[str, str]]:
    """A `$ ` block as [(command, shown output)]: continuation lines joined, a trailing
    `# comment` dropped."""
    steps, cmd, out, cont = [], None, [], False
    for line in body.splitlines():
        if cont:
            cmd += " " + line.strip().rstrip("\\").strip()
            cont = line.rstrip().endswith("\\")
        elif line.startswith("$ "):
            if cmd is not None:
                steps.append((cmd, "\n".join(out)))
            cmd, out = line[2:].rstrip().rstrip("\\").strip(), []
            cont = line.rstrip().endswith("\\")
        else:
            out.append(line)
    if cmd is not None:
        steps.append((cmd, "\n".join(out)))
    return [(re.sub(r"\s+#[^'\"]*$", "", c), o) for c, o in steps]


def _script(body: str) -> list[tuple[str, str]]:
    """The `mlarch` commands of a ```sh block as [(command, trailing comment)]."""
    lines, cur = [], ""
    for line in body.splitlines():
        cur += " " + line.strip()
        if cur.endswith("\\"):
            cur = cur[:-1]
            continue
        lines.append(cur.strip())
        cur = ""
    steps = []
    for line in lines:
        comment = ""
        m = re.search(r"\s#\s(.*)$", line)
        if m and line.count("'") % 2 == 0:
            line, comment = line[:m.start()].strip(), m.group(1)
        for part in line.split("&&"):
            if part.strip().startswith("mlarch "):
                steps.append((part.strip(), comment))
    return steps


def _examples():
    for doc, line, mark, lang, body in _blocks():
        if lang or not body.startswith("$ mlarch"):
            continue
        steps = _session(body)
        if len(steps) == 1:
            yield pytest.param(*steps[0], id=f"{doc.name}:{line}:{steps[0][0][:60]}")


def _walkthroughs():
    for doc, line, mark, lang, body in _blocks():
        if lang == "" and body.startswith("$ ") and len(_session(body)) > 1:
            steps = _session(body)
        elif lang == "sh" and _script(body):
            steps = _script(body)
        else:
            continue
        marks = [pytest.mark.slow] if mark.startswith("slow") else []
        if mark.startswith("not run"):
            marks.append(pytest.mark.skip(reason=f"{doc.name}:{line}: {mark}"))
        yield pytest.param(lang, steps, marks=marks, id=f"{doc.name}:{line}:{steps[0][0][:50]}")


def _all_commands():
    for doc, line, mark, lang, body in _blocks():
        if lang == "sh":
            cmds = [c for c, _ in _script(body)]
        elif lang == "" and body.startswith("$ "):
            cmds = [c for c, _ in _session(body)]
        else:
            continue
        for c in cmds:
            yield pytest.param(c, id=f"{doc.name}:{line}:{c[:60]}")


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


def _split_jq(command: str) -> tuple[list[str], str | None]:
    jq = None
    if " | jq " in command:
        command, jq = command.split(" | jq ", 1)
        jq = shlex.split(jq)[0]
    args = shlex.split(command)
    assert args[0] == "mlarch", command
    return args[1:], jq


def _matches(shown: str, output: str) -> bool:
    """Do the lines shown equal the output's, `…` standing for any run of lines?"""
    want = _normalise(shown).splitlines()
    have = _normalise(output).splitlines()
    parts, cur = [], []
    for ln in want:
        if ln.strip() == ELLIPSIS:
            parts.append(cur)
            cur = []
        else:
            cur.append(ln)
    parts.append(cur)
    if len(parts) == 1:
        return want == have
    first, *middle, last = parts
    if have[:len(first)] != first or (last and have[len(have) - len(last):] != last):
        return False
    pos, end = len(first), len(have) - len(last)
    for seg in middle:
        if not seg:
            continue
        hit = next((i for i in range(pos, end - len(seg) + 1) if have[i:i + len(seg)] == seg), None)
        if hit is None:
            return False
        pos = hit + len(seg)
    return pos <= end


EXAMPLES = list(_examples())
WALKTHROUGHS = list(_walkthroughs())
COMMANDS = list(_all_commands())


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 3 and len(WALKTHROUGHS) >= 3


@pytest.mark.parametrize("command,shown", EXAMPLES)
def test_readme_example_matches_the_program(cli, command, shown):
    args, jq = _split_jq(command)
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    if jq is not None:
        out = json.dumps(_jq(json.loads(out), jq), indent=2)
    assert _normalise(out) == _normalise(shown)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_documented_command_parses(command):
    """Its subcommand, options and arguments exist (without running it)."""
    import typer

    from mlarch.cli import app
    args, _ = _split_jq(command)
    group = typer.main.get_command(app)
    sub = group.get_command(None, args[0])
    assert sub is not None, f"no such command: mlarch {args[0]}"
    sub.make_context(args[0], args[1:])   # raises a UsageError on an unknown option or a missing argument


@pytest.mark.parametrize("lang,steps", WALKTHROUGHS)
def test_walkthrough_runs_as_shown(tmp_path, monkeypatch, lang, steps):
    from typer.testing import CliRunner

    from mlarch.cli import app
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLARCH_QUIET", "1")   # progress lines depend on the machine's speed
    runner = CliRunner()
    for command, shown in steps:
        args, jq = _split_jq(command)
        res = runner.invoke(app, args)
        assert res.exit_code == 0, f"{command}\n{res.output}"
        if lang == "sh":   # a file named in the comment is written
            for name in re.findall(r"[\w./-]+\.(?:png|csv|html|json|yaml)\b", shown):
                assert (tmp_path / name).exists(), f"{command}: {name} not written"
        elif jq is not None:
            assert _normalise(json.dumps(_jq(json.loads(res.stdout), jq), indent=2)) == _normalise(shown)
        else:
            assert _matches(shown, res.output), f"$ {command}\n--- shown\n{shown}\n--- output\n{res.output}"


def test_walkthrough_matcher_needs_every_line_shown():
    out = "a\nb\nc\nd"
    assert _matches("a\nb\nc\nd", out) and _matches("a\n…\nd", out) and _matches("…\nc\n…", out)
    assert not _matches("a\nc", out)          # a line left out without `…`
    assert not _matches("a\n…\nx\n…", out)    # a line that is not in the output
    assert not _matches("…\nb", out)          # the last line shown must end the output
