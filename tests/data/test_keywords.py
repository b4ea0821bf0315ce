"""dataset=keywords: spoken keywords synthesized by espeak-ng, one speaker per voice, cached, checked."""

import io

import numpy as np
import pytest
import soundfile
from omegaconf import OmegaConf

from fedsim.config import ConfigError
from fedsim.data import build_partitioner
from fedsim.data import keywords as keywords_module
from fedsim.data.keywords import (
    Speaker,
    Utterance,
    cache_key,
    colored_noise,
    generate_keywords,
    load_keywords,
    render,
)
from tests.option_files import option_settings

# Three training speakers and one test speaker, three keywords, twice each: 24 clips in about a second.
TINY = {"keywords": ["yes", "no", "seven"], "num_speakers": 3, "num_test_speakers": 1, "repetitions": 2}


def load(cache_dir, **settings):
    return load_keywords(**option_settings("dataset", "keywords", cache_dir=str(cache_dir), **{**TINY, **settings}))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load(tmp_path_factory.mktemp("keywords"))


def samples(row: dict) -> tuple[np.ndarray, int]:
    return soundfile.read(io.BytesIO(row["audio"]["bytes"]), dtype="int16")


def test_every_speaker_says_every_keyword_repetitions_times(tiny):
    assert (len(tiny.train), len(tiny.test)) == (3 * 3 * 2, 1 * 3 * 2)
    assert tiny.train.features["label"].names == ["yes", "no", "seven"] and tiny.num_classes == 3
    for split, count in ((tiny.train, 3), (tiny.test, 1)):
        pairs = list(zip(split["speaker_id"], split["label"]))
        assert len(set(split["speaker_id"])) == count
        assert all(pairs.count(pair) == 2 for pair in pairs)


def test_test_speakers_are_voices_never_heard_in_training(tiny):
    assert set(tiny.train["speaker_id"]).isdisjoint(tiny.test["speaker_id"])
    assert set(tiny.train["voice"]).isdisjoint(tiny.test["voice"])  # a distinct (language, variant) pair each
    voices = option_settings("dataset", "keywords")["voices"]
    variants = option_settings("dataset", "keywords")["variants"]
    for voice in set(tiny.train["voice"]) | set(tiny.test["voice"]):
        language, variant = voice.split("+")
        assert language in voices and variant in variants


def test_clips_are_one_second_of_16_khz_and_vary_within_the_speaker_settings(tiny):
    settings = option_settings("dataset", "keywords")
    for row in tiny.train.with_format("python"):
        clip, rate = samples(row)
        assert rate == 16_000 and clip.shape == (16_000,)
        assert settings["snr_db"][0] <= row["snr_db"] <= settings["snr_db"][1]
        assert abs(row["gain_db"]) <= settings["gain_db"]
    for speaker in set(tiny.train["speaker_id"]):
        rows = tiny.train.filter(lambda r, speaker=speaker: r["speaker_id"] == speaker)
        speeds, pitches = np.array(rows["speed"]), np.array(rows["pitch"])
        # one speaker's clips stay within its jitter of one speed and pitch, and differ from each other
        assert speeds.max() / speeds.min() <= (1 + settings["speed_jitter"]) / (1 - settings["speed_jitter"]) + 0.02
        assert pitches.max() - pitches.min() <= 2 * settings["pitch_jitter"] + 1
        assert len(set(rows["snr_db"])) == len(rows)


def test_clips_become_log_mel_spectrograms(tiny):
    assert tiny.input_shape == (1, 40, 98) and tiny.natural_id_column == "speaker_id"
    x, y = tiny.to_tensors(tiny.test)
    assert x.shape == (6, 1, 40, 98) and y.tolist() == list(tiny.test["label"])


