"""Google Speech Commands (v0.02) from the hub's parquet export: keywords, one natural client per speaker.

The hub's ``google/speech_commands`` is a dataset script, which ``datasets`` 4 no longer
runs; the hub's parquet export of it (branch ``refs/convert/parquet``) holds the same rows:
``file``, ``audio`` (the one-second 16 kHz WAV files), ``label`` (a ClassLabel of the 35
words and ``_silence_``), ``is_unknown``, ``speaker_id`` (null for the background-noise
clips of ``_silence_``) and ``utterance_id``. Its train, validation and test splits are
the dataset's own, which put each speaker in one split only.
"""

import datasets
import numpy as np
import pyarrow.compute as pc

from fedsim.config.checks import ConfigError, require
from fedsim.data.audio import LogMelSpectrogram, check_spectrogram, decode_clips
from fedsim.data.dataset import FederatedData
from fedsim.data.loaders import _check_local_files

# The words of Speech Commands v0.02, in the order of the hub's ClassLabel (its label ids);
# v0.01 has the first 30. The ten commands are the first ten.
WORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)
AUDIO_COLUMN, LABEL_COLUMN, SPEAKER_COLUMN = "audio", "label", "speaker_id"


def check_keywords(keywords: list[str]) -> None:
    """Raise ConfigError unless ``dataset.keywords`` names distinct words of Speech Commands."""
    require(len(keywords) >= 2, f"dataset.keywords must name at least 2 words (got {list(keywords)}).")
    unknown = [word for word in keywords if word not in WORDS]
    require(
        not unknown,
        f"dataset.keywords: {', '.join(map(repr, unknown))} is not a word of Speech Commands; "
        f"the words are {', '.join(WORDS)}.",
    )
    repeated = sorted({word for word in keywords if list(keywords).count(word) > 1})
    require(not repeated, f"dataset.keywords names {', '.join(repeated)} more than once; name each word once.")


def keyword_split(split: datasets.Dataset, keywords: list[str], source: str) -> datasets.Dataset:
    """The rows of ``split`` that say one of ``keywords``, relabelled 0..len(keywords) - 1 in that order.

    Rows of other words, and rows without a speaker (``_silence_``), are left out
    through an index mapping: the audio is neither copied nor decoded. The audio
    column stays encoded (``Audio(decode=False)``), decoded by the spectrogram transform.
    """
    label_feature = split.features[LABEL_COLUMN]
    names = list(getattr(label_feature, "names", None) or [])
    missing = [word for word in keywords if word not in names]
    if missing:
        raise ConfigError(
            f"dataset.keywords: {', '.join(map(repr, missing))} is not a label of {source}; its labels are "
            f"{', '.join(names) or 'not named (the label column is no ClassLabel)'}."
        )
    table = split.with_format("arrow")
    labels = np.asarray(table[LABEL_COLUMN])
    has_speaker = np.asarray(pc.is_valid(table[SPEAKER_COLUMN]))
    keyword_of_label = np.full(len(names), -1, dtype=np.int64)
    keyword_of_label[[names.index(word) for word in keywords]] = np.arange(len(keywords))
    keyword = keyword_of_label[labels]
    kept = np.flatnonzero((keyword >= 0) & has_speaker)
    if len(kept) == 0:
        raise ConfigError(f"dataset.keywords: no row of {source} says one of {', '.join(keywords)}.")
    relabelled = split.remove_columns([LABEL_COLUMN]).add_column(
        LABEL_COLUMN, np.maximum(keyword, 0), feature=datasets.ClassLabel(names=list(keywords))
    )
    return relabelled.cast_column(AUDIO_COLUMN, datasets.Audio(sampling_rate=16_000, decode=False)).select(kept)


def load_speech_commands(
    *,
    path: str,
    data_files: dict[str, str | list[str]] | None,
    train_split: str,
    test_split: str,
    keywords: list[str],
    num_mel_bins: int,
    frame_ms: float,
    hop_ms: float,
) -> FederatedData:
    """Speech Commands' clips of ``keywords``, as log-mel spectrograms; ``speaker_id`` is the natural id.

    ``path`` and ``data_files`` go to ``datasets.load_dataset`` as for ``dataset=huggingface``:
    by default the hub's parquet export (``hf://`` paths; needs the network the first
    time, then ``datasets``' cache), or local parquet files with the same columns.
    Labels are the keywords' positions in ``keywords``; the test split's speakers
    never appear in the training split (the dataset's own split).

    Parameters
    ----------
    path : str
        ``datasets.load_dataset``'s path: ``parquet`` for the export's files.
    data_files : dict[str, str | list[str]] | None
        Files (or ``hf://`` globs) of each split.
    train_split, test_split : str
        The splits that train (divided among clients) and test (centralized evaluation).
    keywords : list[str]
        At least two distinct words of Speech Commands (``WORDS``); the classes, in order.
    num_mel_bins, frame_ms, hop_ms
        The spectrogram (see ``fedsim.data.audio.LogMelSpectrogram``).
    """
    check_keywords(keywords)
    check_spectrogram(num_mel_bins, frame_ms, hop_ms)
    _check_local_files(data_files)
    try:
        splits = datasets.load_dataset(path, data_files=data_files)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as error:
        raise ConfigError(f"dataset.path: could not load '{path}' ({error}).") from error
    for setting, split in (("train_split", train_split), ("test_split", test_split)):
        if split not in splits:
            raise ConfigError(f"dataset.{setting}: '{path}' has no split '{split}'; it has {sorted(splits)}.")
    chosen = {}
    for split in (train_split, test_split):
        source = _describe(data_files, split, path)
        columns = splits[split].column_names
        missing = [c for c in (AUDIO_COLUMN, LABEL_COLUMN, SPEAKER_COLUMN) if c not in columns]
        if missing:
            raise ConfigError(
                f"dataset: column(s) {missing} not in {source}; Speech Commands has audio, label and speaker_id "
                f"(its columns are {columns})."
            )
        chosen[split] = keyword_split(splits[split], list(keywords), source)
    try:
        decode_clips(chosen[train_split].with_format("python")[:1][AUDIO_COLUMN], 16_000)
    except (ValueError, RuntimeError, TypeError) as error:  # soundfile's LibsndfileError is a RuntimeError
        raise ConfigError(
            f"dataset.data_files: the audio of {_describe(data_files, train_split, path)} cannot be read ({error}); "
            "Speech Commands holds 16 kHz WAV files."
        ) from error
    features = LogMelSpectrogram(num_mel_bins=num_mel_bins, frame_ms=frame_ms, hop_ms=hop_ms)
    return FederatedData(
        train=chosen[train_split],
        test=chosen[test_split],
        feature_columns=[AUDIO_COLUMN],
        label_column=LABEL_COLUMN,
        input_shape=features.input_shape,
        num_classes=len(keywords),
        natural_id_column=SPEAKER_COLUMN,
        features=features,
    )


def _describe(data_files: dict | None, split: str, path: str) -> str:
    files = (data_files or {}).get(split)
    return f"'{path}' (split '{split}')" if files is None else repr(files)
