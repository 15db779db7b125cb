"""The scenario language: schema, units, loader and bundled presets."""
from .loader import ScenarioError, load_scenario, preset_description, preset_names, preset_text
from .schema import Scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "preset_names", "preset_text",
           "preset_description"]
