"""Stage 4, audio features: per video frame, from the 16 kHz waveform.

Log-mel spectrum, loudness, speech-band (300-3000 Hz) loudness, spectral centroid of the
speech band, pitch and voicing. Analysis runs on 25 ms windows every 10 ms; each video frame
averages the windows whose centres fall inside it, so every stage agrees on frame k covering
[k / fps, (k + 1) / fps).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from talkinghead.load import SAMPLE_RATE, AudioClip

N_MELS = 80
WINDOW = 400  # samples: 25 ms at 16 kHz
HOP = 160  # samples: 10 ms
N_FFT = 512
PITCH_WINDOW = 640  # samples: 40 ms, two periods of 50 Hz
PITCH_RANGE = (60.0, 500.0)  # Hz
VOICING_THRESHOLD = 0.45  # normalised autocorrelation peak above which a window is voiced
SPEECH_BAND = (300.0, 3000.0)  # Hz
FLOOR_DB = -100.0
BLOCK = 4096  # analysis windows processed at a time (about 41 s of audio)


@dataclass(frozen=True)
class AudioFeatures:
    fps: float
    mel: np.ndarray  # (T, 80) float32 log10 mel power
    energy: np.ndarray  # (T,) float32 dB full-band RMS
    speech_energy: np.ndarray  # (T,) float32 dB in SPEECH_BAND
    centroid: np.ndarray  # (T,) float32 Hz, spectral centroid within SPEECH_BAND
    pitch: np.ndarray  # (T,) float32 Hz, 0 where unvoiced
    voicing: np.ndarray  # (T,) float32 in [0, 1], autocorrelation peak
    phones: np.ndarray  # (T,) object: ARPAbet phone at each frame's centre ("" when skipped)

    @property
    def n_frames(self) -> int:
        return int(self.energy.shape[0])


def frame_count(duration: float, fps: float) -> int:
    """Video frames for ``duration`` seconds: the nearest whole number, at least one."""
    return max(1, round(duration * fps))


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = 16_000
                   ) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


def _frames(samples: np.ndarray, size: int, hop: int) -> Iterator[np.ndarray]:
    """Windows of ``size`` samples centred every ``hop`` samples (zero-padded at the ends),
    in blocks of at most BLOCK windows: (n, size) arrays, so memory stays flat with length."""
    padded = np.pad(samples, (size // 2, size // 2 + hop))
    n = 1 + (len(samples) - 1) // hop
    for start in range(0, n, BLOCK):
        index = np.arange(size)[None, :] + hop * np.arange(start, min(start + BLOCK, n))[:, None]
        yield padded[index]


def _pitch_windows(frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Pitch (Hz, 0 = unvoiced) and voicing of (n, PITCH_WINDOW) windows, by normalised
    autocorrelation."""
    window = np.hanning(PITCH_WINDOW)
    window_acf = np.correlate(window, window, "full")[PITCH_WINDOW - 1 :]
    window_acf = np.maximum(window_acf / window_acf[0], 1e-3)
    lo, hi = int(sample_rate / PITCH_RANGE[1]), int(sample_rate / PITCH_RANGE[0])
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames * window, n=2 * PITCH_WINDOW)
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[:, :PITCH_WINDOW]
    acf = acf / np.maximum(acf[:, :1], 1e-12) / window_acf
    band = acf[:, lo - 1 : hi + 1]
    local_max = (band[:, 1:-1] >= band[:, :-2]) & (band[:, 1:-1] >= band[:, 2:])
    values = band[:, 1:-1]
    best = values.max(axis=1, keepdims=True)
    # Every multiple of the period peaks too: take the shortest lag that is nearly the best.
    lag = lo + np.argmax(local_max & (values >= 0.9 * best), axis=1)
    peak = np.clip(acf[np.arange(len(lag)), lag], 0.0, 1.0)
    loud = (frames**2).mean(axis=1) > 1e-7
    voiced = (peak > VOICING_THRESHOLD) & loud
    return np.where(voiced, sample_rate / lag, 0.0), np.where(loud, peak, 0.0)


