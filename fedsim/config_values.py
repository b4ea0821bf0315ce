"""Config values as loaded runs hold them: missing or set, equal or not, formatted and ordered.

A run's config column holds what YAML gave (numbers, text, booleans, lists as text) or
nothing (None, NaN, pandas' NA) when the run lacks the key. ``where`` filters, group
labels, statistics and error messages all compare, print and sort values the same way,
through these functions.
"""

import math
from collections.abc import Iterable
from numbers import Number

import numpy as np
import pandas as pd

# How many keys or values a message lists before it says how many more there are.
KEYS_LISTED = 8


def is_missing(value: object) -> bool:
    """None, NaN or pandas' NA: a run without the key."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, Number) and not isinstance(value, bool) and math.isnan(float(value))


def _as_number(value: object) -> float | None:
    if isinstance(value, (bool, np.bool_)) or is_missing(value):
        return None
    if isinstance(value, Number):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def values_equal(value: object, wanted: object) -> bool:
    """Whether a run's column ``value`` equals ``wanted``: numbers as numbers, anything else as text."""
    if is_missing(wanted) or is_missing(value):
        return is_missing(wanted) and is_missing(value)
    number, wanted_number = _as_number(value), _as_number(wanted)
    if number is not None and wanted_number is not None:
        return number == wanted_number
    return format_value(value) == format_value(wanted)


def format_value(value: object) -> str:
    """A config value as labels show it: ``0.1``, ``1`` (for 1.0), ``true``, ``fedavg``, ``[200, 200]``.

    A missing value (None, NaN) is ``unset``.
    """
    if is_missing(value):
        return "unset"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, Number):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
        return repr(number)
    return str(value)  # text; a list as str(), as results._flatten writes lists


def sort_key(value: object) -> tuple:
    """Numbers in order, then text, then missing values."""
    number = _as_number(value)
    if number is not None and not isinstance(value, str):
        return (0, number, "")
    if is_missing(value):
        return (2, 0.0, "")
    return (1, 0.0, format_value(value))


def distinct_values(values: Iterable[object]) -> list[str]:
    """The distinct values, ordered (numbers, text, then ``unset``) and formatted."""
    shown: dict[str, tuple] = {}
    for value in values:
        shown.setdefault(format_value(value), sort_key(value))
    return sorted(shown, key=lambda text: shown[text])


def shorten(values: list[str], limit: int = KEYS_LISTED) -> list[str]:
    """``values``, or its first ``limit - 1`` and then how many there are in all."""
    return values if len(values) <= limit else [*values[: limit - 1], f"... ({len(values)} values)"]


def join_values(values: Iterable[object], limit: int = KEYS_LISTED) -> str:
    """Distinct values, sorted, formatted and joined: ``0.1, 0.5 or 1``."""
    shown = shorten(distinct_values(values), limit)
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
