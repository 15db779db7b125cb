"""Safe, strict loading of scenario YAML with line numbers in every error.

Errors are ScenarioError with a one-line message `FILE:LINE: field.path: message`.
The YAML is composed (never constructed), so tags that would build objects are
refused, duplicate keys are caught, and alias expansion is bounded.
"""
from __future__ import annotations

import difflib
import math
import re
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ScenarioError
from .schema import Scenario

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 20_000  # after alias expansion: stops "billion laughs" documents
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {"str", "int", "float", "bool", "null"}


def _fmt_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class _Walker:
    """Turns a composed YAML node tree into plain Python values, recording lines."""

    def __init__(self, source: str):
        self.source, self.lines, self.nodes = source, {}, 0
        self._scalar = yaml.SafeLoader("")  # only for construct_scalar-style conversions

    def err(self, node, path, msg):
        raise ScenarioError(self.source, node.start_mark.line + 1, _fmt_path(path) if path else None, msg)

    def walk(self, node, path=()):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.err(node, path, f"document expands to more than {MAX_NODES} nodes "
                                 "(an alias bomb?); scenario files are small")
        self.lines.setdefault(path, node.start_mark.line + 1)
        tag = node.tag or ""
        if isinstance(node, yaml.MappingNode):
            if tag != _CORE + "map":
                self.err(node, path, f"YAML tag {tag!r} is not allowed")
            out = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    self.err(knode, path, "mapping keys must be plain names")
                if knode.tag == _CORE + "merge":
                    self.err(knode, path, "YAML merge keys (<<) are not supported")
                key = knode.value
                if key in out:
                    self.err(knode, path + (key,), f"duplicate key {key!r} (first on line "
                                                   f"{self.lines.get(path + (key,), '?')})")
                self.lines[path + (key,)] = knode.start_mark.line + 1
                out[key] = self.walk(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            if tag != _CORE + "seq":
                self.err(node, path, f"YAML tag {tag!r} is not allowed")
            return [self.walk(v, path + (i,)) for i, v in enumerate(node.value)]
        short = tag[len(_CORE):] if tag.startswith(_CORE) else None
        if short not in _SCALAR_TAGS and short != "timestamp":
            self.err(node, path, f"YAML tag {tag!r} is not allowed (no object-building tags)")
        if short in ("str", "timestamp"):
            return node.value
        value = getattr(self._scalar, f"construct_yaml_{short}")(node)
        if isinstance(value, float) and not math.isfinite(value):
            self.err(node, path, f"{node.value!r} is not a finite number")
        return value


def parse_yaml_text(text: str, source: str) -> tuple[dict, dict]:
    """YAML text -> (mapping, {field path: line}). Raises ScenarioError."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise ScenarioError(source, line, None, f"malformed YAML: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(source, None, None, f"malformed YAML: {e}") from None
    if node is None:
        raise ScenarioError(source, None, None, "the file is empty; start from `mlarch init FILE --from spam`")
    walker = _Walker(source)
    data = walker.walk(node)
    if not isinstance(data, dict):
        raise ScenarioError(source, 1, None, "a scenario must be a mapping of fields (name:, traffic:, ...)")
    return data, walker.lines


def read_text(path: Path) -> str:
    """Read a scenario file as UTF-8 text, refusing huge, binary or unreadable files."""
    src = str(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ScenarioError(src, None, None, f"cannot read: {e.strerror or e}") from None
    if path.is_dir():
        raise ScenarioError(src, None, None, "is a directory, not a scenario file")
    if size > MAX_FILE_BYTES:
        raise ScenarioError(src, None, None, f"file is {size} bytes; scenario files are at most "
                                             f"{MAX_FILE_BYTES} bytes")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ScenarioError(src, None, None, f"cannot read: {e.strerror or e}") from None
    if b"\x00" in raw:
        raise ScenarioError(src, None, None, "binary file (contains NUL bytes), not YAML")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ScenarioError(src, line, None, "not UTF-8 text") from None


# -------------------------------------------------------------------- presets

def preset_names() -> list[str]:
    """Names of the bundled presets, sorted."""
    files = resources.files("scenarios") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of a bundled preset."""
    return (resources.files("scenarios") / "presets" / f"{name}.yaml").read_text("utf-8")


def preset_description(name: str) -> str:
    data, _ = parse_yaml_text(preset_text(name), f"preset {name}")
    return str(data.get("description", ""))


# -------------------------------------------------------------------- overrides

def parse_override(text: str) -> tuple[tuple, object]:
    """'traffic.rate=120/s' -> (("traffic", "rate"), "120/s"), value parsed as YAML."""
    src = f"--set {text}"
    if "=" not in text:
        raise ScenarioError(src, None, None, "expected PATH=VALUE, e.g. --set traffic.rate=120/s")
    key, raw = text.split("=", 1)
    parts = []
    for p in key.strip().split("."):
        if not p:
            raise ScenarioError(src, None, None, f"bad field path {key!r}")
        parts.append(int(p) if p.isdigit() else p)
    data, _ = parse_yaml_text(f"v: {raw}" if raw.strip() else "v: ''", src)
    return tuple(parts), data["v"]


def _apply(data: dict, path: tuple, value, src: str):
    cur = data
    for i, p in enumerate(path[:-1]):
        nxt = cur[p] if (isinstance(cur, list) and isinstance(p, int) and p < len(cur)) else (
            cur.get(p) if isinstance(cur, dict) else None)
        if nxt is None:
            if isinstance(cur, dict):
                cur[p] = nxt = {}
            else:
                raise ScenarioError(src, None, _fmt_path(path[: i + 1]), "no such list item")
        if not isinstance(nxt, (dict, list)):
            raise ScenarioError(src, None, _fmt_path(path[: i + 1]), "is a value, not a section")
        cur = nxt
    last = path[-1]
    if isinstance(cur, list):
        if not isinstance(last, int) or last >= len(cur):
            raise ScenarioError(src, None, _fmt_path(path), "no such list item")
    cur[last] = value


# --------------------------------------------------------------- validation

def _known_fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(path: tuple):
    """The pydantic model class that owns the field at path[:-1], if any (for suggestions)."""
    model = Scenario
    for p in path[:-1]:
        if isinstance(p, int):
            continue
        field = model.model_fields.get(p)
        if field is None:
            return None
        ann = field.annotation
        cands = [ann] + list(getattr(ann, "__args__", ()))
        for a in list(cands):
            cands += list(getattr(a, "__args__", ()))
        nxt = next((c for c in cands if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model


def validate(data: dict, lines: dict, source: str, overrides: dict | None = None) -> Scenario:
    """Validate a mapping into a Scenario, mapping the first error to FILE:LINE: field: msg.

    overrides maps a field path to the `--set` text that supplied it, so its errors name it."""
    overrides = overrides or {}
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        # an unknown key usually explains a "missing" one (a typo), so report it first
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        loc = tuple(err["loc"])
        # keep the part of loc that is a real path into the data (drop union/tag names)
        path, cur = [], data
        for p in loc:
            if isinstance(cur, dict) and p in cur:
                path.append(p); cur = cur[p]
            elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
                path.append(p); cur = cur[p]
            elif err["type"] == "extra_forbidden" or err["type"] == "missing":
                path.append(p); break
        path = tuple(path)
        msg = _message(err, path)
        # model-level checks name the offending field first ("architecture.serving: ..."):
        # move that into the path so the line number points at it
        m = re.match(r"^([a-z_][a-z0-9_]*(?:\[\d+\]|\.[a-z_][a-z0-9_]*)*): (.*)$", msg)
        if m:
            extra = tuple(int(x) if x.isdigit() else x for x in re.findall(r"[a-z_][a-z0-9_]*|\d+", m.group(1)))
            path, msg = path + extra, m.group(2)
        for opath, otext in overrides.items():
            if path[: len(opath)] == opath or opath[: len(path)] == path:
                raise ScenarioError(f"--set {otext}", None, _fmt_path(path), msg) from None
        line = None
        for i in range(len(path), -1, -1):
            if path[:i] in lines:
                line = lines[path[:i]]
                break
        raise ScenarioError(source, line, _fmt_path(path) if path else None, msg) from None


def _message(err: dict, path: tuple) -> str:
    typ, msg = err["type"], err["msg"]
    if typ == "extra_forbidden":
        model = _model_at(path)
        known = _known_fields(model) if model else []
        close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; valid keys here: {', '.join(known)}" if known else "")
        return f"unknown key {path[-1]!r}{hint}"
    if typ == "missing":
        return "required field is missing"
    if typ == "union_tag_invalid" or typ == "union_tag_not_found":
        return "distribution must be one of lognormal, exponential, deterministic"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if "input" in err and typ not in ("value_error",) and not isinstance(err["input"], (dict, list)):
        msg += f" (got {err['input']!r})"
    return msg


def load_scenario(spec: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Load a scenario from a file path or a preset name, apply `--set` overrides, validate.

    Raises ScenarioError (one line: FILE:LINE: field: message) on any bad input."""
    spec_s = str(spec)
    path = Path(spec_s)
    if path.exists() or spec_s.endswith((".yaml", ".yml")) or "/" in spec_s:
        if not path.exists():
            names = preset_names()
            close = difflib.get_close_matches(path.stem, names, n=1)
            hint = f"; did you mean the preset {close[0]!r}?" if close else ""
            raise ScenarioError(spec_s, None, None, f"no such file{hint}")
        text, source = read_text(path), spec_s
    else:
        names = preset_names()
        if spec_s not in names:
            close = difflib.get_close_matches(spec_s, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ScenarioError(spec_s, None, None, f"no such file or preset ({hint}presets: "
                                                    f"{', '.join(names)})")
        text, source = preset_text(spec_s), f"{spec_s}.yaml (preset)"
    data, lines = parse_yaml_text(text, source)
    applied = {}
    for ov in overrides:
        opath, value = parse_override(ov)
        _apply(data, opath, value, f"--set {ov}")
        applied[opath] = ov
    return validate(data, lines, source, applied)


def scenario_data(sc: Scenario) -> dict:
    """A mapping that validates back into `sc` (base units as bare numbers), for deriving
    variants of a loaded scenario without its file."""
    data = sc.model_dump(mode="python", exclude_none=True)
    if sc.traffic.cardinality is None:
        data["traffic"]["cardinality"] = "unbounded"
    if math.isinf(sc.data.concept_half_life):
        data["data"]["concept_half_life"] = "never"
    return data


def with_overrides(sc: Scenario, overrides: list[str] | tuple[str, ...]) -> Scenario:
    """`sc` with `--set` overrides applied and validated exactly as on the command line
    (used by the advisor to check the remedies it proposes). Raises ScenarioError."""
    data = scenario_data(sc)
    applied = {}
    for ov in overrides:
        opath, value = parse_override(ov)
        _apply(data, opath, value, f"--set {ov}")
        applied[opath] = ov
    return validate(data, {}, sc.name, applied)
