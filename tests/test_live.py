"""Streamed renders through the command line: audio from stdin (WAV or raw PCM), video to
stdout (fragmented MP4) or to a UDP address on loopback, and a clean line for a bad stream."""

import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from talkinghead.audiostream import PcmFormat, pcm_blocks, read_wav_header
from talkinghead.errors import InputError
from talkinghead.mux import ffmpeg_exe, probe

from .helpers import EXAMPLES
from .test_cli import assert_clean_failure


def talkinghead(*args: str, stdin: bytes = b"", timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkinghead", *args], input=stdin,
                          capture_output=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wav_bytes(tmp_path_factory) -> bytes:
    """1.2 s of the example speech as a WAV file's bytes (22.05 kHz, 16-bit)."""
    data, rate = sf.read(EXAMPLES / "speech.wav", dtype="int16")
    path = tmp_path_factory.mktemp("live") / "short.wav"
    sf.write(path, data[: int(1.2 * rate)], rate)
    return path.read_bytes()


def as_text(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    proc.stderr = proc.stderr.decode(errors="replace")
    return proc


def test_wav_and_raw_pcm_streams_are_read_as_they_come(wav_bytes):
    import io

    pcm, declared = read_wav_header(io.BytesIO(wav_bytes), "-")
    assert (pcm.rate, pcm.channels, pcm.encoding) == (22050, 1, "s16le")
    body = wav_bytes[len(wav_bytes) - declared :]
    blocks = list(pcm_blocks(io.BytesIO(body), pcm, "-", declared))
    assert sum(map(len, blocks)) == declared // 2 and all(b.shape[1] == 1 for b in blocks)
    with pytest.raises(InputError, match="ended after"):
        list(pcm_blocks(io.BytesIO(body[:5001]), pcm, "-", declared))
    stereo = PcmFormat(8000, 2, "s24le")
    samples = stereo.decode(bytes([0, 0, 0x40, 0, 0, 0xC0]))
    np.testing.assert_allclose(samples, [[0.5, -0.5]])


@pytest.mark.slow
def test_stdin_to_stdout_gives_a_playable_fragmented_mp4_as_long_as_the_audio(tmp_path, wav_bytes):
    proc = talkinghead("render", str(EXAMPLES / "astronaut.png"), "-", "-o", "-", "--size", "128",
                       "--json", stdin=wav_bytes)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[4:8] == b"ftyp" and b"moof" in proc.stdout  # fragments, written as made
    assert b'"frames": 30' in proc.stderr  # the report goes to stderr, the video alone to stdout
    video = tmp_path / "streamed.mp4"
    video.write_bytes(proc.stdout)
    info = probe(video)
    assert (info.video_codec, info.audio_codec, info.width) == ("h264", "aac", 128)
    assert info.duration == pytest.approx(1.2, abs=0.1)
    decoded = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", "-", "-f", "null", "-"],
                             input=proc.stdout, capture_output=True, check=False)
    assert decoded.returncode == 0 and not decoded.stderr
    # raw PCM from stdin, to a file
    data, rate = sf.read(EXAMPLES / "speech.wav", dtype="int16")
    out = tmp_path / "raw.mp4"
    proc = talkinghead("render", str(EXAMPLES / "astronaut.png"), "-", "--audio-format", "s16le",
                       "--audio-rate", str(rate), "-o", str(out), "--size", "128", "--realtime", "-q",
                       stdin=data[: int(0.8 * rate)].tobytes())
    assert proc.returncode == 0, proc.stderr
    assert probe(out).duration == pytest.approx(0.8, abs=0.1)


@pytest.mark.slow
def test_a_stream_to_a_udp_address_on_loopback(wav_bytes):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(60)
    packets: list[bytes] = []

    def listen() -> None:
        try:
            while True:
                packets.append(receiver.recv(65536))
        except OSError:
            pass

    threading.Thread(target=listen, daemon=True).start()
    port = receiver.getsockname()[1]
    proc = talkinghead("render", str(EXAMPLES / "astronaut.png"), "-", "-o", f"udp://127.0.0.1:{port}",
                       "--size", "128", "-q", stdin=wav_bytes)
    receiver.close()
    assert proc.returncode == 0, proc.stderr
    stream = b"".join(packets)
    assert len(stream) > 10_000 and set(stream[::188]) == {0x47}  # MPEG-TS, packet after packet


@pytest.mark.parametrize(("feed", "needle"), [
    (b"", "no audio on stdin"),
    (b"this is not audio at all" * 100, "not a WAV stream"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "ended inside its WAV header"),
])
def test_a_bad_stream_on_stdin_is_one_line(tmp_path, feed, needle):
    out = tmp_path / "x.mp4"
    proc = as_text(talkinghead("render", str(EXAMPLES / "astronaut.png"), "-", "-o", str(out),
                               "--size", "128", stdin=feed))
    assert_clean_failure(proc, 2, needle)
    assert list(tmp_path.iterdir()) == []


def test_a_silent_file_streamed_is_one_line_and_leaves_no_file(tmp_path):
    """A file given as AUDIO to a live render is read as the stream takes it (its first frame
    does not wait for the whole file), so its silence shows at its end: still one line, and no
    output left behind."""
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16_000, np.float32), 16_000)
    out = tmp_path / "x.mp4"
    proc = as_text(talkinghead("render", str(EXAMPLES / "astronaut.png"), str(silent), "-o", str(out),
                               "--realtime", "--size", "64"))
    assert_clean_failure(proc, 2, "audio is silent")
    assert list(tmp_path.iterdir()) == [silent]


@pytest.mark.slow
def test_a_stream_cut_short_or_a_reader_gone_is_one_line_and_leaves_no_file(tmp_path, wav_bytes):
    out = tmp_path / "x.mp4"
    proc = as_text(talkinghead("render", str(EXAMPLES / "astronaut.png"), "-", "-o", str(out),
                               "--size", "128", stdin=wav_bytes[:20_000]))
    assert_clean_failure(proc, 2, "ended after 0.45 s of the 1.20 s")
    assert list(tmp_path.iterdir()) == []
    reader = subprocess.Popen([sys.executable, "-m", "talkinghead", "render", str(EXAMPLES / "astronaut.png"),
                               str(EXAMPLES / "speech.wav"), "-o", "-", "--size", "128", "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None
    assert len(reader.stdout.read(2000)) == 2000
    reader.stdout.close()  # the player quits
    _, err = reader.communicate(timeout=300)
    assert_clean_failure(subprocess.CompletedProcess([], reader.returncode, b"", err.decode()), 2,
                         "reader of the output stream went away")


def test_streaming_options_are_checked(tmp_path):
    photo = str(EXAMPLES / "astronaut.png")
    for args, needle in ((["-", "--audio-format", "s16le"], "--audio-rate"),
                         ([str(EXAMPLES / "speech.wav"), "--audio-rate", "8000"], "raw PCM on stdin"),
                         (["-", "-o", "gopher://x"], "unknown output URL scheme")):
        proc = as_text(talkinghead("render", photo, *args, stdin=b"RIFF"))
        assert_clean_failure(proc, 2, needle)
