"""The synthetic training corpus: espeak-ng speech with motion built from its exact phonemes.

One command remakes it (``talkinghead corpus --out DIR --seed S --minutes M``); the same seed
gives the same shards. Each clip is:

- speech: random sentences from small word lists in 16 languages, spoken by espeak-ng voices
  and variants at random rate, pitch, pitch range and loudness (shifted by the clip's emotion),
  with pauses between phrases; then augmented (speed and pitch by resampling, reverb, noise,
  band-limiting and 8-bit mu-law as cheap codecs, gain);
- lips and jaw: a viseme coarticulation model over espeak's phoneme events (each phoneme
  pulls the mouth toward its viseme with a dominance that decays away from its centre;
  bilabials dominate strongly, so /p b m/ close the lips; rounded vowels round, open vowels
  open the jaw; the lips lead the sound by ANTICIPATION);
- head, brows, blinks, gaze: seeded processes coupled to the audio (livelier while speaking,
  nods and brow raises on pitch accents, blinks more likely as pauses begin, gaze shifts),
  scaled by the clip's emotion, with the emotion's expression offsets on top;
- controls: the clip's gaze direction, head distance and emotion (one-hot x intensity).

Motion is relative to a neutral source (pose 0, scale = head distance, expression 0, gaze 0),
as the generators produce it around a photo's own motion. Audio features are the project's own
(``audio.audio_features``) so training sees exactly what rendering sees.

Shards are ``shard-NNN.npz``: per-frame arrays of all clips concatenated (``offsets`` marks
the clips), plus ``corpus.json`` with the seed, the command and the statistics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from talkinghead.audio import AudioFeatures, audio_features
from talkinghead.controls import EMOTION_ENERGY, EMOTION_PITCH, EMOTIONS, emotion_offsets
from talkinghead.generator import PHONE_SET, phone_indices
from talkinghead.load import SAMPLE_RATE, AudioClip
from talkinghead.motion import _smooth, blink_track, speech_activity
from talkinghead.motionspace import (
    EXPRESSION_NAMES,
    GAZE_NAMES,
    MOTION_NAMES,
    POSE_NAMES,
    expression_index,
)

FPS = 25.0
ANTICIPATION = 0.03  # seconds: the lips reach a viseme this much before its sound


@dataclass(frozen=True)
class Calibration:
    """Scales of the corpus's hand-set motion, measured against real videos by
    ``bench/calibrate.py`` (``talkinghead corpus --calibration FILE``); the default changes
    nothing (it makes the corpus the shipped weights were trained on)."""

    head_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # yaw, pitch, roll movement
    sway_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the speech-coupled sway, on top
    fast_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the quick movements, on top
    jaw_scale: float = 1.0  # the jaw's articulation
    blink_rate_scale: float = 1.0
    blink_length_scale: float = 1.0
    anticipation_s: float = ANTICIPATION  # the lips' lead over the sound

    @classmethod
    def load(cls, path: Path) -> Calibration:
        data = json.loads(Path(path).read_text())
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["calibration"].items()})


CALIBRATION = Calibration()  # what clips are made with (set by generate_corpus; forks inherit it)

# Word lists: enough to make varied, pronounceable sentences in each voice's language.
WORDS: dict[str, str] = {
    "en-us": "people maybe about because before number problem both open window moment blue "
             "water morning happy time father mother book music good small power simple table "
             "over under wonderful people important always",
    "en": "bright morning my brother bought some apples by the harbour we often walk home "
          "beautiful weather perhaps tomorrow lovely garden pumpkin",
    "de": "guten morgen bitte danke mutter vater wasser brot immer manchmal schön baum blume "
          "über kommen haben möchten wir sprechen heute abend buch zimmer",
    "fr": "bonjour merci beaucoup maman papa pomme bleu monde pourquoi toujours parfois beau "
          "petit maison musique bonne nuit bien vous nous parler",
    "es": "buenos días por favor mamá papá mucho bueno bonita mañana siempre playa música "
          "problema ventana pequeño hombre mujer tiempo",
    "it": "buongiorno per piacere mamma babbo bello molto sempre mai amore ombra pomodoro "
          "musica bambino parlare tempo mondo",
    "pt": "bom dia obrigado mamãe papai muito bonito amanhã sempre música pomba mundo "
          "pequeno povo falar tempo",
    "nl": "goedemorgen alsjeblieft bedankt moeder vader boom bloem water brood mooi "
          "morgen praten muziek altijd",
    "pl": "dzień dobry proszę dziękuję mama tata piękny woda chleb miasto pomoc bardzo "
          "mówić muzyka zawsze",
    "sv": "god morgon tack mamma pappa vatten blomma bok bra mycket hemma prata musik "
          "alltid vacker",
    "cs": "dobrý den prosím děkuji maminka tatínek voda pivo krásný bude mluvit hudba "
          "vždycky",
    "fi": "hyvää huomenta kiitos äiti isä vesi kaunis puu omena muistaa puhua musiikki "
          "aina",
    "tr": "günaydın lütfen teşekkürler anne baba su güzel bugün büyük mavi konuşmak "
          "müzik her zaman",
    "id": "selamat pagi terima kasih ibu bapak air bunga besar baik bicara musik "
          "selalu",
    "ru": "доброе утро пожалуйста спасибо мама папа вода молоко хорошо большой "
          "говорить музыка всегда",
    "ja": "おはよう ありがとう おかあさん おとうさん みず ほん うみ やま ぼく まいにち "
          "ぶんか もう すこし はなす おんがく",
}
# Variants with breath noise (f2, f3, f5, Alicia) are left out: espeak-ng draws that noise
# differently from run to run, and the corpus must be the same for the same seed.
VARIANTS: tuple[str, ...] = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m7", "+f1", "+f4", "+Andrea",
                             "+Annie", "+anika", "+aunty", "+belinda", "+linda", "+klatt", "+croak")

# Viseme targets on the mouth channels, and each class's dominance (coarticulation strength).
VISEME_CHANNELS: tuple[str, ...] = (
    "jawOpen", "mouthFunnel", "mouthPucker", "mouthStretchLeft", "mouthStretchRight",
    "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
)
VISEMES: dict[str, tuple[float, dict[str, float]]] = {
    "pause": (1.5, {}),
    "bilabial": (5.0, {"jawOpen": 0.02, "mouthPress": 0.4}),
    "labiodental": (3.0, {"jawOpen": 0.06, "mouthRollLower": 0.5, "mouthUpperUp": 0.12}),
    "rounded": (1.5, {"jawOpen": 0.22, "mouthFunnel": 0.5, "mouthPucker": 0.45}),
    "glide": (2.0, {"jawOpen": 0.08, "mouthFunnel": 0.3, "mouthPucker": 0.6}),
    "open": (1.0, {"jawOpen": 0.45, "mouthLowerDown": 0.3}),
    "mid": (1.0, {"jawOpen": 0.3, "mouthLowerDown": 0.2, "mouthStretch": 0.08}),
    "spread": (1.0, {"jawOpen": 0.17, "mouthStretch": 0.35, "mouthUpperUp": 0.1}),
    "postalveolar": (1.2, {"jawOpen": 0.1, "mouthFunnel": 0.3, "mouthPucker": 0.2}),
    "sibilant": (0.8, {"jawOpen": 0.06, "mouthStretch": 0.15}),
    "consonant": (0.5, {"jawOpen": 0.13, "mouthLowerDown": 0.05}),
}
EMOTION_WEIGHTS = np.array([0.4, 0.15, 0.15, 0.15, 0.15])  # neutral, happy, sad, angry, surprised
EMOTION_VOICE = {  # rate factor, pitch shift, pitch range factor, jaw factor
    "neutral": (1.0, 0, 1.0, 1.0), "happy": (1.05, 10, 1.2, 1.05), "sad": (0.85, -10, 0.5, 0.85),
    "angry": (1.1, 0, 1.1, 1.1), "surprised": (1.0, 15, 1.4, 1.15),
}


def phoneme_class(mnemonic: str) -> str:
    """Viseme class of an espeak-ng phoneme mnemonic (any language)."""
    name = mnemonic.lstrip("',%=")
    if not name or name.startswith("_"):
        return "pause"
    if name[0] in "pbm":
        return "bilabial"
    if name[0] in "fv":
        return "labiodental"
    if name[0] == "w" or (name[0] == "W" and len(name) == 1):
        return "glide"
    if name[0] in "uoOUy2Y89W":
        return "rounded"
    if name[0] in "aA&V0":
        return "open"
    if name[0] in "iIj":
        return "spread"
    if name[0] in "eE@3":
        return "mid"
    if name.startswith(("S", "Z", "tS", "dZ")):
        return "postalveolar"
    if name[0] in "szTD":
        return "sibilant"
    return "consonant"


@dataclass(frozen=True)
class Phoneme:
    label: str  # espeak mnemonic
    kind: str  # viseme class
    start: float  # seconds
    end: float  # seconds


def phoneme_intervals(events: tuple[tuple[float, str], ...], duration: float) -> list[Phoneme]:
    """espeak's phoneme start events as intervals (each ends where the next starts)."""
    out = []
    for k, (start, label) in enumerate(events):
        end = events[k + 1][0] if k + 1 < len(events) else duration
        if end > start:
            out.append(Phoneme(label, phoneme_class(label), start, end))
    return out


