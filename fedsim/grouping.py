"""Groups of runs by config keys, for curves and tables: keys checked, groups labelled, pooling warned of.

Plots group runs by ``hue``, statistics by ``by``: the same keys (a string with commas,
or a list), the same labels (``fedprox, proximal_mu=0.1``), and the same one-line
warning when a group pools runs whose configs differ in more than the seed.
"""

from collections.abc import Mapping, Sequence

import pandas as pd

from fedsim.config import GROUPS
from fedsim.config.checks import ConfigError
from fedsim.config_values import KEYS_LISTED, distinct_values, format_value, is_missing, shorten, sort_key
from fedsim.results import METHOD, RUN_COLUMNS, config_keys

# Keys whose value alone names a curve when they lead a hue: the method and each group's choice.
GROUP_KEYS = (METHOD, *GROUPS)


def split_keys(keys: str | Sequence[str] | None) -> list[str]:
    """Config keys given as a string (commas separate several), a list, or None (no key)."""
    if keys is None:
        return []
    if isinstance(keys, str):
        keys = keys.split(",")
    return [key.strip() for key in keys if key and key.strip()]


def check_keys(frame: pd.DataFrame, keys: Sequence[str], role: str) -> None:
    """Raise ConfigError naming some keys that exist if one of ``keys`` is not a column of the runs."""
    for key in keys:
        if key in RUN_COLUMNS or key not in frame.columns:
            listed = ", ".join(config_keys(frame)[:KEYS_LISTED])
            raise ConfigError(f"{role} '{key}' is not a config key of these runs; some available keys: {listed}.")


def group_label(keys: Sequence[str], values: Sequence[object]) -> str:
    """A group's name from its values of ``keys``: the keys a run has, joined by ", ".

    A leading group choice or method shows as its value alone (``fedprox``), every other
    key as ``key=value``, without the leading group's prefix (``proximal_mu=0.1`` after
    ``strategy``): ``fedprox, proximal_mu=0.1``; a key the run lacks is left out
    (``fedavg``). A run with none of the keys is ``no KEYS``.
    """
    lead = keys[0] if keys and keys[0] in GROUP_KEYS else None
    parts = []
    for position, (key, value) in enumerate(zip(keys, values)):
        if is_missing(value):
            continue
        if position == 0 and lead is not None:
            parts.append(format_value(value))
            continue
        shown = key.removeprefix(f"{lead}.") if lead is not None and key.startswith(f"{lead}.") else key
        parts.append(f"{shown}={format_value(value)}")
    return ", ".join(parts) if parts else f"no {', '.join(keys)}"


def group_runs(runs: pd.DataFrame, keys: Sequence[str]) -> dict[str, list[str]]:
    """The runs (one row each, with ``run``) of each group of ``keys``, labelled, in the order of their values."""
    order: dict[str, tuple] = {}
    members: dict[str, list[str]] = {}
    for _, row in runs.iterrows():
        values = [row.get(key) for key in keys]
        label = group_label(keys, values) if keys else "all runs"
        order.setdefault(label, tuple(sort_key(value) for value in values))
        members.setdefault(label, []).append(row["run"])
    return {label: members[label] for label in sorted(members, key=lambda label: order[label])}


# Keys pooled runs may differ in without a warning: the seeds, what runs and records a run
# but leaves its results alone (engine, callbacks, terminal output), and folders.
POOLABLE_KEYS = ("quiet", "verbose", "engine", "callbacks")


def poolable(key: str) -> bool:
    """Whether runs pooled into one group may differ in ``key`` without a warning."""
    last = key.rsplit(".", 1)[-1]
    return (
        key in RUN_COLUMNS
        or key in POOLABLE_KEYS
        or key.startswith(tuple(f"{prefix}." for prefix in (*POOLABLE_KEYS, "hydra")))
        or last == "seed"
        or last.endswith("dir")
        or last == "directory"
    )


def pooling_message(runs: pd.DataFrame, groups: Mapping[str, Sequence[str]], name: str, advice: str) -> str | None:
    """One line naming the groups whose runs differ in a config value other than the seed, or None.

    ``runs`` has one row per run (``run`` and the config columns); ``groups`` maps each
    group's label to its runs; ``name`` says how groups are made (``hue method``) and
    ``advice`` ends the line.
    """
    runs = runs.drop_duplicates("run").set_index("run", drop=False)
    keys = [key for key in runs.columns if not poolable(key)]
    curves: list[str] = []
    differing: dict[str, list[object]] = {}
    for label, members in groups.items():
        if len(members) < 2:
            continue
        group = runs.loc[list(members)]
        keys_differing = [key for key in keys if len(distinct_values(group[key])) > 1]
        # A group's _target_ follows its choice: name the choice only.
        keys_differing = [
            key
            for key in keys_differing
            if not (key.endswith("._target_") and key.removesuffix("._target_") in keys_differing)
        ]
        if keys_differing:
            curves.append(label)
            for key in keys_differing:
                differing.setdefault(key, []).extend(group[key])
    if not curves:
        return None
    differing = {key: differing[key] for key in keys if key in differing}  # in column order
    named = [f"'{curve}'" for curve in curves]
    named = named if len(named) <= 4 else [*named[:3], f"{len(named) - 3} more"]
    items = [f"{key} ({', '.join(shorten(distinct_values(values)))})" for key, values in differing.items()]
    items = items if len(items) <= 6 else [*items[:5], f"{len(items) - 5} more keys"]
    verb = "pools" if len(curves) == 1 else "pool"
    pronoun = "it" if len(differing) == 1 else "them"
    return f"{name}: {_and(named)} {verb} runs whose configs differ in {_and(items)}; add {pronoun} to {advice}"


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
