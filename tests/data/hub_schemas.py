"""Local parquet files with the schemas of the hub datasets fedsim names (for tests: no network)."""

from pathlib import Path

import datasets
import numpy as np
from PIL import Image


def write_cifar10_parquet(folder: Path, num_train: int = 40, num_test: int = 10, seed: int = 0) -> dict[str, str]:
    """uoft-cs/cifar10's schema: ``img`` (32x32 RGB Image) and ``label`` (10-class ClassLabel)."""
    rng = np.random.default_rng(seed)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    files = {}
    for split, count in (("train", num_train), ("test", num_test)):
        pixels = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
        ds = datasets.Dataset.from_dict(
            {"img": [Image.fromarray(p) for p in pixels], "label": np.arange(count) % 10}, features=features
        )
        files[split] = str(folder / f"cifar10-{split}.parquet")
        ds.to_parquet(files[split])
    return files


def write_femnist_parquet(folder: Path, num_writers: int = 6, per_writer: int = 8, seed: int = 0) -> dict[str, str]:
    """flwrlabs/femnist's schema: ``image`` (28x28 grey), ``writer_id``, ``hsf_id``, ``character``
    (62-class ClassLabel); one train split, as on the hub."""
    rng = np.random.default_rng(seed)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "writer_id": datasets.Value("string"),
            "hsf_id": datasets.Value("int64"),
            "character": datasets.ClassLabel(num_classes=62),
        }
    )
    count = num_writers * per_writer
    pixels = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    ds = datasets.Dataset.from_dict(
        {
            "image": [Image.fromarray(p) for p in pixels],
            "writer_id": [f"f{index // per_writer:04d}_00" for index in range(count)],
            "hsf_id": [index // per_writer % 4 for index in range(count)],
            "character": rng.integers(0, 62, size=count),
        },
        features=features,
    )
    path = str(folder / "femnist-train.parquet")
    ds.to_parquet(path)
    return {"train": path}


def write_speech_commands_parquet(
    folder: Path, speakers: dict[str, list[str]] | None = None, per_word: int = 2, seed: int = 0
) -> dict[str, str]:
    """google/speech_commands v0.02's schema, as its parquet export holds it: ``file``, ``audio``
    (16 kHz WAV, an Audio feature), ``label`` (ClassLabel of the 35 words and ``_silence_``),
    ``is_unknown``, ``speaker_id`` (null for ``_silence_``), ``utterance_id``.

    ``speakers`` maps each split to its speaker ids (by default two in train, one in test);
    each says ``yes``, ``no``, ``up`` and ``bed`` ``per_word`` times, as noise bursts of
    different lengths (8,000 to 15,000 samples: shorter than a second, as some in the dataset); each split also has
    one ``_silence_`` clip of two seconds without a speaker.
    """
    import io

    import pyarrow as pa
    import soundfile

    from fedsim.data.speech_commands import WORDS

    names = [*WORDS, "_silence_"]
    speakers = speakers or {"train": ["0a7c2a8d", "0b09edd3"], "test": ["1a5b3c7f"]}
    features = datasets.Features(
        {
            "file": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=16_000),
            "label": datasets.ClassLabel(names=names),
            "is_unknown": datasets.Value("bool"),
            "speaker_id": datasets.Value("string"),
            "utterance_id": datasets.Value("int8"),
        }
    )
    rng = np.random.default_rng(seed)
    files = {}
    for split, ids in speakers.items():
        rows = {name: [] for name in features}
        clips = [(word, speaker, n) for speaker in ids for word in ("yes", "no", "up", "bed") for n in range(per_word)]
        for word, speaker, utterance in [*clips, ("_silence_", None, 0)]:
            length = 32_000 if speaker is None else int(rng.integers(8_000, 15_001))
            buffer = io.BytesIO()
            soundfile.write(buffer, 0.1 * rng.standard_normal(length), 16_000, format="WAV", subtype="PCM_16")
            name = f"{word}/{speaker or 'noise'}_nohash_{utterance}.wav"
            rows["file"].append(name)
            rows["audio"].append({"bytes": buffer.getvalue(), "path": name})
            rows["label"].append(names.index(word))
            rows["is_unknown"].append(word not in WORDS[:10] and speaker is not None)
            rows["speaker_id"].append(speaker)
            rows["utterance_id"].append(utterance)
        table = pa.table({name: pa.array(values, type=features[name].pa_type) for name, values in rows.items()})
        files[split] = str(folder / f"speech_commands-{split}.parquet")
        datasets.Dataset(table, info=datasets.DatasetInfo(features=features)).to_parquet(files[split])
    return files