def _viseme_target(kind: str, stressed: bool) -> np.ndarray:
    target = np.zeros(len(VISEME_CHANNELS))
    for name, value in VISEMES[kind][1].items():
        for channel in (name, name + "Left", name + "Right"):
            if channel in VISEME_CHANNELS:
                target[VISEME_CHANNELS.index(channel)] = value
    if stressed and kind in ("open", "mid", "rounded", "spread"):
        target[0] *= 1.15
    return target


def lip_motion(phonemes: list[Phoneme], n_frames: int, fps: float, *, articulation: float = 1.0
               ) -> np.ndarray:
    """(T, E) mouth coefficients from phonemes by dominance-weighted coarticulation."""
    times = (np.arange(n_frames) + 0.5) / fps + CALIBRATION.anticipation_s  # (T,)
    weights = np.full(n_frames, 1e-4)
    total = np.zeros((n_frames, len(VISEME_CHANNELS)))
    for ph in phonemes:
        dominance, _ = VISEMES[ph.kind]
        centre, length = 0.5 * (ph.start + ph.end), ph.end - ph.start
        width = max(0.3 * length, 0.025) if ph.kind != "pause" else max(0.4 * length, 0.05)
        d = dominance * np.exp(-np.abs(times - centre) / width)  # (T,)
        target = _viseme_target(ph.kind, ph.label.startswith("'"))
        weights += d
        total += d[:, None] * target[None, :]
    visemes = total / weights[:, None]
    visemes[:, 0] *= articulation
    # A bilabial shorter than a frame can fall between frame centres: its nearest frame closes.
    for ph in phonemes:
        if ph.kind == "bilabial":
            lead = CALIBRATION.anticipation_s
            k = int(np.clip(np.floor((0.5 * (ph.start + ph.end) - lead) * fps), 0, n_frames - 1))
            visemes[k, 0] = min(visemes[k, 0], 0.03)
            for side in ("Left", "Right"):
                i = VISEME_CHANNELS.index(f"mouthPress{side}")
                visemes[k, i] = max(visemes[k, i], 0.35)
    out = np.zeros((n_frames, len(EXPRESSION_NAMES)))
    for i, name in enumerate(VISEME_CHANNELS):
        out[:, expression_index(name)] = visemes[:, i]
    return out