def test_the_same_seed_gives_the_same_clips_whatever_the_cache_or_the_workers(tiny, tmp_path):
    again = load(tmp_path)  # generated anew, into another folder
    assert again.train["audio"] == tiny.train["audio"] and again.test["audio"] == tiny.test["audio"]
    settings = {**option_settings("dataset", "keywords"), **TINY, "espeak": "", "generator": 1}
    one = generate_keywords(settings, keywords_module.espeak_binary(), workers=1)
    four = generate_keywords(settings, keywords_module.espeak_binary(), workers=4)
    assert one["train"]["audio"] == four["train"]["audio"] and one["test"]["voice"] == four["test"]["voice"]
    other = load(tmp_path, seed=1)
    assert other.train["audio"] != tiny.train["audio"]


def test_a_second_load_reads_the_cache_without_espeak(tmp_path, monkeypatch):
    first = load(tmp_path)
    monkeypatch.setattr(keywords_module, "synthesize", lambda *args: pytest.fail("synthesized again"))
    second = load(tmp_path, num_mel_bins=20)  # the spectrogram is computed when rows are read: same clips
    assert second.train["audio"] == first.train["audio"] and second.input_shape == (1, 20, 98)
    assert len(list(tmp_path.iterdir())) == 1  # one folder, no staging left behind


@pytest.mark.parametrize(
    "change",
    [{"keywords": ["yes", "no"]}, {"num_speakers": 4}, {"num_test_speakers": 2}, {"repetitions": 3},
     {"voices": ["en-us"]}, {"variants": ["m1"]}, {"speed": [100, 200]}, {"pitch": [10, 90]}, {"speed_jitter": 0.2},
     {"pitch_jitter": 3}, {"gain_db": 3}, {"snr_db": [0, 20]}, {"seed": 1}, {"espeak": "another version"}],
    ids=lambda change: next(iter(change)),
)
def test_the_cache_key_changes_with_every_setting_that_changes_the_clips(change):
    settings = {**option_settings("dataset", "keywords"), **TINY, "espeak": "1.51", "generator": 1}
    for unkeyed in ("num_mel_bins", "frame_ms", "hop_ms", "cache_dir"):
        del settings[unkeyed]
    assert cache_key({**settings, **change}) != cache_key(settings)


def test_one_client_per_speaker_with_all_of_its_clips(tiny):
    node = OmegaConf.create({"_target_": "fedsim.data.NaturalIdPartitioner", "partition_by": None})
    partitioner = build_partitioner(node, tiny, num_clients=3, seed=0)
    seen = []
    for partition_id in range(3):
        partition = partitioner.load_partition(partition_id)
        assert len(set(partition["speaker_id"])) == 1 and len(partition) == 3 * 2
        seen += partition["speaker_id"]
    assert sorted(seen) == sorted(tiny.train["speaker_id"])


def test_render_resamples_places_and_adds_noise_at_the_signal_to_noise_ratio():
    speaker = Speaker("speaker_000", "en-us+m1", 150.0, 50.0, noise_exponent=0.0)
    utterance = Utterance(speaker, 0, 0, 150, 50, gain_db=0.0, snr_db=20.0, position=1.0)
    # 0.5 s of a 1 kHz tone at 22,050 Hz with 0.1 s of silence before and after it
    t = np.arange(int(0.5 * 22_050)) / 22_050
    speech = np.concatenate([np.zeros(2_205), 0.3 * np.sin(2 * np.pi * 1000 * t), np.zeros(2_205)])
    clip = render(speech, utterance, np.random.default_rng(0)).astype(np.float64) / 32767
    # the tone (8,000 samples at 16 kHz, peak-normalized to 0.5) ends the clip (position 1); noise before it
    word, room = clip[8_000:], clip[:8_000]
    noise_rms = np.sqrt(np.mean(room**2))
    spectrum = np.abs(np.fft.rfft(word))
    assert np.fft.rfftfreq(len(word), 1 / 16_000)[spectrum.argmax()] == pytest.approx(1000.0, abs=2.0)
    assert 2 * spectrum.max() / len(word) == pytest.approx(0.5, abs=0.01)  # the tone's amplitude
    assert 20 * np.log10((0.5 / np.sqrt(2)) / noise_rms) == pytest.approx(20.0, abs=0.5)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_noise_power_falls_as_frequency_to_the_minus_exponent(exponent):
    noise = colored_noise(np.random.default_rng(0), 16_000, exponent)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
    frequencies = np.fft.rfftfreq(16_000)[10:]
    power = np.abs(np.fft.rfft(noise))[10:] ** 2
    slope = np.polyfit(np.log(frequencies), np.log(power), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.1)


