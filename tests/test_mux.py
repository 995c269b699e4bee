import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from talkinghead import interrupts
from talkinghead.errors import InputError, TalkingHeadError
from talkinghead.mux import VideoWriter, decode_audio, ffmpeg_exe, probe, read_frames
from talkinghead.pipeline import check_output

from .helpers import tone


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "a.wav"
    sf.write(path, tone(1.0), 16_000)
    return path


def _frames(n: int, h: int = 64, w: int = 96) -> np.ndarray:
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, None, :, None]
    shift = np.arange(n, dtype=np.float32)[:, None, None, None] * 5
    return np.broadcast_to((ramp + shift) % 256, (n, h, w, 3)).astype(np.uint8)


def test_written_video_has_h264_aac_and_every_frame(tmp_path, wav):
    out = tmp_path / "v.mp4"
    frames = _frames(25)
    with VideoWriter(out, width=96, height=64, fps=25.0, audio=wav, audio_channels=1,
                     metadata={"comment": "made by a test"}) as writer:
        writer.write(frames[:10])
        writer.write(frames[10:])
    info = probe(out)
    assert (info.video_codec, info.audio_codec, info.pixel_format) == ("h264", "aac", "yuv420p")
    assert (info.width, info.height, info.fps) == (96, 64, 25.0)
    assert info.metadata.get("comment") == "made by a test"
    decoded = np.concatenate(list(read_frames(out, 96, 64)))
    assert len(decoded) == 25
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 4
    audio = decode_audio(out, 16_000)
    assert abs(len(audio) / 16_000 - 1.0) < 0.05
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # like any new file, not private


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_failure_mid_write_leaves_no_file(tmp_path, wav, failure):
    out = tmp_path / "v.mp4"
    with pytest.raises(failure), VideoWriter(out, width=96, height=64, fps=25.0, audio=wav,
                                             audio_channels=1) as writer:
        writer.write(_frames(5))
        raise failure()
    assert list(tmp_path.iterdir()) == [wav]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("last_write", [True, False])
def test_an_interrupt_whose_exception_python_dropped_still_stops_the_writer(tmp_path, wav,
                                                                            last_write):
    """Ctrl-C handled inside a finalizer: Python prints the KeyboardInterrupt and drops it.
    The command line's handler remembers it, so the writer stops and leaves no file."""
    class Finalized:
        def __del__(self) -> None:
            interrupts.handler(signal.SIGINT, None)

    try:
        with pytest.raises(KeyboardInterrupt), VideoWriter(
                tmp_path / "v.mp4", width=96, height=64, fps=25.0, audio=wav,
                audio_channels=1) as writer:
            writer.write(_frames(5))
            Finalized()  # the handler runs in __del__: its exception goes nowhere
            if not last_write:
                writer.write(_frames(5))
        assert list(tmp_path.iterdir()) == [wav]
    finally:
        interrupts.reset()


def test_odd_sizes_and_wrong_frames_are_refused(tmp_path, wav):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "v.mp4", width=95, height=64, fps=25.0, audio=wav, audio_channels=1)
    with pytest.raises(ValueError), VideoWriter(tmp_path / "v.mp4", width=96, height=64,
                                                fps=25.0, audio=wav, audio_channels=1) as w:
        w.write(_frames(2, h=32))
    assert not (tmp_path / "v.mp4").exists()


def test_missing_ffmpeg_is_reported(monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_FFMPEG", "/nonexistent/ffmpeg")
    with pytest.raises(TalkingHeadError, match="TALKINGHEAD_FFMPEG"):
        ffmpeg_exe()


def test_probe_refuses_what_is_not_media(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_text("not a video")
    with pytest.raises(InputError):
        probe(path)


def test_output_checks(tmp_path):
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists"):
        check_output(existing, force=False)
    check_output(existing, force=True)
    assert existing.read_bytes() == b"precious"  # the check itself never touches it
    with pytest.raises(InputError, match="folder"):
        check_output(tmp_path, force=False)
    with pytest.raises(InputError, match="does not exist"):
        check_output(tmp_path / "missing" / "v.mp4", force=False)
    with pytest.raises(InputError, match=r"\.mp4"):
        check_output(tmp_path / "v.avi", force=False)
    with pytest.raises(InputError, match="not writable"):
        check_output(Path("/proc/talkinghead-test.mp4"), force=False)
    assert ffmpeg_exe()
