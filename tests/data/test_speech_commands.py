"""dataset=speech_commands on local parquet files with the schema of the hub's parquet export."""

import datasets
import numpy as np
import pytest
from omegaconf import OmegaConf

from fedsim.config import ConfigError
from fedsim.data import build_partitioner
from fedsim.data.speech_commands import WORDS, load_speech_commands
from tests.data.hub_schemas import write_speech_commands_parquet
from tests.option_files import option_settings


def load(files: dict, **settings):
    return load_speech_commands(**option_settings("dataset", "speech_commands", data_files=files, **settings))


@pytest.fixture
def files(tmp_path):
    return write_speech_commands_parquet(tmp_path)


def test_the_keywords_become_the_classes_in_their_order_and_other_clips_are_left_out(files):
    data = load(files, keywords=["up", "yes"])
    # two training speakers say yes, no, up and bed twice each; the _silence_ clip has no speaker
    assert len(data.train) == 2 * 2 * 2 and len(data.test) == 1 * 2 * 2
    assert data.train.features["label"].names == ["up", "yes"] and data.num_classes == 2
    hub = datasets.load_dataset("parquet", data_files=files)["train"]
    words = [hub.features["label"].names[label] for label in hub["label"]]
    expected = [["up", "yes"].index(word) for word in words if word in ("up", "yes")]
    assert list(data.train["label"]) == expected
    assert list(data.train["file"]) == [file for file, word in zip(hub["file"], words) if word in ("up", "yes")]


def test_speakers_are_the_natural_id_and_the_test_split_has_other_speakers(files):
    data = load(files)
    assert data.natural_id_column == "speaker_id"
    assert set(data.train["speaker_id"]) == {"0a7c2a8d", "0b09edd3"}
    assert set(data.test["speaker_id"]) == {"1a5b3c7f"}
    partitioner = build_partitioner(OmegaConf.create(option_settings("partitioner", "natural") | {
        "_target_": "fedsim.data.NaturalIdPartitioner"}), data, num_clients=2, seed=0)
    for partition_id in range(2):
        speakers = set(partitioner.load_partition(partition_id)["speaker_id"])
        assert len(speakers) == 1  # each client is one speaker, with all of that speaker's clips
        (speaker,) = speakers
        assert len(partitioner.load_partition(partition_id)) == list(data.train["speaker_id"]).count(speaker)


def test_clips_become_log_mel_spectrograms_of_one_second(files):
    data = load(files, keywords=["yes", "no"], num_mel_bins=32)
    assert data.input_shape == (1, 32, 98)
    x, y = data.to_tensors(data.test)
    assert x.shape == (4, 1, 32, 98) and x.dtype.is_floating_point
    assert y.tolist() == [0, 0, 1, 1]  # the test speaker's yes, yes, no, no
    # the clips (at most 15,000 samples) are padded with silence: the last frame is the floor, each
    # clip's lowest value once standardized (mean 0, standard deviation 1)
    for clip in x[:, 0].numpy():
        assert np.allclose(clip[:, -1], clip.min()) and clip.mean() == pytest.approx(0, abs=1e-5)
    assert data.train.features["audio"].decode is False  # decoded by the transform, never by datasets


def test_an_unknown_keyword_is_one_sentence_listing_the_words(files):
    with pytest.raises(ConfigError) as raised:
        load(files, keywords=["yes", "maybe"])
    assert str(raised.value) == f"dataset.keywords: 'maybe' is not a word of Speech Commands; the words are {', '.join(WORDS)}."


def test_a_keyword_the_files_lack_is_one_sentence(tmp_path, files):
    # v0.01's labels lack v0.02's five new words
    hub = datasets.load_dataset("parquet", data_files=files)
    names = [*WORDS[:30], "_silence_"]
    relabel = [names.index(n) if n in names else 0 for n in hub["train"].features["label"].names]
    for split in files:
        old = hub[split].cast_column("audio", datasets.Audio(decode=False))
        new = old.cast_column("label", datasets.Value("int64")).map(
            lambda row: {"label": relabel[row["label"]]}
        ).cast_column("label", datasets.ClassLabel(names=names))
        new.to_parquet(tmp_path / f"v001-{split}.parquet")
    v001 = {split: str(tmp_path / f"v001-{split}.parquet") for split in files}
    with pytest.raises(ConfigError, match=r"^dataset.keywords: 'learn' is not a label of "):
        load(v001, keywords=["yes", "learn"])


def test_files_without_a_speaker_column_are_refused(tmp_path, files):
    for split, path in files.items():
        datasets.load_dataset("parquet", data_files=path)["train"].cast_column(
            "audio", datasets.Audio(decode=False)
        ).remove_columns(["speaker_id"]).to_parquet(tmp_path / f"nospeaker-{split}.parquet")
    with pytest.raises(ConfigError, match=r"^dataset: column\(s\) \['speaker_id'\] not in "):
        load({split: str(tmp_path / f"nospeaker-{split}.parquet") for split in files})


def test_audio_of_another_sample_rate_is_refused_before_training(tmp_path, monkeypatch):
    import soundfile

    real_write = soundfile.write
    monkeypatch.setattr(soundfile, "write", lambda file, data, rate, **kw: real_write(file, data, 8_000, **kw))
    files = write_speech_commands_parquet(tmp_path)
    monkeypatch.undo()
    with pytest.raises(ConfigError) as raised:
        load(files)
    assert str(raised.value).startswith("dataset.data_files: the audio of ")
    assert "audio at 8000 Hz" in str(raised.value) and str(raised.value).endswith("Speech Commands holds 16 kHz WAV files.")


def test_a_missing_split_is_one_sentence(files):
    with pytest.raises(ConfigError) as raised:
        load(files, test_split="validation")
    assert str(raised.value) == "dataset.test_split: 'parquet' has no split 'validation'; it has ['test', 'train']."


def test_the_shipped_files_are_the_hub_parquet_export():
    data_files = option_settings("dataset", "speech_commands")["data_files"]
    assert data_files == {
        split: f"hf://datasets/google/speech_commands@refs%2Fconvert%2Fparquet/v0.02/{split}/*.parquet"
        for split in ("train", "test")
    }