BAD_SETTINGS = [
    ({"keywords": ["yes", "hello"]}, "dataset.keywords: 'hello' is not a word of Speech Commands; the words are "),
    ({"keywords": ["yes"]}, "dataset.keywords must name at least 2 words (got ['yes'])."),
    ({"keywords": ["yes", "no", "yes"]}, "dataset.keywords names yes more than once; name each word once."),
    ({"num_speakers": 0}, "dataset.num_speakers must be at least 1 (got 0)."),
    ({"num_test_speakers": 0}, "dataset.num_test_speakers must be at least 1 (got 0)."),
    ({"repetitions": 0}, "dataset.repetitions must be at least 1 (got 0)."),
    ({"speed": [60, 200]},
     "dataset.speed must be [lowest, highest] words per minute with 80 <= lowest <= highest <= 450 (got [60, 200])."),
    ({"pitch": [80, 20]},
     "dataset.pitch must be [lowest, highest] (espeak-ng's pitch) with 0 <= lowest <= highest <= 99 (got [80, 20])."),
    ({"speed_jitter": 0.5}, "dataset.speed_jitter must be in [0, 0.5) (got 0.5)."),
    ({"pitch_jitter": -1}, "dataset.pitch_jitter must be between 0 and 20 (got -1)."),
    ({"gain_db": 30}, "dataset.gain_db must be between 0 and 20 decibels (got 30)."),
    ({"snr_db": [10]}, "dataset.snr_db must be [lowest, highest] decibels with -10 <= lowest <= highest <= 60 (got [10])."),
    ({"num_mel_bins": 0}, "dataset.num_mel_bins must be between 1 and 128 (got 0)."),
    ({"hop_ms": 40}, "dataset.hop_ms must be greater than 0 and at most dataset.frame_ms=30 (got 40)."),
    ({"frame_ms": 2, "hop_ms": 1, "num_mel_bins": 40},
     "dataset.num_mel_bins=40 is more than the 17 frequency bins a 2 ms window gives; lower it or lengthen dataset.frame_ms."),
    ({"voices": ["en-us", "en-mars"]}, "dataset.voices: 'en-mars' is not what espeak-ng has; 'espeak-ng --voices' lists them"),
    ({"variants": ["m1", "robot9"]},
     "dataset.variants: 'robot9' is not what espeak-ng has; 'espeak-ng --voices=variant' lists them"),
    ({"voices": ["en-us"], "variants": ["m1", "f1"]},
     "dataset.num_speakers + dataset.num_test_speakers = 4 speakers need as many (voice, variant) pairs, but "
     "dataset.voices x dataset.variants has 2."),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS, ids=[str(s) for s, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_sentence_before_anything_is_synthesized(settings, message, tmp_path, monkeypatch):
    monkeypatch.setattr(keywords_module, "synthesize", lambda *args: pytest.fail("synthesized"))
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, **settings)
    text = str(raised.value)
    assert text.startswith(message) and text.endswith(".") and "\n" not in text


def test_a_missing_espeak_ng_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as raised:
        load(tmp_path)
    assert str(raised.value) == (
        "dataset=keywords synthesizes its clips with espeak-ng, which is not on the PATH; install it "
        "(Debian: apt-get install espeak-ng)."
    )
