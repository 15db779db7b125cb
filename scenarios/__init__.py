"""The scenario language and what it means: schema, units, loader, presets, the popularity
and drift laws (scenarios.popularity, scenarios.drift), billing conventions
(scenarios.accounting) and the resolved architecture (scenarios.design).

Names are loaded on first use, so that `import scenarios.errors` (or `mlarch --help`) does
not pay for pydantic, YAML and numpy.
"""
from __future__ import annotations

from .errors import ScenarioError

__all__ = ["Scenario", "ScenarioError", "load_scenario", "preset_names", "preset_text",
           "preset_description"]


def __getattr__(name: str):
    if name in ("load_scenario", "preset_names", "preset_text", "preset_description"):
        from . import loader
        return getattr(loader, name)
    if name == "Scenario":
        from .schema import Scenario
        return Scenario
    raise AttributeError(f"module 'scenarios' has no attribute {name!r}")