def _sentence(words: list[str], rng: np.random.Generator, cjk: bool) -> str:
    phrases = []
    for _ in range(rng.integers(1, 4)):
        chosen = rng.choice(words, size=rng.integers(2, 7))
        phrases.append(("" if cjk else " ").join(chosen))
    ending = rng.choice([".", ".", "?", "!"])
    return ("、" if cjk else ", ").join(phrases) + ("。" if cjk and ending == "." else ending)


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Reverb, noise, band-limiting, 8-bit mu-law and gain, each at random."""
    import soxr

    n = len(x)
    if rng.random() < 0.35:  # reverb: direct sound plus an exponentially decaying tail
        rt60 = rng.uniform(0.15, 0.6)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60) * rng.uniform(0.05, 0.3)
        ir[0] = 1.0
        size = 1 << int(np.ceil(np.log2(n + len(ir))))
        x = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[:n]
    if rng.random() < 0.3:  # telephone-like or narrow-band codec: down to a low rate and back
        low = int(rng.choice([6000, 8000, 11025]))
        x = soxr.resample(soxr.resample(x, SAMPLE_RATE, low), low, SAMPLE_RATE)[:n]
        x = np.pad(x, (0, n - len(x)))
    peak = np.max(np.abs(x)) + 1e-9
    x = x / peak * 10 ** (rng.uniform(-24, -1) / 20)
    if rng.random() < 0.5:  # white, pink-ish or rumbling noise at a random SNR
        noise = rng.standard_normal(n)
        colour = rng.integers(3)
        if colour:
            noise = np.cumsum(noise) if colour == 2 else noise + np.roll(noise, 1) + np.roll(noise, 2)
            noise = noise - _smooth(noise, 200.0) if colour == 2 else noise
        snr = rng.uniform(5, 35)
        power = np.mean(x**2) + 1e-12
        x = x + noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * np.sqrt(power / 10 ** (snr / 10))
    if rng.random() < 0.15:  # 8-bit mu-law
        mu = 255.0
        y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1)) / np.log1p(mu)
        y = np.round(y * 127) / 127
        x = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu
    return np.clip(x, -1, 1).astype(np.float32)


@dataclass(frozen=True)
class Clip:
    audio: np.ndarray  # (S,) float32 at SAMPLE_RATE, augmented
    phonemes: list[Phoneme]  # with times in the augmented audio
    emotion: str
    intensity: float  # 0-1
    language: str
    voice: str


def synth_clip(rng: np.random.Generator) -> Clip:
    """One clip of espeak-ng speech: 1-3 sentences with pauses, augmented."""
    import soxr

    from talkinghead.espeak import synthesize

    language = str(rng.choice(list(WORDS)))
    voice = language + str(rng.choice(VARIANTS))
    emotion = str(EMOTIONS[rng.choice(len(EMOTIONS), p=EMOTION_WEIGHTS)])
    intensity = 1.0 if emotion == "neutral" else float(rng.uniform(0.4, 1.0))
    rate_f, pitch_d, range_f, _ = EMOTION_VOICE[emotion]
    rate = rng.uniform(130, 210) * (1 + (rate_f - 1) * intensity)
    pitch = np.clip(rng.uniform(30, 70) + pitch_d * intensity, 0, 100)
    pitch_range = np.clip(rng.uniform(30, 80) * (1 + (range_f - 1) * intensity), 0, 100)
    words = WORDS[language].split()
    pieces, events, t = [np.zeros(int(rng.uniform(0.1, 0.5) * SAMPLE_RATE))], [], 0.0
    t = len(pieces[0]) / SAMPLE_RATE
    for _ in range(rng.integers(1, 4)):
        speech = synthesize(_sentence(words, rng, language == "ja"), voice, rate=int(rate),
                            pitch=int(pitch), pitch_range=int(pitch_range))
        samples = soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE)
        events += [(t + s, label) for s, label in speech.phonemes]
        pause = np.zeros(int(rng.uniform(0.15, 0.9) * SAMPLE_RATE))
        pieces += [samples, pause]
        t += (len(samples) + len(pause)) / SAMPLE_RATE
        events.append((t - len(pause) / SAMPLE_RATE, "_"))
    audio = np.concatenate(pieces)
    speed = rng.uniform(0.9, 1.1) if rng.random() < 0.5 else 1.0  # faster and higher, or slower
    if speed != 1.0:
        audio = soxr.resample(audio, SAMPLE_RATE, SAMPLE_RATE / speed)
        events = [(s / speed, label) for s, label in events]
    audio = _augment(audio.astype(np.float64), rng)
    phonemes = phoneme_intervals(tuple(events), len(audio) / SAMPLE_RATE)
    return Clip(audio, phonemes, emotion, intensity, language, voice)


def _noise(rng: np.random.Generator, n: int, timescale_frames: float, dims: int) -> np.ndarray:
    """(n, dims) smoothed Gaussian noise with unit standard deviation in expectation.

    Scaled by the kernel's own gain, not by the sample's spread: on a clip shorter than the
    timescale the sample is nearly constant, and dividing by its tiny spread would blow a
    random offset up to tens of degrees (the first corpus did this; its weights tilted heads).
    """
    radius = int(np.ceil(3 * timescale_frames))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / timescale_frames) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))  # unit gain on white noise
    white = rng.standard_normal((n + 2 * radius, dims))  # no padding: every output sees real noise
    return np.stack([np.convolve(white[:, d], kernel, mode="valid") for d in range(dims)], axis=1)


def _accents(features: AudioFeatures) -> np.ndarray:
    """(T,) in [0, 1]: pitch accents, voiced frames well above the clip's typical pitch."""
    pitch = features.pitch.astype(np.float64)
    voiced = pitch > 0
    if voiced.sum() <= 3:
        return np.zeros(len(pitch))
    semitones = 12.0 * np.log2(np.where(voiced, pitch, 1.0) / np.median(pitch[voiced]))
    return np.clip((semitones - 1.5) / 4.0, 0.0, 1.0) * voiced


