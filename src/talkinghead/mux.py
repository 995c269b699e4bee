"""Stage 7, mux: frames streamed to ffmpeg (H.264 yuv420p + AAC), written atomically.

All ffmpeg use in talkinghead lives here and runs with argument lists and pipes, never a
shell. The binary is $TALKINGHEAD_FFMPEG, else the one imageio-ffmpeg installs with pip, else
``ffmpeg`` on PATH.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import numpy as np

from talkinghead import interrupts
from talkinghead.errors import InputError, TalkingHeadError

# x264 speed preset: "superfast" leaves the 2 cores of a small machine to rendering; the
# quality is set by the CRF, so a faster preset only makes the file somewhat larger.
X264_PRESET = "superfast"


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to run."""
    override = os.environ.get("TALKINGHEAD_FFMPEG")
    if override:
        if shutil.which(override) is None:
            raise TalkingHeadError(f"TALKINGHEAD_FFMPEG={override} is not an executable")
        return override
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found is None:
            raise TalkingHeadError(
                "ffmpeg not found: install imageio-ffmpeg (pip) or ffmpeg (apt), "
                "or set TALKINGHEAD_FFMPEG"
            ) from None
        return found


def decode_audio(path: Path, sample_rate: int) -> np.ndarray | None:
    """Decode the first audio stream of any file ffmpeg reads to (S, C) float32 at
    ``sample_rate``; None when ffmpeg finds no audio there."""
    import ffmpeg

    args = (
        ffmpeg.input(str(path))
        .output("pipe:", format="f32le", acodec="pcm_f32le", ar=sample_rate, map="0:a:0")
        .global_args("-nostdin", "-hide_banner", "-nostats")
        .compile(cmd=ffmpeg_exe())
    )
    proc = subprocess.run(args, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        return None
    channels = _output_channels(proc.stderr.decode(errors="replace"))
    data = np.frombuffer(proc.stdout, dtype=np.float32)
    usable = len(data) - len(data) % channels
    return data[:usable].reshape(-1, channels).copy()


_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5,
                    "5.1": 6, "6.1": 7, "7.1": 8}


def _output_channels(log: str) -> int:
    """Channel count of the decoded stream, from ffmpeg's log (there is no ffprobe here)."""
    lines = [line for line in log.splitlines() if "Audio: pcm_f32le" in line]
    if lines:
        for part in lines[-1].split(","):
            part = part.strip()
            match = re.fullmatch(r"(\d+) channels.*", part)
            if match:
                return int(match.group(1))
            layout = part.split("(")[0]
            if layout in _LAYOUT_CHANNELS:
                return _LAYOUT_CHANNELS[layout]
    return 1


class _Finishing:
    """A writer used as a context manager: ``close`` (finish the output) when the block ends
    normally, ``abort`` (remove what was written) when it raises, KeyboardInterrupt included."""

    _proc: subprocess.Popen[bytes]
    _log: IO[bytes]
    frames_written: int

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def _failure(self) -> Exception:
        raise NotImplementedError

    def _ffmpeg_log(self) -> list[str]:
        """What ffmpeg said on stderr, once it has exited."""
        self._proc.wait()
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip().splitlines()

    def _send(self, frames: np.ndarray) -> None:
        """Frames to ffmpeg's stdin; its failure explained if it has gone."""
        interrupts.check()
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames).tobytes())
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise self._failure() from None
        self.frames_written += len(frames)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


