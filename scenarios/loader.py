"""Safe, strict loading of scenario YAML with line numbers in every error.

Errors are ScenarioError with a one-line message `FILE:LINE: field.path: message`.
The YAML is composed (never constructed), so tags that would build objects are
refused, duplicate keys are caught, and alias expansion is bounded.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import stat
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ScenarioError
from .schema import Scenario

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 20_000  # after alias expansion: stops "billion laughs" documents
MAX_DEPTH = 32      # nesting of mappings and lists: a scenario is 4 deep; PyYAML recurses per level
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
        if len(path) > MAX_DEPTH:
            # the text is shallow but an alias points back into its own mapping
            self.err(node, path[:2], f"nested more than {MAX_DEPTH} levels deep (an alias that "
                                             "refers to itself?); scenario files are 4 levels deep")
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


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing (PyYAML's composer recurses once
    per level, so a 2 KB file nested 1,000 deep would otherwise end in RecursionError).
    The event parser is iterative, so this pass is safe at any depth."""
    depth = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ScenarioError(source, ev.start_mark.line + 1, None,
                                    f"nested more than {MAX_DEPTH} levels deep; scenario files are "
                                    "a few levels of sections")
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1


def parse_yaml_text(text: str, source: str) -> tuple[dict, dict]:
    """YAML text -> (mapping, {field path: line}). Raises ScenarioError."""
    try:
        _check_depth(text, source)
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


