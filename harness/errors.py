"""Errors that a user can fix: each one names the file, the line or key, and the remedy.

The pytest plugin shows these as one short message, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base class for mistakes in the user's data, specs, models or options."""


class DataError(HarnessError):
    """Invalid content in a data file: names the file, the 1-based line and the field."""

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        self.hint = hint

        location = self.path if line is None else f"{self.path}:{line}"
        where = f" field '{field}':" if field else ""
        message = f"{location}:{where} {problem}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class SpecError(HarnessError):
    """Invalid YAML spec: names the file, the line when known, and the key path."""

    def __init__(
        self,
        path: str | Path,
        key: str,
        problem: str,
        *,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.key = key
        self.line = line
        location = self.path if line is None else f"{self.path}:{line}"
        message = f"{location}: {key}: {problem}" if key else f"{location}: {problem}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class BackendError(HarnessError):
    """A model cannot be loaded or cannot do what a case asks of it."""


class UnsupportedMethod(BackendError):
    """The backend does not implement the scoring method the case requests."""