class VideoWriter(_Finishing):
    """Streams RGB frames into an mp4 next to ``path`` and renames it into place on success.

    Nothing appears at ``path`` unless every frame was written and ffmpeg succeeded: the
    temporary file is removed on any error, KeyboardInterrupt included.
    """

    def __init__(self, path: Path, *, width: int, height: int, fps: float, audio: Path,
                 audio_channels: int, crf: int = 18,
                 metadata: Mapping[str, str] | None = None) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even frame sides, got {width}x{height}")
        self.path = path
        self.width, self.height = width, height
        self.frames_written = 0
        self._tmp: Path | None = None
        try:  # an interrupt before __enter__ returns must leave neither the file nor ffmpeg
            with interrupts.held():  # the file, its name and the encoder writing it: all or none
                self._tmp = _temporary_sibling(path)
                args = self._command(audio, fps, audio_channels, crf, metadata or {})
                self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close or abort)
                self._proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                              stdout=subprocess.DEVNULL, stderr=self._log,
                                              preexec_fn=_die_with_parent)
        except BaseException:
            _stop(getattr(self, "_proc", None))
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            raise

    def _command(self, audio: Path, fps: float, audio_channels: int, crf: int,
                 metadata: Mapping[str, str]) -> list[str]:
        import ffmpeg

        assert self._tmp is not None
        video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24",
                             s=f"{self.width}x{self.height}", framerate=fps)
        sound = ffmpeg.input(str(audio)).audio
        out = ffmpeg.output(
            video, sound, str(self._tmp), format="mp4", vcodec="libx264",
            pix_fmt="yuv420p", crf=crf, preset=X264_PRESET, acodec="aac",
            ac=min(audio_channels, 2), movflags="+faststart", map_metadata=-1,
            fflags="+bitexact", **{"flags:v": "+bitexact", "flags:a": "+bitexact"},
        )
        args: list[str] = out.global_args("-nostdin", "-loglevel", "error", "-y").compile(
            cmd=ffmpeg_exe())
        # ffmpeg-python cannot repeat an option; -metadata goes just before the output.
        at = args.index(str(self._tmp))
        for key, value in metadata.items():
            args[at:at] = ["-metadata", f"{key}={value}"]
            at += 2
        return args

    def write(self, frames: np.ndarray) -> None:
        """Append (B, H, W, 3) uint8 frames."""
        if frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(f"frames of shape {frames.shape} {frames.dtype} do not fit "
                             f"{self.width}x{self.height} RGB uint8")
        self._send(frames)

    def close(self) -> None:
        """Finish the file and move it to ``path``."""
        interrupts.check()
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        if self._proc.wait() != 0:
            raise self._failure()
        try:
            _publish(self._tmp, self.path)
        finally:
            self._log.close()

    def abort(self) -> None:
        """Stop ffmpeg and delete the partial file."""
        _stop(self._proc)
        self._tmp.unlink(missing_ok=True)
        self._log.close()

    def _failure(self) -> Exception:
        message = self._ffmpeg_log()
        last = message[-1] if message else f"exit code {self._proc.returncode}"
        log = "\n".join(message)
        if "No space left" in log:
            return InputError(self.path, "no space left on the output's disk")
        if "File too large" in log or self._proc.returncode == -getattr(signal, "SIGXFSZ", 0):
            return InputError(self.path, "output exceeds the file size limit (ulimit -f)")
        return TalkingHeadError(f"ffmpeg failed writing {self.path}: {last}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Kill an encoder that was started (if it was) and reap it."""
    if proc is not None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _die_with_parent() -> None:
    """In the encoder's child process (Linux): be killed when the process that feeds it dies.
    A batch worker killed mid-job would otherwise leave ffmpeg running on, finishing and
    re-creating the partial file the scheduler had removed."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _publish(tmp: Path, target: Path | str) -> None:
    """Move a finished temporary file into place, with the permissions of any new file
    (mkstemp made it private)."""
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(target, f"cannot write output ({exc.strerror})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_sibling(path: Path) -> Path:
    """A fresh, unused file name in the output's folder, so the final rename is atomic."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part.mp4", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise InputError(path, f"cannot write output ({exc.strerror})") from None
    return Path(name)


@dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds, the container's
    video_codec: str | None  # e.g. "h264"; None when there is no video stream
    audio_codec: str | None  # e.g. "aac"; None when there is no audio stream
    width: int  # pixels (0 without video)
    height: int
    fps: float  # frames per second (0 without video)
    pixel_format: str | None  # e.g. "yuv420p"
    metadata: dict[str, str]  # container tags


def probe(path: Path) -> MediaInfo:
    """Streams and duration of a media file, read from ffmpeg's banner (there is no ffprobe)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, check=False)
    log = proc.stderr.decode(errors="replace")
    if "Invalid data found" in log or "No such file" in log or "Input #0" not in log:
        raise InputError(path, "not a media file ffmpeg can read")
    duration = 0.0
    match = re.search(r"Duration: (\d+):(\d+):([\d.]+)", log)
    if match:
        h, m, s = match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    video = re.search(r"Stream #0:\d+.*?: Video: (\w+).*?, (\w+)(?:\([^)]*\))?, (\d+)x(\d+)", log)
    fps_match = re.search(r"Stream #0:\d+.*?: Video: .*?, ([\d.]+) (?:fps|tbr)", log)
    audio = re.search(r"Stream #0:\d+.*?: Audio: (\w+)", log)
    metadata: dict[str, str] = {}
    in_meta = False
    for line in log.splitlines():
        if line.strip() == "Metadata:" and not metadata and not in_meta:
            in_meta = True
            continue
        if in_meta:
            if ":" not in line or line.lstrip().startswith(("Duration", "Stream")):
                break
            key, value = line.split(":", 1)
            metadata[key.strip()] = value.strip()
    return MediaInfo(
        duration=duration,
        video_codec=video.group(1) if video else None,
        audio_codec=audio.group(1) if audio else None,
        width=int(video.group(3)) if video else 0,
        height=int(video.group(4)) if video else 0,
        fps=float(fps_match.group(1)) if fps_match else 0.0,
        pixel_format=video.group(2) if video else None,
        metadata=metadata,
    )


def read_frames(path: Path, width: int, height: int, batch: int = 16) -> Iterator[np.ndarray]:
    """Decode a video as (B, H, W, 3) uint8 RGB batches, streamed (flat memory)."""
    import ffmpeg

    args = (ffmpeg.input(str(path)).output("pipe:", format="rawvideo", pix_fmt="rgb24",
                                           map="0:v:0", fps_mode="passthrough")
            .global_args("-nostdin", "-loglevel", "error").compile(cmd=ffmpeg_exe()))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    size = width * height * 3
    try:
        while True:
            data = proc.stdout.read(size * batch)
            if not data:
                break
            n = len(data) // size
            yield np.frombuffer(data[: n * size], np.uint8).reshape(n, height, width, 3)
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


# Live output: frames and audio as they are made, to a file, stdout or an ffmpeg URL.
URL_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts",
               "rtmp": "flv", "rtmps": "flv"}
FRAGMENT_SECONDS = 0.2  # fragmented MP4 on stdout: a fragment (playable data) this often


def url_scheme(target: str) -> str | None:
    """The scheme of an ffmpeg output URL talkinghead passes on (``udp``, ``rtmp``, ...)."""
    scheme, sep, _ = target.partition("://")
    return scheme.lower() if sep and scheme.lower() in URL_FORMATS else None


# What ffmpeg 7 logs when its output task has died (then it cannot finish on its own).
OUTPUT_FAILED = (b"Error muxing a packet", b"Error submitting a packet to the muxer",
                 b"Task finished with error code")


class StreamWriter(_Finishing):
    """Frames and audio streamed to ffmpeg as they are made: video on ffmpeg's stdin, audio
    (float32 PCM at its own rate) on a second pipe, fed by a thread so that neither pipe can
    block the other. ``target``: an .mp4 path (written beside it and renamed on success, as
    ``VideoWriter``), ``-`` (fragmented MP4 on stdout, playable while it is written), or a
    URL (``udp://``, ``tcp://``, ``srt://``, ``rtp://``: MPEG-TS; ``rtmp://``: FLV)."""

    def __init__(self, target: str, *, width: int, height: int, fps: float, audio_rate: int,
                 audio_channels: int, crf: int = 18, metadata: Mapping[str, str] | None = None) -> None:
        import queue
        import threading

        self.target, self.width, self.height = target, width, height
        self.frames_written = 0
        self._tmp: Path | None = None
        self._scheme = url_scheme(target)
        self._live = target == "-" or self._scheme is not None
        read_fd, self._audio_fd = os.pipe()
        try:
            with interrupts.held():  # the file, its name and the encoder writing it: all or none
                if not self._live:
                    self._tmp = _temporary_sibling(Path(target))
                args = self._command(read_fd, fps, audio_rate, audio_channels, crf, metadata or {})
                self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close or abort)
                self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, pass_fds=(read_fd,),
                                              stdout=None if target == "-" else subprocess.DEVNULL,
                                              stderr=self._log)
        except BaseException:
            _stop(getattr(self, "_proc", None))
            os.close(self._audio_fd)
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(read_fd)
        self._audio: queue.Queue[bytes | None] = queue.Queue()
        self._audio_failed = False
        self._audio_thread = threading.Thread(target=self._feed_audio, daemon=True)
        self._audio_thread.start()
        self._ended = threading.Event()
        threading.Thread(target=self._watch_output, daemon=True).start()

    def _command(self, read_fd: int, fps: float, audio_rate: int, audio_channels: int, crf: int,
                 metadata: Mapping[str, str]) -> list[str]:
        args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
                "-framerate", f"{fps}", "-i", "pipe:0",
                "-f", "f32le", "-ar", str(audio_rate), "-ac", str(audio_channels),
                "-i", f"pipe:{read_fd}", "-map", "0:v", "-map", "1:a",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
                "-preset", X264_PRESET, "-c:a", "aac", "-ac", str(min(audio_channels, 2)),
                "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                "-flags:a", "+bitexact"]
        if self._live:  # no frame waits for later ones; a keyframe every second for late joiners
            args += ["-tune", "zerolatency", "-g", str(max(1, round(fps)))]
        for key, value in metadata.items():
            args += ["-metadata", f"{key}={value}"]
        if self.target == "-":
            args += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof",
                     "-frag_duration", str(round(FRAGMENT_SECONDS * 1e6)), "-f", "mp4", "pipe:1"]
        elif self._scheme is not None:
            args += ["-f", URL_FORMATS[self._scheme], self.target]
        else:
            args += ["-movflags", "+faststart", "-f", "mp4", str(self._tmp)]
        return args

    def _watch_output(self) -> None:
        """Kill ffmpeg once its output has failed (the reader of stdout gone, a broken
        connection, a full disk). ffmpeg then stops its muxer but waits for its audio reader,
        blocked on a pipe that gets no more audio, and stops reading video: both processes
        would wait on each other for ever. The video write then fails at once, with the
        reason in ffmpeg's log."""
        import select

        stdout = select.poll()
        if self.target == "-":
            stdout.register(sys.stdout.fileno(), 0)  # POLLERR: the pipe's reader has closed it
        while not self._ended.wait(0.1):
            gone = self.target == "-" and bool(stdout.poll(0))
            log = os.pread(self._log.fileno(), 1 << 16, 0)
            if gone or any(sign in log for sign in OUTPUT_FAILED):
                _stop(self._proc)
                return

    def _feed_audio(self) -> None:
        with os.fdopen(self._audio_fd, "wb") as pipe:
            while (data := self._audio.get()) is not None:
                try:
                    pipe.write(data)
                    pipe.flush()
                except (BrokenPipeError, OSError):
                    self._audio_failed = True
                    return

    def write_audio(self, samples: np.ndarray) -> None:
        """Append (n, channels) float32 samples (at the rate given)."""
        self._audio.put(np.ascontiguousarray(samples, "<f4").tobytes())

    def write(self, frames: np.ndarray) -> None:
        """Append (B, H, W, 3) uint8 frames."""
        self._send(frames)

    def close(self) -> None:
        """Finish the stream (and move a file into place)."""
        interrupts.check()
        assert self._proc.stdin is not None
        self._audio.put(None)
        self._audio_thread.join()
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        code = self._proc.wait()
        self._ended.set()
        if code != 0:
            raise self._failure()
        self._log.close()
        if self._tmp is not None:
            _publish(self._tmp, self.target)

    def abort(self) -> None:
        """Stop ffmpeg and delete a partial file."""
        self._audio.put(None)
        _stop(self._proc)
        self._ended.set()
        self._audio_thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._log.close()

    def _failure(self) -> Exception:
        lines = self._ffmpeg_log()
        log = "\n".join(lines)
        if self.target == "-" and ("Broken pipe" in log or not lines):
            return InputError("-", "the reader of the output stream went away")
        if "No space left" in log:
            return InputError(self.target, "no space left on the output's disk")
        if self._scheme is not None:
            reason = lines[-1] if lines else "no reason given"
            return InputError(self.target, f"ffmpeg cannot stream there: {reason}")
        return TalkingHeadError(f"ffmpeg failed writing {self.target}: "
                                f"{lines[-1] if lines else f'exit code {self._proc.returncode}'}")
