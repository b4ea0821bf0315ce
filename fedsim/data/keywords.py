"""Spoken keywords synthesized offline by espeak-ng: one speaker per voice setting, one client per speaker.

Each speaker is an espeak-ng voice (a language's accent plus a voice variant: ``en-gb+f2``)
at its own speed and pitch, in its own room (background noise of its own colour); it
says every keyword ``repetitions`` times with small random changes of speed, pitch,
gain, noise level and position in the one-second clip. The first ``num_speakers``
speakers train, the others are the test split: voices never heard in training.
Everything is drawn from the seed; the clips are cached, keyed by every setting that
changes them and by espeak-ng's version.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from fedsim.config.checks import ConfigError, require
from fedsim.data.audio import SAMPLE_RATE, LogMelSpectrogram, check_spectrogram
from fedsim.data.dataset import FederatedData
from fedsim.data.speech_commands import check_keywords

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22_050  # espeak-ng writes 22,050 Hz; 16,000 / 22,050 = 320 / 441
SPEED_LIMITS = (80, 450)  # espeak-ng's words per minute
PITCH_LIMITS = (0, 99)
# Bumped whenever the generator changes what it writes for the same settings: old caches are then not read.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: an espeak-ng voice, its speed (words per minute), pitch (0-99) and noise colour."""

    speaker_id: str
    voice: str
    speed: float
    pitch: float
    noise_exponent: float  # the noise's power falls as frequency^-exponent: 0 white, 1 pink, 2 brown


@dataclass(frozen=True)
class Utterance:
    """One clip: who says which keyword, how (espeak-ng's integer speed and pitch), how loud and where."""

    speaker: Speaker
    label: int
    repetition: int
    speed: int
    pitch: int
    gain_db: float
    snr_db: float
    position: float  # where the word starts, as a share of the room the clip leaves it


def espeak_binary() -> str:
    """The espeak-ng executable; ConfigError if it is not installed."""
    binary = shutil.which(ESPEAK)
    if binary is None:
        raise ConfigError(
            "dataset=keywords synthesizes its clips with espeak-ng, which is not on the PATH; install it "
            "(Debian: apt-get install espeak-ng)."
        )
    return binary


def espeak_version(binary: str) -> str:
    """espeak-ng's version line ("eSpeak NG text-to-speech: 1.51 ..."), part of the cache key."""
    return subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.split("  Data")[0]