# Calibrated so that the corpus's statistics (see ``corpus_statistics``) sit inside the
# devdata real-video ranges after the renderer's attenuation of turns.
HEAD_DRIFT_DEG = np.array([3.0, 2.2, 1.4])  # slow wandering, timescale 2.5 s
HEAD_SWAY_DEG = np.array([2.8, 2.2, 1.4])  # speech-coupled sway, timescale 0.5 s
HEAD_FAST_DEG = np.array([2.4, 2.4, 1.3])  # quick speech movements, timescale 0.1 s


def clip_motion(clip: Clip, features: AudioFeatures, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """(T, D) motion in MOTION_NAMES order and (8,) controls: gaze (2), distance, emotion (5)."""
    n, fps = features.n_frames, features.fps
    activity = speech_activity(features)
    accent = _accents(features)
    speaking = _smooth(activity, 0.5 * fps)
    energy = (1 + (EMOTION_ENERGY[clip.emotion] - 1) * clip.intensity) * rng.uniform(0.6, 1.4)
    jaw_factor = (1 + (EMOTION_VOICE[clip.emotion][3] - 1) * clip.intensity) * rng.uniform(0.75, 1.25)

    expression = lip_motion(clip.phonemes, n, fps, articulation=jaw_factor * CALIBRATION.jaw_scale)
    emotion = emotion_offsets(clip.emotion, clip.intensity) * rng.uniform(0.8, 1.1)
    expression += emotion[None, :] * (0.85 + 0.15 * speaking[:, None])
    brow = rng.uniform(0.2, 0.5) * _smooth(accent, 3.0)
    expression[:, expression_index("browInnerUp")] += brow
    for side in ("Left", "Right"):
        expression[:, expression_index(f"browOuterUp{side}")] += 0.8 * brow

    quiet = _smooth(activity, 2.0) < 0.1
    pause_onset = quiet & ~np.roll(quiet, 3)
    blinks = _blink_track(n, fps, pause_onset, rng)
    for side in ("Left", "Right"):
        i = expression_index(f"eyeBlink{side}")
        expression[:, i] = np.maximum(expression[:, i], blinks)

    pose = np.zeros((n, len(POSE_NAMES)))
    rot = (HEAD_DRIFT_DEG * _noise(rng, n, 2.5 * fps, 3)
           + HEAD_SWAY_DEG * np.asarray(CALIBRATION.sway_scale) * _noise(rng, n, 0.5 * fps, 3)
           * (0.4 + 0.6 * speaking[:, None])
           + HEAD_FAST_DEG * np.asarray(CALIBRATION.fast_scale) * _noise(rng, n, 0.1 * fps, 3)
           * activity[:, None]) * energy
    rot[:, 1] -= 2.0 * energy * _smooth(accent, 2.0)  # nods on accents
    rot *= np.asarray(CALIBRATION.head_scale)
    rot[:, 1] += EMOTION_PITCH[clip.emotion] * clip.intensity
    pose[:, :3] = rot
    pose[:, 3] = 0.005 * rot[:, 0] + 0.01 * _noise(rng, n, 1.5 * fps, 1)[:, 0]
    pose[:, 4] = -0.005 * rot[:, 1] + 0.01 * _noise(rng, n, 1.5 * fps, 1)[:, 0]
    distance = float(rng.uniform(0.75, 1.25))
    pose[:, 5] = distance * (1 + 0.01 * _noise(rng, n, 2.0 * fps, 1)[:, 0])

    target = np.zeros(2) if rng.random() < 0.5 else np.clip(rng.normal(0, [8, 5]), -20, 15)
    gaze = _gaze_track(n, fps, target, quiet, rng)

    motion = np.concatenate([pose, np.clip(expression, 0, 1), gaze], axis=1).astype(np.float32)
    emotion_vector = np.zeros(len(EMOTIONS))
    emotion_vector[EMOTIONS.index(clip.emotion)] = clip.intensity
    controls = np.concatenate([target, [distance], emotion_vector]).astype(np.float32)
    return motion, controls


def _blink_track(n: int, fps: float, pause_onset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T,) eyeBlink: seeded blinks (10-45 a minute per clip), each about 200-330 ms long."""
    per_minute = float(np.clip(rng.lognormal(np.log(20), 0.45), 8, 45)) * CALIBRATION.blink_rate_scale
    rate = per_minute / 60.0 * np.where(pause_onset, 5.0, 1.0)
    scale = CALIBRATION.blink_length_scale
    return blink_track(n, fps, rate, 0.8, rng, lambda: (
        scale * rng.uniform(0.06, 0.09), scale * rng.uniform(0.02, 0.07), scale * rng.uniform(0.1, 0.17)))


def _gaze_track(n: int, fps: float, target: np.ndarray, quiet: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """(T, 2) gaze: fixations around ``target``, quick saccades, glances away in pauses."""
    out = np.zeros((n, 2))
    k, current = 0, target.copy()
    while k < n:
        length = max(3, int(rng.exponential(1.3) * fps))
        aside = quiet[k] and rng.random() < 0.3
        fix = target + rng.normal(0, [3.0, 2.0]) + (rng.normal(0, [8, 4]) if aside else 0)
        ramp = np.linspace(0, 1, 3)[1:, None]
        seg = np.concatenate([current + ramp * (fix - current), np.repeat(fix[None], length, 0)])
        out[k : k + len(seg)] = seg[: n - k]
        k, current = k + len(seg), fix
    return out + 0.15 * rng.standard_normal((n, 2))


def features_arrays(features: AudioFeatures) -> dict[str, np.ndarray]:
    """AudioFeatures as storable arrays (phones as indices into PHONE_SET)."""
    return {"mel": features.mel.astype(np.float16), "energy": features.energy,
            "speech_energy": features.speech_energy, "centroid": features.centroid,
            "pitch": features.pitch, "voicing": features.voicing,
            "phones": phone_indices(features.phones).astype(np.uint8)}


def features_from_arrays(arrays: dict[str, np.ndarray], fps: float) -> AudioFeatures:
    return AudioFeatures(fps=fps, mel=arrays["mel"].astype(np.float32), energy=arrays["energy"],
                         speech_energy=arrays["speech_energy"], centroid=arrays["centroid"],
                         pitch=arrays["pitch"], voicing=arrays["voicing"],
                         phones=np.array(PHONE_SET, dtype=object)[arrays["phones"]])


def make_clip(seed: int, index: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
    """Clip ``index`` of the corpus with ``seed``: (feature arrays, motion, controls, meta)."""
    rng = np.random.default_rng([seed, index])
    clip = synth_clip(rng)
    features = audio_features(AudioClip(Path(f"clip-{index}.wav"), clip.audio, SAMPLE_RATE, 1), FPS)
    motion, controls = clip_motion(clip, features, rng)
    meta = {"language": clip.language, "voice": clip.voice, "emotion": clip.emotion,
            "intensity": round(clip.intensity, 3), "seconds": round(len(clip.audio) / SAMPLE_RATE, 3)}
    return features_arrays(features), motion, controls, meta


def _clip_job(job: tuple[int, int]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
    return make_clip(*job)


def make_clips(seed: int, indices: range | list[int], workers: int = 1) -> Iterator[tuple]:
    """``make_clip`` for each index, in order, each in a fresh forked process.

    espeak-ng's waveform depends on its process state (a few samples of timing and phase
    differ from one call to the next in one process); a fresh fork of a parent that never
    synthesized makes every clip the same for the same seed, whatever was made before it.
    """
    import multiprocessing as mp

    from talkinghead.audio import _phone_decoder

    if "fork" not in mp.get_all_start_methods():  # no fork here: same seed, nearly the same
        yield from (make_clip(seed, i) for i in indices)
        return
    _phone_decoder()  # loaded once, inherited by every fork
    with mp.get_context("fork").Pool(workers, maxtasksperchild=1) as pool:
        yield from pool.imap(_clip_job, [(seed, i) for i in indices], chunksize=1)


def generate_corpus(out: Path, *, seed: int = 0, minutes: float = 30.0, shard_minutes: float = 5.0,
                    workers: int = 1, progress: Callable[[float], None] | None = None,
                    calibration: Calibration | None = None) -> dict:
    """Write about ``minutes`` of clips into ``out`` as shards; returns the corpus summary.
    ``calibration`` (default: none) scales the hand-set motion (see ``Calibration``).

    Clip k of seed s is always the same clip; the corpus is clips 0, 1, ... until it is long
    enough, cut into shards of about ``shard_minutes``.
    """
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.npz"):
        old.unlink()
    shard, total, metas, parts, shard_seconds = 0, 0.0, [], [], 0.0
    global CALIBRATION
    CALIBRATION = calibration or Calibration()

    def flush() -> None:
        nonlocal shard, parts, shard_seconds
        lengths = [len(m) for _, m, _ in parts]
        stored = {key: np.concatenate([a[key] for a, _, _ in parts]) for key in parts[0][0]}
        np.savez_compressed(out / f"shard-{shard:03d}.npz", **stored,
                            motion=np.concatenate([m for _, m, _ in parts]),
                            controls=np.stack([c for _, _, c in parts]),
                            offsets=np.cumsum([0, *lengths]))
        shard, parts, shard_seconds = shard + 1, [], 0.0

    clips = make_clips(seed, range(1_000_000), workers)
    while total < minutes * 60:
        arrays, motion, controls, meta = next(clips)
        parts.append((arrays, motion, controls))
        metas.append(meta)
        shard_seconds += meta["seconds"]
        total += meta["seconds"]
        if progress:
            progress(meta["seconds"])
        if shard_seconds >= shard_minutes * 60:
            flush()
    clips.close()
    if parts:
        flush()
    motions = [m for m, _, _ in load_corpus(out)]
    summary = {"seed": seed, "minutes": minutes, "clips": len(metas), "seconds": round(total, 1),
               "fps": FPS, "motion_names": list(MOTION_NAMES),
               "command": f"talkinghead corpus --out {out} --seed {seed} --minutes {minutes:g}",
               "languages": sorted({m["language"] for m in metas}),
               "voices": len({m["voice"] for m in metas}),
               "emotions": {e: sum(m["emotion"] == e for m in metas) for e in EMOTIONS},
               "statistics": corpus_statistics(motions, FPS),
               "calibration": asdict(CALIBRATION)}
    (out / "corpus.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_corpus(folder: Path) -> list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """Every clip of a corpus folder: (motion (T, D), feature arrays, controls (8,))."""
    shards = sorted(folder.glob("shard-*.npz"))
    if not shards:
        raise FileNotFoundError(f"no corpus shards (shard-*.npz) in {folder}")
    clips = []
    for path in shards:
        with np.load(path) as data:
            offsets = data["offsets"]
            arrays = {k: data[k] for k in ("mel", "energy", "speech_energy", "centroid", "pitch",
                                           "voicing", "phones")}
            motion, controls = data["motion"], data["controls"]
        for c in range(len(offsets) - 1):
            s, e = offsets[c], offsets[c + 1]
            clips.append((motion[s:e], {k: v[s:e] for k, v in arrays.items()}, controls[c]))
    return clips


def corpus_statistics(motions: list[np.ndarray], fps: float) -> dict[str, float]:
    """Pose spread, rotation per frame, blinks, mouth opening: mean over clips."""
    yaw, pitch, roll, dp, blinks, blink_ms, minutes, jaw = [], [], [], [], 0, [], 0.0, []
    jaw_i = len(POSE_NAMES) + expression_index("jawOpen")
    blink_i = len(POSE_NAMES) + expression_index("eyeBlinkLeft")
    for m in motions:
        rot = m[:, :3].astype(np.float64)
        yaw.append(rot[:, 0].std())
        pitch.append(rot[:, 1].std())
        roll.append(rot[:, 2].std())
        dp.append(np.linalg.norm(np.diff(rot, axis=0), axis=1).mean())
        closed = np.append(m[:, blink_i] > 0.5, False)
        starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
        blinks += len(starts) + int(closed[0])
        above = np.append(m[:, blink_i] > 0.05, False)
        edges = np.flatnonzero(np.diff(np.concatenate([[False], above]).astype(int)))
        blink_ms += list((edges[1::2] - edges[::2]) / fps * 1000)
        minutes += len(m) / fps / 60
        jaw.append(np.percentile(m[:, jaw_i], 90))
    return {"yaw_std": float(np.mean(yaw)), "pitch_std": float(np.mean(pitch)),
            "roll_std": float(np.mean(roll)), "delta_pose_deg": float(np.mean(dp)),
            "blinks_per_min": blinks / max(minutes, 1e-9),
            "blink_ms": float(np.mean(blink_ms)) if blink_ms else 0.0,
            "jaw_open_p90": float(np.mean(jaw)), "gaze_dims": len(GAZE_NAMES)}
