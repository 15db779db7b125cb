"""The one error type of the scenario language (light: importing it loads nothing else)."""
from __future__ import annotations


class ScenarioError(ValueError):
    """Bad scenario input. str(err) is the one-line message shown to the user."""

    def __init__(self, source: str, line: int | None, field: str | None, message: str):
        self.source, self.line, self.field, self.message = source, line, field, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def __reduce__(self):   # picklable, so an error in a worker process reaches the parent intact
        return (type(self), (self.source, self.line, self.field, self.message))