def read_regular_file(path: Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most max_bytes, or ScenarioError naming the path.

    Opened with O_NONBLOCK so a FIFO cannot block, checked with fstat on the open descriptor
    (so a symlink swapped after a check cannot fool it), and read to at most max_bytes + 1
    bytes whatever stat says (/proc files and devices report sizes that are not true)."""
    src = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise ScenarioError(src, None, None, f"is a directory, not a {what}") from None
    except OSError as e:
        raise ScenarioError(src, None, None, f"cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ScenarioError(src, None, None, f"is a directory, not a {what}")
        if not stat.S_ISREG(mode):
            raise ScenarioError(src, None, None, f"is not a regular file (a device, FIFO or socket); "
                                                 f"give a {what}")
        os.set_blocking(fd, True)
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as e:
        raise ScenarioError(src, None, None, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > max_bytes:
        raise ScenarioError(src, None, None, f"is larger than {max_bytes:,} bytes; a {what} is smaller")
    return raw


def read_text(path: Path) -> str:
    """Read a scenario file as UTF-8 text, refusing huge, binary, special or unreadable files."""
    src = str(path)
    raw = read_regular_file(path, MAX_FILE_BYTES, "scenario file")
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
        parts.append(int(p) if p.isascii() and p.isdigit() else p)
    try:
        data, _ = parse_yaml_text(f"v: {raw}" if raw.strip() else "v: ''", src)
    except ScenarioError as e:
        # the value is parsed under a wrapper key `v`: name the user's field instead
        field = e.field
        if field and (field == "v" or field.startswith(("v.", "v["))):
            field = _fmt_path(tuple(parts)) + field[1:]
        raise ScenarioError(src, None, field or _fmt_path(tuple(parts)), e.message) from None
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

def _members(ann) -> list:
    """The pydantic model classes an annotation may hold (through Optional, Union, Annotated)."""
    out, todo = [], [ann]
    while todo:
        a = todo.pop(0)
        if isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
        todo += list(getattr(a, "__args__", ()) or ())
        if hasattr(a, "__origin__") and hasattr(a, "__metadata__"):
            todo.append(a.__origin__)
    return out


def _pick(models: list, value):
    """The member of a (discriminated) union that `value` selects, else the first."""
    if isinstance(value, dict) and "distribution" in value:
        for m in models:
            f = m.model_fields.get("distribution")
            if f is not None and value["distribution"] in getattr(f.annotation, "__args__", ()):
                return m
    return models[0] if models else None


def _walk_schema(path: tuple, data):
    """(model owning the last field of path, its FieldInfo or None), following `data` to
    choose union members; (None, None) when the path leaves the schema."""
    model, cur, info = Scenario, data, None
    for i, p in enumerate(path):
        if isinstance(p, int):
            cur = cur[p] if isinstance(cur, list) and p < len(cur) else None
            continue
        if model is None or p not in model.model_fields:
            return model, None
        info = model.model_fields[p]
        cur = cur.get(p) if isinstance(cur, dict) else None
        if i < len(path) - 1:
            model = _pick(_members(info.annotation), cur if not isinstance(cur, list) else (
                cur[path[i + 1]] if isinstance(path[i + 1], int) and path[i + 1] < len(cur) else None))
    return model, info


def _model_at(path: tuple, data=None):
    """The pydantic model class that owns the field at path[-1], if any (for suggestions)."""
    model, _ = _walk_schema(tuple(path[:-1]) + ("__none__",), data)
    return model


def _value_at(data, path: tuple):
    cur = data
    for p in path:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
            cur = cur[p]
        else:
            return None
    return cur


def _unit_kind(info) -> str | None:
    """'duration', 'rate', 'size' or 'fraction' for fields written with units, else None."""
    from . import schema, units
    kinds = {units.parse_duration_s: "duration", schema._duration: "duration", schema._half_life: "duration",
             units.parse_rate_per_s: "rate", units.parse_size_bytes: "size", units.parse_fraction: "fraction"}
    todo = list(getattr(info, "metadata", ())) + [getattr(info, "annotation", None)]
    while todo:
        a = todo.pop()
        func = getattr(a, "func", None)
        if func in kinds:
            return kinds[func]
        todo += list(getattr(a, "__metadata__", ()) or ()) + list(getattr(a, "__args__", ()) or ())
    return None


def _in_units(x: float, kind: str | None) -> str:
    from . import units
    if kind == "duration" and x > 0:
        return units.format_duration(x)
    if kind == "rate" and x > 0:
        return f"{x:g}/s"
    if kind == "size" and x > 0:
        return units.format_bytes(x).replace(" ", "")
    return f"{x:g}"


_BOUNDS = {"greater_than": ("gt", "more than"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}
_TYPES = {"int_parsing": "expected a whole number", "int_from_float": "expected a whole number",
          "int_type": "expected a whole number", "float_parsing": "expected a number",
          "float_type": "expected a number", "string_type": "expected text",
          "tuple_type": "expected a list", "list_type": "expected a list",
          "bool_parsing": "expected true or false", "bool_type": "expected true or false"}
_DIST_EXAMPLE = "{distribution: lognormal, median: 20ms, p99: 80ms} or {distribution: deterministic, value: 5ms}"


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
        # keep the part of loc that is a real path into the data; union member and tag names
        # (e.g. 'lognormal' in model.inference_time.lognormal.median) are not the user's
        path, cur = [], data
        for i, p in enumerate(loc):
            if isinstance(cur, dict) and p in cur:
                path.append(p); cur = cur[p]
            elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
                path.append(p); cur = cur[p]
            elif i == len(loc) - 1 and err["type"] in ("extra_forbidden", "missing"):
                path.append(p)
        path = tuple(path)
        msg = _message(err, path, data)
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


def _message(err: dict, path: tuple, data=None) -> str:
    """The user's version of a pydantic error: their field and value, their units, no class names."""
    typ, msg = err["type"], err["msg"]
    raw = _value_at(data, path) if path else None
    got = f" (got {raw!r})" if raw is not None and not isinstance(raw, (dict, list)) else ""
    if typ == "extra_forbidden":
        model = _model_at(path, data)
        known = list(model.model_fields) if model else []
        if model is not None and "distribution" in known:
            keys = [k for k in known if k != "distribution"]
            tag = (_value_at(data, path[:-1]) or {}).get("distribution")
            return (f"unknown key {path[-1]!r} for distribution: {tag} (its keys: {', '.join(keys)}); "
                    f"to change the distribution give the whole field, e.g. {_DIST_EXAMPLE}")
        close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; valid keys here: {', '.join(known)}" if known else "")
        return f"unknown key {path[-1]!r}{hint}"
    if typ == "missing":
        return "required field is missing"
    if typ in ("union_tag_invalid", "union_tag_not_found"):
        return "distribution must be one of lognormal, exponential, deterministic"
    if typ in _BOUNDS:
        key, words = _BOUNDS[typ]
        limit = (err.get("ctx") or {}).get(key)
        if isinstance(limit, (int, float)):
            _, info = _walk_schema(path, data)
            return f"must be {words} {_in_units(float(limit), _unit_kind(info))}{got}"
    if typ in ("model_type", "model_attributes_type", "dict_type", "dataclass_type"):
        _, info = _walk_schema(path, data) if path and not isinstance(path[-1], int) else (None, None)
        members = _members(info.annotation) if info is not None else []
        if path and isinstance(path[-1], int):   # an item of a list of sections (data.faults)
            members = _members(_walk_schema(path[:-1], data)[1].annotation) if _walk_schema(path[:-1], data)[1] else []
        if any("distribution" in m.model_fields for m in members):
            return f"expected a time distribution such as {_DIST_EXAMPLE}{got}"
        keys = list(members[0].model_fields) if members else []
        return "expected a section of fields" + (f" ({', '.join(keys)})" if keys else "") + got
    if typ in _TYPES:
        return _TYPES[typ] + got
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    msg = re.sub(r" or instance of \w+", "", msg)
    if typ not in ("value_error",) and got:
        msg += got
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
