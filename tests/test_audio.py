from pathlib import Path

import numpy as np
import pytest

from talkinghead.audio import audio_features, frame_count, mel_filterbank
from talkinghead.load import SAMPLE_RATE, AudioClip

from .helpers import tone


def _clip(samples: np.ndarray) -> AudioClip:
    return AudioClip(path=Path("x.wav"), samples=samples.astype(np.float32),
                     sample_rate=SAMPLE_RATE, channels=1)


def test_frame_count_rounds_to_the_nearest_frame():
    assert frame_count(1.0, 25) == 25
    assert frame_count(1.019, 25) == 25
    assert frame_count(1.021, 25) == 26
    assert frame_count(0.001, 25) == 1


def test_mel_filterbank_covers_the_spectrum():
    bank = mel_filterbank()
    assert bank.shape == (80, 257)
    assert (bank.sum(axis=0)[3:-3] > 0).all()  # every bin above DC belongs to some filter
    peaks = bank.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # filters in frequency order


@pytest.mark.parametrize("fps", [25.0, 30.0, 40.0])
def test_features_have_one_row_per_video_frame(fps):
    features = audio_features(_clip(tone(2.0)), fps)
    assert features.n_frames == frame_count(2.0, fps)
    for name in ("mel", "energy", "speech_energy", "centroid", "pitch", "voicing"):
        values = getattr(features, name)
        assert values.shape[0] == features.n_frames and np.isfinite(values).all()


@pytest.mark.parametrize("freq", [110.0, 220.0])
def test_pitch_and_voicing_of_a_harmonic_tone(freq):
    features = audio_features(_clip(tone(1.0, freq=freq)), 25.0)
    middle = slice(3, -3)
    assert np.median(features.pitch[middle]) == pytest.approx(freq, rel=0.03)
    assert (features.voicing[middle] > 0.8).all()


def test_noise_is_unvoiced_and_silence_is_quiet():
    rng = np.random.default_rng(0)
    samples = np.concatenate([0.2 * rng.standard_normal(16_000), np.zeros(16_000)])
    f = audio_features(_clip(samples), 25.0)
    assert (f.pitch[2:20] == 0).mean() > 0.8
    assert f.energy[30:45].max() < f.energy[2:20].min() - 40
    assert f.speech_energy[30:45].max() < -90


def test_speech_band_energy_tracks_a_burst_in_the_right_frames():
    samples = np.zeros(2 * SAMPLE_RATE, np.float32)
    samples[SAMPLE_RATE : SAMPLE_RATE + 8000] = tone(0.5, freq=300)  # frames 25..37 at 25 fps
    f = audio_features(_clip(samples + 1e-4), 25.0)
    loud = np.flatnonzero(f.speech_energy > f.speech_energy.max() - 20)
    assert loud.min() in (24, 25) and loud.max() in (37, 38)


def test_phones_do_not_depend_on_the_clips_decoded_before(speech):
    """pocketsphinx adapts to every utterance: each clip must be decoded as if it came first
    (an Avatar or a batch worker decodes many in one process; same seed, same video)."""
    from talkinghead.audio import recognize_phones
    from talkinghead.load import load_audio

    samples = load_audio(speech).samples
    first, second = _clip(samples[: 3 * SAMPLE_RATE]), _clip(samples[3 * SAMPLE_RATE : 5 * SAMPLE_RATE])
    alone = recognize_phones(second)
    recognize_phones(second)
    recognize_phones(first)
    assert recognize_phones(second) == alone
