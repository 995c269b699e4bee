"""Stage 1, load: the portrait (EXIF-oriented RGB, size limits) and the audio (mono, 16 kHz)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkinghead.errors import InputError

SAMPLE_RATE = 16_000  # Hz, what every audio feature is computed at
MAX_PIXELS = 50_000_000  # larger images are refused (decompression-bomb guard)
MIN_SIDE = 64  # pixels
MIN_DURATION = 0.1  # seconds
SILENCE_PEAK = 10 ** (-60 / 20)  # a clip whose peak is below -60 dBFS holds no speech


@dataclass(frozen=True)
class Portrait:
    path: Path
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright


@dataclass(frozen=True)
class AudioClip:
    path: Path
    samples: np.ndarray  # (S,) float32 mono in [-1, 1] at SAMPLE_RATE
    sample_rate: int  # Hz, always SAMPLE_RATE
    channels: int  # channel count of the file, for the output's audio track

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self.samples) / self.sample_rate


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not a file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")


def load_portrait(path: str | Path) -> Portrait:
    """Read a photo as upright 8-bit RGB. Transparent images are put on white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    _check_readable_file(path)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                image = _to_rgb8(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(path, f"image is too large (over {MAX_PIXELS // 1_000_000} megapixels)") from None
    except UnidentifiedImageError:
        raise InputError(path, "not an image file (or an image format Pillow cannot read)") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"image is corrupt or truncated ({exc})") from None
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(path, f"image is too small ({w}x{h} px; need at least {MIN_SIDE} px a side)")
    return Portrait(path=path, image=image)


def _to_rgb8(img) -> np.ndarray:  # img: PIL.Image.Image
    """Any Pillow mode (16-bit, float, CMYK, palette, alpha) -> (H, W, 3) uint8 RGB."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def load_audio(path: str | Path) -> AudioClip:
    """Read speech as mono float32 at 16 kHz. Formats soundfile cannot read go through ffmpeg."""
    import soundfile as sf
    import soxr

    path = Path(path)
    _check_readable_file(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        data, rate = _decode_with_ffmpeg(path)
    if data.size == 0:
        raise InputError(path, "audio has no samples")
    check_finite(path, data)
    channels = data.shape[1]
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
    mono = np.clip(mono, -1.0, 1.0)
    clip = AudioClip(path=path, samples=mono, sample_rate=SAMPLE_RATE, channels=channels)
    check_duration(path, clip.duration)
    check_loud(path, float(np.abs(mono).max()))
    return clip


def check_finite(path: Path | None, samples: np.ndarray) -> None:
    """Audio with NaN or infinite samples is refused (``path``: the file, None for a stream)."""
    if not np.all(np.isfinite(samples)):
        raise InputError(path, "audio holds NaN or infinite samples")


def check_duration(path: Path | None, seconds: float) -> None:
    """Audio shorter than MIN_DURATION is refused."""
    if seconds < MIN_DURATION:
        raise InputError(path, f"audio is too short ({seconds:.3f} s; need {MIN_DURATION} s)")


def check_loud(path: Path | None, peak: float) -> None:
    """Audio whose (mono) peak stays below SILENCE_PEAK is refused as silent."""
    if peak < SILENCE_PEAK:
        raise InputError(path, "audio is silent (peak below -60 dBFS)")


def audio_blocks(path: str | Path, seconds: float = 0.2) -> tuple[int, int, Iterator[np.ndarray]]:
    """An audio file's samples at its own rate and channels, (n, channels) float32 pieces of
    ``seconds``, read as they are taken: the rate, the channel count and the pieces. The checks
    ``load_audio`` makes come as early as they can without reading the whole file: a missing,
    empty, unreadable or too short file fails here; NaN samples fail with the piece that holds
    them, and silence once the last piece is read. Formats soundfile cannot read are decoded
    whole by ffmpeg first (``load_audio``)."""
    import soundfile as sf

    path = Path(path)
    _check_readable_file(path)
    try:
        info = sf.info(str(path))
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        info = None
    if info is None or info.frames <= 0 or info.samplerate <= 0:  # not soundfile's, or no size
        from talkinghead.mux import decode_audio

        load_audio(path)  # every check, on the whole file
        if info is None:  # decoded at 48 kHz: the stream's own sound track keeps its quality
            data, rate = decode_audio(path, 48_000), 48_000
        else:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        step = max(1, round(seconds * rate))
        return rate, data.shape[1], (data[i : i + step] for i in range(0, len(data), step))
    check_duration(path, info.frames / info.samplerate)

    def pieces() -> Iterator[np.ndarray]:
        peak = 0.0
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=max(1, round(seconds * info.samplerate)), dtype="float32",
                                  always_2d=True):
                check_finite(path, block)
                peak = max(peak, float(np.abs(block.mean(axis=1)).max(initial=0.0)))
                yield block
        check_loud(path, peak)

    return info.samplerate, info.channels, pieces()


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode any audio ffmpeg knows (m4a, aac, mp4, webm...) to (S, C) float32 at 16 kHz."""
    from talkinghead.mux import decode_audio

    data = decode_audio(path, SAMPLE_RATE)
    if data is None:
        raise InputError(path, "not an audio file, or corrupt (neither soundfile nor ffmpeg can read it)")
    return data, SAMPLE_RATE
