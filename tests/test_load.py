import subprocess

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from talkinghead.errors import InputError
from talkinghead.load import SAMPLE_RATE, load_audio, load_portrait
from talkinghead.mux import ffmpeg_exe

from .helpers import tone


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (120, 80), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = _save(tmp_path, "rot.jpg", img, exif=exif)
    assert load_portrait(path).image.shape == (120, 80, 3)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "CMYK", "P", "I;16", "1"])
def test_any_image_mode_becomes_rgb8(tmp_path, mode):
    base = Image.linear_gradient("L").resize((96, 96))
    img = base.convert(mode) if mode != "I;16" else Image.fromarray(
        (np.asarray(base, np.uint16) * 257).astype(np.uint16))
    ext = "jpg" if mode == "CMYK" else "tif" if mode == "I;16" else "png"
    image = load_portrait(_save(tmp_path, f"img.{ext}", img)).image
    assert image.dtype == np.uint8 and image.shape == (96, 96, 3)
    assert image.max() > 200 and image.min() < 60  # levels kept, not clipped to black


def test_transparency_is_put_on_white(tmp_path):
    img = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    image = load_portrait(_save(tmp_path, "clear.png", img)).image
    assert (image == 255).all()


def test_animated_image_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (80, 80), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    image = load_portrait(path).image
    assert image[0, 0, 0] > 200 and image[0, 0, 2] < 50


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, I am text"), "not an image"),
    (lambda p: p.mkdir(), "folder"),
])
def test_bad_photo_files(tmp_path, make, problem):
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(InputError, match=problem) as err:
        load_portrait(path)
    assert str(path) in str(err.value)


def test_truncated_photo(tmp_path, photo):
    data = photo.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_portrait(path)


def test_decompression_bomb_is_refused(tmp_path):
    path = _save(tmp_path, "bomb.png", Image.new("1", (10_000, 10_000)))
    with pytest.raises(InputError, match="too large"):
        load_portrait(path)


def test_tiny_image_is_refused(tmp_path):
    with pytest.raises(InputError, match="too small"):
        load_portrait(_save(tmp_path, "tiny.png", Image.new("RGB", (40, 40))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_crash_the_photo_loader(tmp_path, data):
    path = tmp_path / "fuzz.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    with pytest.raises(InputError):
        load_portrait(path)


def test_audio_is_mono_16k_with_the_right_duration(tmp_path):
    stereo = np.stack([tone(1.0, 44_100), tone(1.0, 44_100, freq=150)], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, 44_100)
    clip = load_audio(path)
    assert clip.sample_rate == SAMPLE_RATE and clip.samples.ndim == 1
    assert clip.channels == 2
    assert abs(clip.duration - 1.0) < 1e-3


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_compressed_audio_formats_load(tmp_path, fmt):
    path = tmp_path / f"s.{fmt}"
    sf.write(path, tone(1.0, 16_000), 16_000)
    assert abs(load_audio(path).duration - 1.0) < 0.08


def test_m4a_is_decoded_through_ffmpeg(tmp_path):
    wav, m4a = tmp_path / "s.wav", tmp_path / "s.m4a"
    sf.write(wav, tone(1.0, 16_000), 16_000)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(wav), "-c:a", "aac", str(m4a)],
                   check=True)
    clip = load_audio(m4a)
    assert abs(clip.duration - 1.0) < 0.1 and clip.channels == 1


@pytest.mark.parametrize(("samples", "problem"), [
    (np.zeros(16_000, np.float32), "silent"),
    (tone(0.05), "too short"),
    (np.full(16_000, np.nan, np.float32), "NaN"),
])
def test_bad_audio_content(tmp_path, samples, problem):
    path = tmp_path / "bad.wav"
    sf.write(path, samples, 16_000, subtype="FLOAT")
    with pytest.raises(InputError, match=problem):
        load_audio(path)


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00garbage" * 10), "not an audio file"),
])
def test_bad_audio_files(tmp_path, make, problem):
    path = tmp_path / "speech.wav"
    make(path)
    with pytest.raises(InputError, match=problem):
        load_audio(path)


@pytest.mark.parametrize(("rate", "channels"), [(8_000, 1), (96_000, 2), (48_000, 6)])
def test_any_rate_and_channel_count_becomes_mono_16k(tmp_path, rate, channels):
    voices = np.stack([tone(1.5, rate, freq=120.0 + 40 * c) for c in range(channels)], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, voices, rate)
    clip = load_audio(path)
    assert clip.sample_rate == SAMPLE_RATE and clip.samples.ndim == 1
    assert clip.channels == channels
    assert abs(clip.duration - 1.5) < 1e-3
    assert 0.05 < np.abs(clip.samples).max() <= 1.0


def test_a_wav_cut_short_is_read_or_refused_cleanly(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(2.0), 16_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header promises twice what is there
    try:
        clip = load_audio(path)
    except InputError as exc:
        assert "cut.wav" in str(exc)
    else:
        assert 0.9 < clip.duration < 1.1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".wav", ".mp3", ".flac", ".m4a"]))
def test_random_bytes_never_crash_the_audio_loader(tmp_path, data, suffix):
    """Garbage is refused with InputError naming the file, or (ffmpeg decodes almost anything
    as mp3) read as finite mono audio; never another exception."""
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes((b"RIFF\x24\x08\x00\x00WAVEfmt " if suffix == ".wav" else b"") + data)
    try:
        clip = load_audio(path)
    except InputError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert clip.samples.ndim == 1 and np.isfinite(clip.samples).all()


def test_audio_blocks_read_a_file_as_they_are_taken(tmp_path):
    """A streamed file is not read whole before its first piece (so the first frame does not
    wait for a long file): a bad sample at its end fails only with the piece that holds it,
    silence only once the last piece is read; what the header says fails at once."""
    from talkinghead.load import audio_blocks

    rate = 22_050
    speech = 0.3 * np.sin(np.linspace(0, 2000, 3 * rate)).astype(np.float32)
    spoiled = speech.copy()
    spoiled[-10] = np.nan
    sf.write(tmp_path / "nan.wav", np.column_stack([spoiled, spoiled]), rate, subtype="FLOAT")
    got_rate, channels, pieces = audio_blocks(tmp_path / "nan.wav", seconds=0.5)
    assert (got_rate, channels) == (rate, 2)
    first = next(pieces)
    assert first.shape == (round(0.5 * rate), 2)
    np.testing.assert_allclose(first[:, 0], speech[: len(first)], atol=1e-6)
    with pytest.raises(InputError, match="NaN"):
        list(pieces)

    sf.write(tmp_path / "silent.wav", np.zeros(rate, np.float32), rate)
    pieces = audio_blocks(tmp_path / "silent.wav", seconds=0.2)[2]
    assert sum(len(next(pieces)) for _ in range(5)) == rate  # all of it, no complaint yet
    with pytest.raises(InputError, match="silent"):
        next(pieces)
    sf.write(tmp_path / "short.wav", speech[:100], rate)
    with pytest.raises(InputError, match="too short"):
        audio_blocks(tmp_path / "short.wav")
