"""The house: imports run one way (scenarios ← advisor, simulator ← mlarch), and start-up
stays light. See docs/architecture.md."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "scenarios": ("advisor", "simulator", "mlarch"),
    "advisor": ("simulator", "mlarch"),
    "simulator": ("advisor", "mlarch"),
}
HEAVY = ("scipy.stats", "matplotlib", "pandas", "simpy", "sklearn")


def _modules_after(code: str) -> list[str]:
    """sys.modules of a fresh interpreter after running `code`."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_a_package_loads_none_above_it(package):
    mods = _modules_after(f"import {package}")
    bad = [m for m in mods if m.split(".")[0] in FORBIDDEN[package]]
    assert not bad, f"importing {package} loaded {bad}"


def _imports_in(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions (absolute names)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_source_file_imports_upward(package):
    """Catches lazy imports inside functions too, which sys.modules would miss."""
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    bad = {str(f.relative_to(ROOT)): sorted(m for m in _imports_in(f) if m.split(".")[0] in FORBIDDEN[package])
           for f in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"upward imports: {bad}"


@pytest.mark.parametrize("argv", [["--help"], ["advise", "spam"], ["presets"]])
def test_fast_commands_import_nothing_heavy(argv):
    code = ("import sys\nfrom mlarch.cli import app\n"
            f"try:\n    app({argv!r}, prog_name='mlarch')\nexcept SystemExit:\n    pass\n")
    mods = _modules_after(code)
    assert "mlarch.cli" in mods
    heavy = [m for m in mods if m.startswith(HEAVY)]
    assert not heavy, f"mlarch {' '.join(argv)} imported {heavy[:5]}"


def test_a_simulation_does_not_pay_for_scipy_stats():
    """Importing scipy.stats costs about a second before the first request; the validation
    thresholds use their own Beta-binomial tail (simulator.thresholds)."""
    code = ("import sys\nfrom mlarch.cli import app\n"
            "try:\n    app(['simulate', 'spam', '--horizon', '10m', '--json', '-q'], prog_name='mlarch')\n"
            "except SystemExit:\n    pass\n")
    mods = _modules_after(code)
    assert "simulator.engine" in mods and "scipy.stats" not in mods


def test_tests_are_not_installed_as_a_package():
    text = (ROOT / "pyproject.toml").read_text()
    import tomllib
    pkgs = tomllib.loads(text)["tool"]["setuptools"]["packages"]
    assert "tests" not in pkgs and "mlarch" in pkgs
    assert tomllib.loads(text)["project"]["scripts"]["mlarch"] == "mlarch.cli:main"


def test_python_dash_m_mlarch_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "mlarch", "presets"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "spam" in out.stdout