def available_voices(binary: str) -> tuple[set[str], set[str]]:
    """The languages (``en-gb``, ``en-us``, ...) and voice variants (``m3``, ``f2``, ...) espeak-ng has."""

    def files(listing: str, column: int) -> set[str]:
        rows = listing.splitlines()[1:]  # a header line, then one voice per line
        return {row.split()[column] for row in rows if len(row.split()) > column}

    languages = subprocess.run([binary, "--voices"], capture_output=True, text=True, check=True).stdout
    variants = subprocess.run([binary, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    return files(languages, 1), {path.split("/")[-1] for path in files(variants, 4)}


def check_range(setting: str, values: Sequence[float], limits: tuple[float, float], unit: str) -> None:
    """Raise ConfigError unless ``dataset.<setting>`` is [low, high] with limits[0] <= low <= high <= limits[1]."""
    low, high = limits
    require(
        len(values) == 2 and low <= values[0] <= values[1] <= high,
        f"dataset.{setting} must be [lowest, highest] {unit} with {low} <= lowest <= highest <= {high} "
        f"(got {list(values)}).",
    )


def check_settings(
    *,
    num_speakers: int,
    num_test_speakers: int,
    repetitions: int,
    speed: list[float],
    pitch: list[float],
    speed_jitter: float,
    pitch_jitter: float,
    gain_db: float,
    snr_db: list[float],
) -> None:
    """Raise ConfigError, with one sentence naming the setting, unless every number is in range."""
    require(num_speakers >= 1, f"dataset.num_speakers must be at least 1 (got {num_speakers}).")
    require(num_test_speakers >= 1, f"dataset.num_test_speakers must be at least 1 (got {num_test_speakers}).")
    require(repetitions >= 1, f"dataset.repetitions must be at least 1 (got {repetitions}).")
    check_range("speed", speed, SPEED_LIMITS, "words per minute")
    check_range("pitch", pitch, PITCH_LIMITS, "(espeak-ng's pitch)")
    require(0 <= speed_jitter < 0.5, f"dataset.speed_jitter must be in [0, 0.5) (got {speed_jitter}).")
    require(0 <= pitch_jitter <= 20, f"dataset.pitch_jitter must be between 0 and 20 (got {pitch_jitter}).")
    require(0 <= gain_db <= 20, f"dataset.gain_db must be between 0 and 20 decibels (got {gain_db}).")
    check_range("snr_db", snr_db, (-10, 60), "decibels")


def draw_speakers(
    rng: np.random.Generator, count: int, voices: list[str], variants: list[str], speed: list[float], pitch: list[float]
) -> list[Speaker]:
    """``count`` speakers, each a distinct (voice, variant) pair with its own speed, pitch and noise colour."""
    pairs = rng.choice(len(voices) * len(variants), size=count, replace=False)
    return [
        Speaker(
            speaker_id=f"speaker_{index:03d}",
            voice=f"{voices[pair // len(variants)]}+{variants[pair % len(variants)]}",
            speed=float(rng.uniform(*speed)),
            pitch=float(rng.uniform(*pitch)),
            noise_exponent=float(rng.uniform(0.0, 2.0)),
        )
        for index, pair in enumerate(pairs)
    ]


def draw_utterances(
    rng: np.random.Generator,
    speaker: Speaker,
    num_keywords: int,
    repetitions: int,
    speed_jitter: float,
    pitch_jitter: float,
    gain_db: float,
    snr_db: list[float],
) -> list[Utterance]:
    """Every keyword ``repetitions`` times, each with its own small changes around the speaker's voice."""
    utterances = []
    for label in range(num_keywords):
        for repetition in range(repetitions):
            speed = speaker.speed * (1 + rng.uniform(-speed_jitter, speed_jitter))
            pitch = speaker.pitch + rng.uniform(-pitch_jitter, pitch_jitter)
            utterances.append(
                Utterance(
                    speaker=speaker,
                    label=label,
                    repetition=repetition,
                    speed=int(np.clip(round(speed), *SPEED_LIMITS)),
                    pitch=int(np.clip(round(pitch), *PITCH_LIMITS)),
                    gain_db=float(rng.uniform(-gain_db, gain_db)),
                    snr_db=float(rng.uniform(*snr_db)),
                    position=float(rng.uniform()),
                )
            )
    return utterances


def synthesize(binary: str, word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng saying ``word``: float32 samples at 22,050 Hz."""
    import soundfile

    done = subprocess.run(
        [binary, "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), word], capture_output=True, check=False
    )
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"espeak-ng could not say {word!r} as {voice}: {done.stderr.decode().strip()}")
    samples, _ = soundfile.read(io.BytesIO(done.stdout), dtype="float32")
    return samples


def colored_noise(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as frequency^-exponent, scaled to an RMS of 1."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    spectrum[1:] *= frequencies[1:] ** (-exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n=length)
    return noise / np.sqrt(np.mean(noise**2))


def render(speech: np.ndarray, utterance: Utterance, rng: np.random.Generator) -> np.ndarray:
    """A one-second 16 kHz clip (int16) of espeak-ng's ``speech`` (22,050 Hz), as ``utterance`` says.

    The speech is resampled to 16 kHz (polyphase, 320/441), its leading and trailing
    silence cut (below 1% of its peak: espeak-ng pads with zeros), peak-normalized to 0.5 and scaled by the
    utterance's gain; it starts at ``position`` of the room the second leaves it (a
    word longer than a second keeps its middle second). Noise of the speaker's colour
    is added at the utterance's signal-to-noise ratio (over the word).
    """
    from scipy.signal import resample_poly

    speech = resample_poly(speech.astype(np.float64), 320, 441)
    loud = np.flatnonzero(np.abs(speech) > 0.01 * np.abs(speech).max())
    speech = speech[loud[0] : loud[-1] + 1]
    if len(speech) > SAMPLE_RATE:
        start = (len(speech) - SAMPLE_RATE) // 2
        speech = speech[start : start + SAMPLE_RATE]
    speech = speech * (0.5 / np.abs(speech).max()) * 10 ** (utterance.gain_db / 20)
    clip = np.zeros(SAMPLE_RATE)
    start = round(utterance.position * (SAMPLE_RATE - len(speech)))
    clip[start : start + len(speech)] = speech
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (utterance.snr_db / 20)
    clip += noise_rms * colored_noise(rng, SAMPLE_RATE, utterance.speaker.noise_exponent)
    return np.round(np.clip(clip, -1, 1) * 32767).astype(np.int16)


def wav_bytes(clip: np.ndarray) -> bytes:
    """A 16 kHz 16-bit mono WAV file of ``clip``, as Speech Commands stores its clips."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, clip, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def generate_keywords(settings: dict, binary: str, workers: int | None = None) -> datasets.DatasetDict:
    """The train and test splits for ``settings`` (the keys of ``cache_key``), generated now.

    Every draw comes from generators seeded by ``settings["seed"]`` before any clip is
    synthesized; espeak-ng runs in ``workers`` parallel processes (default: the CPU
    count), and each clip's noise has its own generator, so the clips are the same
    whatever the number of workers or the order they finish in.
    """
    rng = np.random.default_rng(np.random.SeedSequence(settings["seed"], spawn_key=(0,)))
    count = settings["num_speakers"] + settings["num_test_speakers"]
    speakers = draw_speakers(rng, count, settings["voices"], settings["variants"], settings["speed"], settings["pitch"])
    utterances = [
        utterance
        for speaker in speakers
        for utterance in draw_utterances(
            rng, speaker, len(settings["keywords"]), settings["repetitions"], settings["speed_jitter"],
            settings["pitch_jitter"], settings["gain_db"], settings["snr_db"],
        )
    ]
    keywords = settings["keywords"]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:  # threads wait on the processes
        spoken = list(
            pool.map(lambda u: synthesize(binary, keywords[u.label], u.speaker.voice, u.speed, u.pitch), utterances)
        )
    clips = [
        wav_bytes(render(speech, u, np.random.default_rng(np.random.SeedSequence(settings["seed"], spawn_key=(1, i)))))
        for i, (speech, u) in enumerate(zip(spoken, utterances))
    ]
    test_speakers = {speaker.speaker_id for speaker in speakers[settings["num_speakers"] :]}
    features = datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLE_RATE, decode=False),
            "label": datasets.ClassLabel(names=list(keywords)),
            "speaker_id": datasets.Value("string"),
            "voice": datasets.Value("string"),
            "utterance_id": datasets.Value("int32"),
            "speed": datasets.Value("int32"),
            "pitch": datasets.Value("int32"),
            "gain_db": datasets.Value("float32"),
            "snr_db": datasets.Value("float32"),
        }
    )

    def split(in_test: bool) -> datasets.Dataset:
        chosen = [i for i, u in enumerate(utterances) if (u.speaker.speaker_id in test_speakers) == in_test]
        rows = {
            "audio": [{"bytes": clips[i], "path": None} for i in chosen],
            "label": [utterances[i].label for i in chosen],
            "speaker_id": [utterances[i].speaker.speaker_id for i in chosen],
            "voice": [utterances[i].speaker.voice for i in chosen],
            "utterance_id": [utterances[i].repetition for i in chosen],
            "speed": [utterances[i].speed for i in chosen],
            "pitch": [utterances[i].pitch for i in chosen],
            "gain_db": [utterances[i].gain_db for i in chosen],
            "snr_db": [utterances[i].snr_db for i in chosen],
        }
        table = pa.table({name: pa.array(values, type=features[name].pa_type) for name, values in rows.items()})
        return datasets.Dataset(table, info=datasets.DatasetInfo(features=features))

    return datasets.DatasetDict({"train": split(False), "test": split(True)})


