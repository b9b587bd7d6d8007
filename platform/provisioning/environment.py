"""Typed readers for environment variables that fail fast, naming the variable."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .errors import SettingsError


class Environment:
    """A read-only view of environment variables with typed, validated getters."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self._variables = variables

    def text(self, name: str, default: str) -> str:
        value = self._variables.get(name, default).strip()
        if not value:
            raise SettingsError(name, "must not be empty")
        return value

    def optional_text(self, name: str) -> str | None:
        """A value that may be absent: None when unset or blank."""
        value = self._variables.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self._variables.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, f"must be an integer, got {raw!r}") from None
        if value < minimum:
            raise SettingsError(name, f"must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self._variables.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number, got {raw!r}") from None
        if not math.isfinite(value):  # nan passes every comparison; inf is no duration
            raise SettingsError(name, f"must be a finite number, got {raw!r}")
        if value < minimum:
            raise SettingsError(name, f"must be at least {minimum}, got {value}")
        return value

    def ratio(self, name: str, default: float) -> float:
        value = self.number(name, default)
        if value > 1.0:
            raise SettingsError(name, f"must be between 0 and 1, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        """``true``/``false`` (also 1/0, yes/no, on/off), any case."""
        raw = self._variables.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("true", "1", "yes", "on"):
            return True
        if raw in ("false", "0", "no", "off"):
            return False
        raise SettingsError(name, f"must be true or false, got {raw!r}")

    def words(self, name: str) -> frozenset[str]:
        """A comma-separated list; blanks are ignored."""
        raw = self._variables.get(name, "")
        return frozenset(word.strip() for word in raw.split(",") if word.strip())
