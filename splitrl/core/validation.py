"""Validation helpers shared by the worlds' scenarios: numbers from YAML, ranges; errors name the key."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from splitrl.core.errors import ScenarioError


def as_number(key: str, value: Any, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, str):
            try:
                value = float(value) if not integer else int(value)
            except ValueError:
                raise ScenarioError(key, f"expected a number, got {value!r}") from None
        else:
            raise ScenarioError(key, f"expected a number, got {type(value).__name__} {value!r}")
    if integer:
        if float(value) != int(value):
            raise ScenarioError(key, f"expected an integer, got {value!r}")
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ScenarioError(key, f"expected a finite number, got {value!r}")
    return value


def check_ranges(values: dict, positive_int=(), positive=(), nonneg=()) -> None:
    """Coerce ``values[key]`` in place to int (``positive_int``, >= 1) or float (``positive``,
    > 0; ``nonneg``, >= 0), raising :class:`ScenarioError` naming the key."""
    for key in positive_int:
        values[key] = as_number(key, values[key], integer=True)
        if values[key] < 1:
            raise ScenarioError(key, f"must be >= 1, got {values[key]}")
    for key in positive:
        values[key] = as_number(key, values[key])
        if values[key] <= 0:
            raise ScenarioError(key, f"must be > 0, got {values[key]}")
    for key in nonneg:
        values[key] = as_number(key, values[key])
        if values[key] < 0:
            raise ScenarioError(key, f"must be >= 0, got {values[key]}")