def cache_key(settings: dict) -> str:
    """A digest of every setting that changes the clips (and of espeak-ng's version and the generator's)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


def cached_keywords(settings: dict, binary: str, cache_dir: str | None) -> datasets.DatasetDict:
    """The splits for ``settings`` from the cache, generated and stored there first if they are not.

    The cache is a folder per key under ``cache_dir``, by default ``fedsim_keywords`` in
    ``datasets``' cache (``HF_DATASETS_CACHE``, where the hub datasets are cached too),
    written by ``save_to_disk`` into a temporary folder that is then renamed: a process
    that finds the folder finds it complete, and two processes that generate the same
    clips at once keep one copy.
    """
    root = Path(cache_dir) if cache_dir is not None else Path(datasets.config.HF_DATASETS_CACHE) / "fedsim_keywords"
    folder = root / cache_key(settings)
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        splits = generate_keywords(settings, binary)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
        splits.save_to_disk(str(staging / "splits"))
        (staging / "splits" / "fedsim_settings.json").write_text(json.dumps(settings, indent=1, sort_keys=True))
        try:
            os.rename(staging / "splits", folder)
        except OSError:  # another process stored the same clips first
            if not folder.is_dir():
                raise
        shutil.rmtree(staging, ignore_errors=True)
    return datasets.load_from_disk(str(folder))


def load_keywords(
    *,
    keywords: list[str],
    num_speakers: int,
    num_test_speakers: int,
    repetitions: int,
    voices: list[str],
    variants: list[str],
    speed: list[float],
    pitch: list[float],
    speed_jitter: float,
    pitch_jitter: float,
    gain_db: float,
    snr_db: list[float],
    num_mel_bins: int,
    frame_ms: float,
    hop_ms: float,
    cache_dir: str | None,
    seed: int,
) -> FederatedData:
    """Synthetic spoken keywords (16 kHz, one second) as log-mel spectrograms; ``speaker_id`` is the natural id.

    ``partitioner=natural num_clients=<num_speakers>`` gives one client per speaker, all
    of whose clips it alone holds; the test split holds the ``num_test_speakers`` other
    speakers. The columns are those of ``dataset=speech_commands`` (``audio`` as WAV,
    ``label``, ``speaker_id``, ``utterance_id``) plus each clip's ``voice``, ``speed``,
    ``pitch``, ``gain_db`` and ``snr_db``.

    Parameters
    ----------
    keywords : list[str]
        At least two distinct words of Speech Commands (``fedsim.data.speech_commands.WORDS``); the classes.
    num_speakers, num_test_speakers : int
        Training and test speakers; at least 1 each, together at most ``len(voices) * len(variants)``.
    repetitions : int
        Times each speaker says each keyword; at least 1.
    voices, variants : list[str]
        espeak-ng languages (``espeak-ng --voices``) and voice variants (``espeak-ng --voices=variant``);
        each speaker gets a distinct pair.
    speed, pitch : list[float]
        [lowest, highest] of the speakers' speeds (words per minute, 80-450) and pitches (0-99).
    speed_jitter, pitch_jitter : float
        Each clip's speed is the speaker's times 1 +- up to ``speed_jitter`` ([0, 0.5)), its
        pitch the speaker's +- up to ``pitch_jitter`` (0-20).
    gain_db : float
        Each clip's gain is drawn within +- ``gain_db`` decibels (0-20).
    snr_db : list[float]
        [lowest, highest] signal-to-noise ratio of each clip, in decibels (-10 to 60).
    num_mel_bins, frame_ms, hop_ms
        The spectrogram (see ``fedsim.data.audio.LogMelSpectrogram``).
    cache_dir : str | None
        Folder of the cache; null: ``fedsim_keywords`` in ``datasets``' cache.
    seed : int
        Seed of every draw.
    """
    check_keywords(keywords)
    check_settings(
        num_speakers=num_speakers, num_test_speakers=num_test_speakers, repetitions=repetitions, speed=speed,
        pitch=pitch, speed_jitter=speed_jitter, pitch_jitter=pitch_jitter, gain_db=gain_db, snr_db=snr_db,
    )
    check_spectrogram(num_mel_bins, frame_ms, hop_ms)
    binary = espeak_binary()
    languages, known_variants = available_voices(binary)
    for setting, chosen, known, listing in (
        ("voices", voices, languages, "espeak-ng --voices"),
        ("variants", variants, known_variants, "espeak-ng --voices=variant"),
    ):
        unknown = [name for name in chosen if name not in known]
        require(
            len(chosen) >= 1 and not unknown,
            f"dataset.{setting}: {', '.join(map(repr, unknown)) or 'an empty list'} is not what espeak-ng has; "
            f"'{listing}' lists them (e.g. {', '.join(sorted(known)[:6])}).",
        )
    require(
        num_speakers + num_test_speakers <= len(voices) * len(variants),
        f"dataset.num_speakers + dataset.num_test_speakers = {num_speakers + num_test_speakers} speakers need as "
        f"many (voice, variant) pairs, but dataset.voices x dataset.variants has {len(voices) * len(variants)}.",
    )
    settings = {
        "keywords": list(keywords), "num_speakers": num_speakers, "num_test_speakers": num_test_speakers,
        "repetitions": repetitions, "voices": list(voices), "variants": list(variants),
        "speed": [float(v) for v in speed], "pitch": [float(v) for v in pitch], "speed_jitter": float(speed_jitter),
        "pitch_jitter": float(pitch_jitter), "gain_db": float(gain_db), "snr_db": [float(v) for v in snr_db],
        "seed": seed, "espeak": espeak_version(binary), "generator": GENERATOR_VERSION,
    }
    splits = cached_keywords(settings, binary, cache_dir)
    features = LogMelSpectrogram(num_mel_bins=num_mel_bins, frame_ms=frame_ms, hop_ms=hop_ms)
    return FederatedData(
        train=splits["train"],
        test=splits["test"],
        feature_columns=["audio"],
        label_column="label",
        input_shape=features.input_shape,
        num_classes=len(keywords),
        natural_id_column="speaker_id",
        features=features,
    )
