"""Log-mel spectrograms (fedsim.data.audio): the mel scale, the filters, the frames, decoding clips."""

import io
import math

import numpy as np
import pytest
import soundfile
import torch

from fedsim.data.audio import (
    LogMelSpectrogram,
    decode_clips,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
)


def wav(samples: np.ndarray, sample_rate: int = 16_000) -> dict:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return {"bytes": buffer.getvalue(), "path": None}


def tone(hz: float, amplitude: float = 0.5, length: int = 16_000) -> torch.Tensor:
    return amplitude * torch.sin(2 * math.pi * hz * torch.arange(length, dtype=torch.float64) / 16_000).float()


def test_the_htk_mel_scale():
    # HTK's scale is built so that 1000 Hz is 1000 mel; 700 Hz is 2595 log10(2) mel
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.05)
    assert hz_to_mel(700.0) == pytest.approx(2595 * math.log10(2))
    assert mel_to_hz(hz_to_mel(np.array([20.0, 440.0, 7600.0]))) == pytest.approx([20.0, 440.0, 7600.0])


def test_each_filter_is_a_triangle_between_its_neighbours_centres():
    filters = mel_filterbank(512, 10, 16_000, 20.0, 7600.0).numpy()
    assert filters.shape == (257, 10)
    edges = [700 * (10 ** (m / 2595) - 1) for m in np.linspace(2595 * math.log10(1 + 20 / 700),
                                                                   2595 * math.log10(1 + 7600 / 700), 12)]
    bin_hz = np.arange(257) * 16_000 / 512
    for m in range(10):
        lower, centre, upper = edges[m], edges[m + 1], edges[m + 2]
        outside = (bin_hz <= lower) | (bin_hz >= upper)
        assert np.all(filters[outside, m] == 0)
        inside = np.flatnonzero(~outside)
        expected = np.minimum((bin_hz[inside] - lower) / (centre - lower), (upper - bin_hz[inside]) / (upper - centre))
        assert filters[inside, m] == pytest.approx(expected, abs=1e-6)
        assert filters[:, m].argmax() in (np.abs(bin_hz - centre).argsort()[:2])  # peaks at a bin next to its centre


def test_frames_and_shape_follow_the_window_and_hop():
    features = LogMelSpectrogram(num_mel_bins=40, frame_ms=30, hop_ms=10)
    assert (features.frame_length, features.hop_length) == (480, 160)
    assert features.input_shape == (1, 40, 98)  # 1 + (16000 - 480) // 160 frames
    assert LogMelSpectrogram(num_mel_bins=10, frame_ms=40, hop_ms=20).input_shape == (1, 10, 49)  # Hello Edge's frames
    assert features.spectrogram(torch.zeros(3, 16_000)).shape == (3, 1, 40, 98)
    assert features.log_mel(torch.zeros(3, 16_000)).shape == (3, 40, 98)


@pytest.mark.parametrize("hz", [300.0, 1000.0, 3000.0])
def test_a_tone_lights_the_band_whose_centre_is_nearest(hz):
    features = LogMelSpectrogram(num_mel_bins=20)
    bands = features.log_mel(tone(hz)[None])[0].mean(dim=1)
    centres = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(7600.0), 22))[1:-1]
    assert int(bands.argmax()) == int(np.abs(centres - hz).argmin())


def test_the_power_is_the_amplitude_squared_over_four_and_ten_times_louder_is_log_100_more():
    features = LogMelSpectrogram(num_mel_bins=20)
    # a sine of amplitude a puts about (a / 2)^2 into the band around it (Hann's main lobe, under a filter near 1)
    quiet, loud = (features.log_mel(tone(1000.0, amplitude)[None])[0] for amplitude in (0.05, 0.5))
    band = int(quiet.mean(dim=1).argmax())
    assert float(loud[band].mean()) == pytest.approx(math.log(0.25**2), abs=0.3)
    # far above the floor (1e-6), 10 times the amplitude adds log(100) to the log energy
    assert torch.allclose(loud[band] - quiet[band], torch.full((98,), math.log(100.0)), atol=0.01)


def test_silence_is_the_floor_of_minus_60_decibels():
    log_mel = LogMelSpectrogram().log_mel(torch.zeros(1, 16_000))
    assert torch.allclose(log_mel, torch.full_like(log_mel, math.log(1e-6)))
    silent = LogMelSpectrogram().spectrogram(torch.zeros(1, 16_000))
    assert torch.all(silent == silent.flatten()[0]) and silent.abs().max() < 0.5  # constant, near 0


def test_each_spectrogram_is_standardized_over_its_own_bins_and_frames():
    features = LogMelSpectrogram()
    clips = torch.stack([tone(500.0, 0.02) + 0.001 * torch.randn(16_000), tone(2000.0, 0.4)])
    spectrograms = features.spectrogram(clips)
    assert torch.allclose(spectrograms.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(spectrograms.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-4)
    log_mel = features.log_mel(clips[:1])
    assert torch.allclose(spectrograms[0, 0], (log_mel[0] - log_mel.mean()) / log_mel.std(), atol=1e-4)
    # the gain of a clip whose energy is above the floor (1e-6) in every band barely changes its features
    # (its quietest bands hold 8 times the floor, so 4 times the amplitude moves them by up to 0.08)
    noisy = 0.2 * torch.randn(1, 16_000, generator=torch.Generator().manual_seed(0)) + tone(2000.0, 0.4)
    assert torch.allclose(features.spectrogram(4 * noisy), features.spectrogram(noisy), atol=0.1)
    assert not torch.allclose(features.log_mel(4 * noisy), features.log_mel(noisy), atol=1.0)


def test_a_clip_gets_the_same_features_alone_as_among_other_clips():
    # nothing is pooled over a batch (or a client, or a speaker): a client's inputs are its clips' own
    rng = np.random.default_rng(0)
    clips = [wav(0.2 * rng.standard_normal(16_000)) for _ in range(3)]
    features = LogMelSpectrogram()
    together = features(clips)
    assert together.shape == (3, 1, 40, 98) and together.dtype == np.float32
    for row, clip in enumerate(clips):
        assert np.allclose(features([clip])[0], together[row], atol=1e-5)  # up to float rounding


def test_decoding_pads_short_clips_cuts_long_ones_and_reads_paths(tmp_path):
    samples = np.round(0.3 * np.sin(np.arange(20_000) / 7) * 32767) / 32767
    path = tmp_path / "long.wav"
    soundfile.write(path, samples, 16_000, subtype="PCM_16")
    short, long_from_path = decode_clips([wav(samples[:9_000]), {"bytes": None, "path": str(path)}], 16_000)
    assert short[:9_000] == pytest.approx(samples[:9_000], abs=1e-4)
    assert np.all(short[9_000:] == 0)
    assert long_from_path == pytest.approx(samples[:16_000], abs=1e-4)


def test_a_clip_of_another_sample_rate_is_refused():
    with pytest.raises(ValueError, match="audio at 8000 Hz"):
        decode_clips([wav(np.zeros(8_000), sample_rate=8_000)], 16_000)