def _pitch(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Pitch (Hz, 0 = unvoiced) and voicing per 10 ms window."""
    pitches, voicings = [], []
    for frames in _frames(samples, PITCH_WINDOW, HOP):
        pitch, voicing = _pitch_windows(frames, sample_rate)
        pitches.append(pitch)
        voicings.append(voicing)
    return np.concatenate(pitches), np.concatenate(voicings)


def _spectral_windows(frames: np.ndarray, sample_rate: int) -> np.ndarray:
    """(n, 80 + 3) log-mel, power, speech-band power and its centroid of (n, WINDOW) windows."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    band = (freqs >= SPEECH_BAND[0]) & (freqs <= SPEECH_BAND[1])
    bank = _bank(sample_rate)
    power = np.abs(np.fft.rfft(frames * np.hanning(WINDOW), n=N_FFT)) ** 2 / WINDOW
    band_power = power[:, band].sum(axis=1)
    centroid = (power[:, band] * freqs[band]).sum(axis=1) / np.maximum(band_power, 1e-12)
    return np.column_stack([np.log10(power @ bank + 1e-10), power.sum(axis=1), band_power, centroid])


@lru_cache(maxsize=4)
def _bank(sample_rate: int) -> np.ndarray:
    return mel_filterbank(sample_rate=sample_rate).T


def _per_video_frame(values: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Average 10 ms analysis values (N, ...) into video frames (n_frames, ...)."""
    centres = np.arange(len(values)) * HOP / SAMPLE_RATE
    owner = np.clip(np.floor(centres * fps).astype(np.int64), 0, n_frames - 1)
    sums = np.zeros((n_frames, *values.shape[1:]), dtype=np.float64)
    np.add.at(sums, owner, values)
    counts = np.bincount(owner, minlength=n_frames).astype(np.float64)
    counts = counts.reshape((-1,) + (1,) * (values.ndim - 1))
    filled = counts[:, ...] > 0
    out = np.where(filled, sums / np.maximum(counts, 1), 0.0)
    if not filled.all():  # frames shorter than 10 ms (high fps) borrow the nearest window
        nearest = np.clip(np.round((np.arange(n_frames) + 0.5) / fps * SAMPLE_RATE / HOP), 0,
                          len(values) - 1).astype(np.int64)
        out = np.where(filled, out, values[nearest])
    return out


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


def audio_features(clip: AudioClip, fps: float, n_frames: int | None = None, *,
                   phones: bool = True) -> AudioFeatures:
    """Features for ``n_frames`` video frames (default: as many as the clip lasts); with
    ``phones`` the pocketsphinx phone track too (about 0.06 s per second of audio)."""
    n = frame_count(clip.duration, fps) if n_frames is None else n_frames
    x = clip.samples.astype(np.float64)
    windows = np.concatenate([_spectral_windows(frames, clip.sample_rate)
                              for frames in _frames(x, WINDOW, HOP)])  # (N, 80 + 3) per 10 ms
    pitch, voicing = _pitch(x, clip.sample_rate)
    m = min(len(windows), len(pitch))
    per_frame = _per_video_frame(np.column_stack([windows[:m], voicing[:m]]), n, fps)
    # Pitch is averaged over voiced windows only.
    voiced_sum = _per_video_frame(np.column_stack([pitch[:m], pitch[:m] > 0]), n, fps)
    mean_pitch = np.where(voiced_sum[:, 1] >= 0.5, voiced_sum[:, 0] / np.maximum(voiced_sum[:, 1], 1e-9), 0.0)

    return AudioFeatures(
        fps=fps,
        mel=per_frame[:, :N_MELS].astype(np.float32),
        energy=_db(per_frame[:, N_MELS]).astype(np.float32),
        speech_energy=_db(per_frame[:, N_MELS + 1]).astype(np.float32),
        centroid=per_frame[:, N_MELS + 2].astype(np.float32),
        pitch=mean_pitch.astype(np.float32),
        voicing=per_frame[:, N_MELS + 3].astype(np.float32),
        phones=(phone_track(recognize_phones(clip), fps, n) if phones
                else np.full(n, "", dtype=object)),
    )


# Phones: CMU/ARPAbet labels from pocketsphinx's English phone recognizer. It is used as an
# approximation for every language: it still marks lip closures and open vowels.
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
BILABIALS = frozenset({"P", "B", "M"})
PHONE_FRAME = 0.01  # seconds per pocketsphinx frame


@dataclass(frozen=True)
class Phone:
    label: str  # ARPAbet phone, or "SIL"
    start: float  # seconds
    end: float  # seconds, exclusive


@lru_cache(maxsize=1)
def _phone_decoder():
    import os

    from pocketsphinx import Decoder, get_model_path

    models = Path(get_model_path()) / "en-us"
    return Decoder(hmm=str(models / "en-us"), allphone=str(models / "en-us-phone.lm.bin"),
                   lw=2.0, pip=0.3, beam=1e-20, pbeam=1e-20, logfn=os.devnull)


def preload_phone_decoder() -> None:
    """Load the next clip's phone decoder now (0.15 s), so that the clip does not wait."""
    _phone_decoder()


def recognize_phones(clip: AudioClip) -> list[Phone]:
    """Phone segments of the clip, by pocketsphinx phone recognition (about 0.06 s per s).

    Each clip gets a decoder that has heard nothing (0.15 s to load): pocketsphinx adapts its
    state to every utterance it decodes, so a clip's phones (and the video's motion) would
    otherwise depend on the clips decoded before it in the process (an Avatar's, a batch
    worker's), not on the seed alone."""
    pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    decoder = _phone_decoder()  # loaded ahead, or now
    _phone_decoder.cache_clear()  # used once
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    return [Phone(seg.word, seg.start_frame * PHONE_FRAME, (seg.end_frame + 1) * PHONE_FRAME)
            for seg in decoder.seg()]


def phone_track(phones: list[Phone], fps: float, n_frames: int) -> np.ndarray:
    """(T,) the phone label at each video frame's centre ("" where none)."""
    track = np.full(n_frames, "", dtype=object)
    centres = (np.arange(n_frames) + 0.5) / fps
    for phone in phones:
        track[(centres >= phone.start) & (centres < phone.end)] = phone.label
    return track


# Streaming: the same features as audio arrives, for the streaming engine (``stream.py``).
PHONE_UTTERANCE = (8.0, 20.0)  # seconds: an utterance ends at the first pause after the
# first, and at the second in any case (the decoder's partial backtrace grows with it)


class FeatureStream:
    """Stage 4's per-frame features (all but phones) for audio that arrives in pieces.

    ``push`` appends 16 kHz samples; ``analyse(upto)`` gives frames [``done``, upto) once
    their analysis windows lie inside the audio received (``available``), or all of them
    after ``finish`` (the end zero-padded, as ``audio_features`` pads it); ``provisional``
    analyses frames ahead of that, the audio past a given sample taken as silence, without
    moving on (the streaming engine's last frame of a window). Memory stays flat:
    samples no window needs any more are dropped. Each frame averages the 10 ms windows whose
    centres fall inside it, as ``audio_features`` does (the last frame does not take the
    windows past the clip's end, so it can differ there)."""

    def __init__(self, fps: float, sample_rate: int = SAMPLE_RATE) -> None:
        self.fps, self.sample_rate = fps, sample_rate
        self.done = 0  # frames analysed
        self.received = 0  # samples pushed
        self.finished = False
        self._buffer = np.zeros(0)  # samples from absolute index ``_base``
        self._base = 0

    def push(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float64)])
        self.received += len(samples)

    def finish(self) -> None:
        self.finished = True

    def _windows(self, first: int, end: int) -> np.ndarray:
        """Indices of the analysis windows owned by frames [first, end)."""
        per_frame = self.sample_rate / (self.fps * HOP)
        j = np.arange(max(0, int(first * per_frame) - 2), int(np.ceil(end * per_frame)) + 2)
        owner = np.floor(j * HOP / self.sample_rate * self.fps).astype(np.int64)
        return j[(owner >= first) & (owner < end)]

    def available(self, received: int | None = None) -> int:
        """Frames whose every window lies inside the audio received so far (or inside the
        first ``received`` samples)."""
        if self.finished and received is None:
            return frame_count(self.received / self.sample_rate, self.fps)
        received = self.received if received is None else min(received, self.received)
        n = int(received / self.sample_rate * self.fps) + 1
        while n > self.done:
            last = self._windows(n - 1, n)
            if len(last) and last[-1] * HOP + PITCH_WINDOW // 2 <= received:
                return n
            n -= 1
        return self.done

    def analyse(self, upto: int) -> dict[str, np.ndarray]:
        """Features of frames [done, upto): mel (n, 80), energy, speech_energy, centroid,
        pitch, voicing (n,), as in ``AudioFeatures``."""
        upto = max(upto, self.done)
        features = self._features(self.done, upto)
        self.done = upto
        keep_from = (int(self._windows(upto, upto + 1)[0]) * HOP - PITCH_WINDOW // 2 if not self.finished
                     else self._base)
        if keep_from > self._base:
            self._buffer = self._buffer[keep_from - self._base :]
            self._base = keep_from
        return features

    def provisional(self, upto: int, limit: int) -> dict[str, np.ndarray]:
        """``analyse``'s features of frames [done, upto), the audio past sample ``limit`` taken
        as silence, without moving on: the frames are analysed again once their audio is in."""
        return self._features(self.done, max(upto, self.done), limit)

    def _features(self, first: int, upto: int, limit: int | None = None) -> dict[str, np.ndarray]:
        j = self._windows(first, upto)
        n = upto - first
        if len(j) == 0:
            zeros = np.zeros(n, np.float32)
            return dict(mel=np.zeros((n, N_MELS), np.float32), energy=zeros + FLOOR_DB,
                        speech_energy=zeros + FLOOR_DB, centroid=zeros, pitch=zeros, voicing=zeros)
        half = PITCH_WINDOW // 2
        start = int(j[0]) * HOP - half  # absolute sample index of the span's first sample
        span = np.zeros(int(j[-1] - j[0]) * HOP + PITCH_WINDOW)
        lo, hi = max(start, self._base), min(start + len(span), self._base + len(self._buffer))
        if limit is not None:
            hi = min(hi, limit)
        if hi > lo:
            span[lo - start : hi - start] = self._buffer[lo - self._base : hi - self._base]
        offsets = (j - j[0]) * HOP
        pitch_frames = span[offsets[:, None] + np.arange(PITCH_WINDOW)[None, :]]
        spectral_frames = span[offsets[:, None] + half - WINDOW // 2 + np.arange(WINDOW)[None, :]]
        windows = _spectral_windows(spectral_frames, self.sample_rate)
        pitch, voicing = _pitch_windows(pitch_frames, self.sample_rate)
        owner = np.floor(j * HOP / self.sample_rate * self.fps).astype(np.int64) - first
        counts = np.maximum(np.bincount(owner, minlength=n), 1).astype(np.float64)

        def mean(values: np.ndarray) -> np.ndarray:
            sums = np.zeros((n, *values.shape[1:]))
            np.add.at(sums, owner, values)
            return sums / counts.reshape((-1,) + (1,) * (values.ndim - 1))

        per_frame = mean(np.column_stack([windows, voicing]))
        voiced = mean(np.column_stack([pitch, pitch > 0]))
        mean_pitch = np.where(voiced[:, 1] >= 0.5, voiced[:, 0] / np.maximum(voiced[:, 1], 1e-9), 0.0)
        return dict(mel=per_frame[:, :N_MELS].astype(np.float32),
                    energy=_db(per_frame[:, N_MELS]).astype(np.float32),
                    speech_energy=_db(per_frame[:, N_MELS + 1]).astype(np.float32),
                    centroid=per_frame[:, N_MELS + 2].astype(np.float32),
                    pitch=mean_pitch.astype(np.float32),
                    voicing=per_frame[:, N_MELS + 3].astype(np.float32))


class PhoneStream:
    """Phones for audio that arrives in pieces: pocketsphinx fed as the audio comes, its
    current best path read back whenever asked. Phones near the end of the audio heard so far
    are provisional (the best path can still change there); the engine reads them only for
    frames it has not committed yet. An utterance ends at a pause after PHONE_UTTERANCE[0]
    seconds, or at PHONE_UTTERANCE[1], so the decoder's work per read stays bounded. One
    decoder per stream, that has heard nothing before (see ``recognize_phones``)."""

    def __init__(self) -> None:
        self._decoder = _phone_decoder()
        _phone_decoder.cache_clear()  # used once
        self._decoder.start_utt()
        self._utterance_start = 0.0  # seconds
        self._utterance_samples = 0
        self._final: list[Phone] = []  # from ended utterances, not yet read past

    def push(self, samples: np.ndarray, *, pause: bool = False, last: bool = False) -> None:
        """Feed 16 kHz samples. ``pause``: the audio just fed ends in a pause (an utterance
        may end here); ``last``: no more audio comes."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        if len(pcm):  # pocketsphinx refuses an empty buffer (a stream ending on a window's edge)
            self._decoder.process_raw(pcm.tobytes(), full_utt=False)
        self._utterance_samples += len(pcm)
        seconds = self._utterance_samples / SAMPLE_RATE
        if last or seconds >= PHONE_UTTERANCE[1] or (pause and seconds >= PHONE_UTTERANCE[0]):
            self._decoder.end_utt()
            self._final.extend(self._segments())
            self._utterance_start += seconds
            self._utterance_samples = 0
            if not last:
                self._decoder.start_utt()

    def _segments(self) -> list[Phone]:
        offset = self._utterance_start
        return [Phone(seg.word, offset + seg.start_frame * PHONE_FRAME,
                      offset + (seg.end_frame + 1) * PHONE_FRAME) for seg in self._decoder.seg()]

    def track(self, first: int, n: int, fps: float) -> np.ndarray:
        """(n,) the phone at the centres of frames [first, first + n) as heard so far; frames
        before ``first`` are never asked for again."""
        start = first / fps
        self._final = [p for p in self._final if p.end > start]
        current = self._segments() if self._utterance_samples else []
        track = np.full(n, "", dtype=object)
        centres = (np.arange(first, first + n) + 0.5) / fps
        for phone in self._final + current:
            track[(centres >= phone.start) & (centres < phone.end)] = phone.label
        return track
