"""The streaming engine: stages 4-6 as the audio arrives, for the online path
(``Avatar.stream``, ``talkinghead render PHOTO -``) and the offline one alike (a file is one
stream that arrives at once), so the same audio and seed give the same frames either way.

Motion is made in ticks of ``StreamTiming.stride`` frames at the generator's rate (25 fps).
A tick runs as soon as the audio reaches ``lookahead`` frames past the frames it commits:
1. audio features of the new frames (``audio.FeatureStream``, exactly ``audio_features``'s);
2. phones: pocketsphinx fed up to the same point, its current best path read back
   (``audio.PhoneStream``; the newest phones are provisional, and only the uncommitted
   frames read them);
3. levels: the loudness and pitch references of the conditioning, measured over the last
   ``history`` frames heard (a clip's own levels would need its end);
4. one diffusion window over the ``stride + lookahead`` frames, conditioned on the last
   committed frames; its first ``stride`` frames are committed;
5. the committed frames around the photo's motion (the head eased and its recent mean held),
   at the output rate, controls applied against running means; then rendered, one frame at
   a time, on the caller's thread while steps 1-5 run on a thread of their own
   (``stream_batches``).
So the first frame waits for ``stride + lookahead`` frames of audio and a window, never for
the clip's end, and memory stays flat. Every step runs at points fixed by the audio alone,
whatever the sizes of the chunks it arrives in: the frames do not depend on the chunking.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from talkinghead.audio import SAMPLE_RATE, AudioFeatures, FeatureStream, PhoneStream
from talkinghead.config import SampleOptions
from talkinghead.controls import Controls, apply_controls
from talkinghead.errors import InputError
from talkinghead.generator import HEAD, AudioLevels, WindowSampler, around_source, audio_conditioning
from talkinghead.load import check_finite
from talkinghead.motion import SPEECH_RANGE_DB
from talkinghead.motionspace import POSE_NAMES, MotionSequence
from talkinghead.motionstats import GAZE

if TYPE_CHECKING:
    from talkinghead.generator import MotionGenerator
    from talkinghead.renderer import Decoder

# Levels never taken below these (about 30 dB under ordinary speech), so that a stream that
# opens with silence does not take the silence for its loud level.
LEVEL_FLOORS = AudioLevels(mel=-6.3, energy=-27.0, speech_energy=-28.0, pitch=150.0)
CONTROL_SECONDS = 2.0  # head distance and gaze requests hold on average over this long
# The generated gaze's and head's means are held at the network's over this many frames (the
# gaze's hold spanned the 30 frames the engine kept, not the 100 once written here).
GAZE_ANCHOR_FRAMES = 25
HEAD_ANCHOR_FRAMES = 100


@dataclass(frozen=True)
class StreamTiming:
    """When the engine commits motion, in frames at the generator's rate.

    A window is ``back + stride + lookahead + pad`` frames long (26), and its cost grows with
    that. Measured on 8 realdata train clips (streamed motion against the whole-clip
    sampler's; 2026-12-03): back 12 and pad 6 instead of 20 and 12 sample 40% fewer frames
    with no loss (jaw-loudness correlation 0.66 vs 0.65, head acceleration 0.26 vs 0.29
    deg/frame^2, roll sd 2.4 vs 2.9 deg; whole clip: 0.66, 0.13, 1.9); a lookahead of 2
    frames weakens the lips (0.60-0.63), 12 sampler steps too (0.61), 8 and 4 frames back and
    past are within noise (0.64). The head's filter and hold (same clips, motion space): head
    acceleration 0.26 -> 0.16, rotation per frame 0.85 -> 0.59 deg, yaw sd 3.3 -> 2.1 deg
    (whole-clip sampler: 0.13, 0.49, 2.1; real 0.60 deg per frame, yaw sd 2.4). With 120 ms
    of audio ahead instead of the whole clip's, the jaw opened less (its sd 0.92 of the
    sampler's, 8 train clips, 20 s each, each its own seed); the mouth's audio guidance taken
    1.5 times as far brings it to 0.99 (2: 1.05, 2.5: 1.10), its correlation with loudness
    0.535 (sampler 0.495, without 0.547)."""

    stride: int = 5  # frames committed per diffusion window (200 ms at 25 fps)
    lookahead: int = 3  # frames of audio heard past the last committed frame (120 ms)
    history: int = 750  # frames the conditioning's levels are measured over (30 s)
    pad: int = 6  # frames past the lookahead the window holds (its last audio frame repeated)
    fade: bool = True  # the first lookahead frames cross-fade from the previous window's guess
    back: int = 12  # frames before the committed ones each window redraws (and does not commit)
    smooth: float = 0.4  # head pose: the share of the way each frame moves from the last (1: as drawn)
    hold_head: bool = True  # the head's mean over the last HEAD_ANCHOR_FRAMES held at the network's
    # Audio guidance on the jaw and mouth, as a multiple of the options' reach past the plain
    # conditional (``WindowSampler``): 1.5 takes cfg_audio 1.5 to 1.75 on the mouth alone.
    mouth_guidance: float = 1.5

    @property
    def window(self) -> int:
        """Frames from the first uncommitted one to the last one heard."""
        return self.stride + self.lookahead


@dataclass(frozen=True)
class Frame:
    """One rendered frame of a stream."""

    index: int  # 0, 1, ... at the output rate
    time: float  # seconds: where the frame starts in the audio (index / fps)
    image: np.ndarray  # (H, W, 3) uint8 RGB


class LevelTracker:
    """The conditioning's reference levels over the last ``history`` frames heard."""

    def __init__(self, history: int) -> None:
        self._mel: deque[float] = deque(maxlen=history)
        self._energy: deque[float] = deque(maxlen=history)
        self._speech: deque[float] = deque(maxlen=history)
        self._pitch: deque[float] = deque(maxlen=history)  # 0 where unvoiced

    def add(self, features: dict[str, np.ndarray]) -> None:
        self._mel.extend(features["mel"].astype(np.float64).mean(axis=1).tolist())
        self._energy.extend(features["energy"].astype(np.float64).tolist())
        self._speech.extend(features["speech_energy"].astype(np.float64).tolist())
        self._pitch.extend(features["pitch"].astype(np.float64).tolist())

    def levels(self) -> AudioLevels:
        if not self._mel:
            return LEVEL_FLOORS
        pitch = np.asarray(self._pitch)
        voiced = pitch[pitch > 0]
        floors = LEVEL_FLOORS
        return AudioLevels(
            mel=max(float(np.percentile(np.asarray(self._mel), 95)), floors.mel),
            energy=max(float(np.percentile(np.asarray(self._energy), 95)), floors.energy),
            speech_energy=max(float(np.percentile(np.asarray(self._speech), 95)), floors.speech_energy),
            pitch=float(np.median(voiced)) if len(voiced) > 3 else floors.pitch)


class MotionStream:
    """Stages 4 and 5 as audio arrives: ``push`` 16 kHz mono samples, get the motion frames
    (at ``fps``, around ``source``, controls applied) that became final; ``finish`` gives the
    rest. The frame count at the end is ``audio.frame_count`` of the audio's length."""

    def __init__(self, generator: MotionGenerator, source: MotionSequence, controls: Controls, *,
                 fps: float, seed: int, options: SampleOptions = SampleOptions(),
                 timing: StreamTiming = StreamTiming()) -> None:
        self.generator, self.source, self.controls, self.fps = generator, source, controls, fps
        self.timing = timing
        self.rate = generator.fps  # motion is made at the generator's rate
        self._features = FeatureStream(self.rate)
        self._phones = PhoneStream()
        self._levels = LevelTracker(timing.history)
        self._sampler = WindowSampler(generator, controls, seed=seed, options=options,
                                      mouth_guidance=timing.mouth_guidance)
        self._pending: dict[str, np.ndarray] | None = None  # features from _pending_from
        self._provisional: dict[str, np.ndarray] | None = None  # frames after those, this tick only
        self._unheard = np.zeros(0, np.float32)  # samples not yet fed to the phone decoder
        self._heard = 0  # samples fed to the phone decoder
        self.committed = 0  # frames at the generator's rate
        self._history = np.zeros((0, generator.model.config.motion_dim), np.float32)  # committed
        self._anchor = np.zeros((0, generator.model.config.motion_dim), np.float32)  # last drawn
        self._made = np.zeros((0, generator.model.config.motion_dim))  # frames [_made_from, committed)
        self._made_from = 0
        self.emitted = 0  # frames at the output rate
        self._recent = np.zeros((0, 3))  # scale, gaze yaw and pitch of the last frames out
        self._finished = False
        self.seconds: dict[str, float] = {"audio": 0.0, "phones": 0.0, "motion": 0.0}
        self._noise_generator = np.random.default_rng(seed)
        d = generator.model.config.motion_dim
        # Per frame: the starting noise, then each sampler step's fresh noise (eta > 0), so
        # that windows redrawing a frame draw it from the same noise (fresh draws per window
        # made the head jitter twice as much as a file render's).
        self._draws = 1 + (options.steps if options.eta > 0 else 0)
        self._noise = np.zeros((0, self._draws, d), np.float32)  # frames [_noise_from, ...)
        self._noise_from = self._pending_from = 0  # _pending: features of frames from here
        self._guess = np.zeros((0, d), np.float32)  # the last window's frames past its commit
        self._shown: np.ndarray | None = None  # the head pose of the last frame committed

    def push(self, samples: np.ndarray) -> list[MotionSequence]:
        """Add 16 kHz mono float32 samples; the motion frames that became final, one
        sequence per window (the same sequences however the audio is cut)."""
        if self._finished:
            raise ValueError("push after finish")
        self._features.push(samples)
        self._unheard = np.concatenate([self._unheard, samples.astype(np.float32)])
        made = []
        while self._features.received >= self._end_of(self.committed + self.timing.window):
            upto = self.committed + self.timing.window
            self._analyse(upto, final=False)
            self._hear(self._end_of(upto) - self._heard, last=False)
            made.append(self._output(self._window(upto), final=False))
        return [m for m in made if m.n_frames]

    def finish(self) -> list[MotionSequence]:
        """No more audio: the remaining frames, one sequence per window."""
        self._finished = True
        self._features.finish()
        total = self._features.available()
        self._analyse(total, final=True)
        self._hear(len(self._unheard), last=True)
        made = []
        while self.committed < total:
            window = self._window(total)
            made.append(self._output(window, final=self.committed == total))
        if not made or self.fps != self.rate:  # retimed frames held past the last window
            made.append(self._output(np.zeros((0, self._made.shape[1])), final=True))
        return [m for m in made if m.n_frames]

    # 1-3: features, phones, levels.
    def _end_of(self, frame: int) -> int:
        """The sample where ``frame`` (at the generator's rate) ends."""
        return round(frame / self.rate * SAMPLE_RATE)

    def _analyse(self, upto: int, *, final: bool) -> None:
        """Features up to frame ``upto``. Before the end, the frames whose analysis windows lie
        inside the audio up to ``upto``'s end are final; the last one's pitch window reaches
        20 ms past it, so that frame is analysed provisionally, the audio past the end taken
        as silence, and again at the next tick. (Waiting for those 20 ms held every window
        back by a whole chunk of 40 ms.) Which frames are final and what the provisional one
        holds depend on ``upto`` alone, not on how much audio has come in."""
        clock = time.perf_counter()
        end = None if final else self._end_of(upto)
        settled = upto if final else self._features.available(end)
        if settled > self._features.done:
            new = self._features.analyse(settled)
            self._levels.add(new)
            self._pending = new if self._pending is None else {
                k: np.concatenate([self._pending[k], v]) for k, v in new.items()}
        self._provisional = None if end is None or settled >= upto else self._features.provisional(upto, end)
        self.seconds["audio"] += time.perf_counter() - clock

    def _hear(self, count: int, *, last: bool) -> None:
        """Feed the phone decoder the next ``count`` samples."""
        if count <= 0 and not last:
            return
        levels = self._levels.levels()
        pause = self._pending is not None and len(self._pending["speech_energy"]) > 0 and bool(
            self._pending["speech_energy"][-1] < levels.speech_energy - SPEECH_RANGE_DB)
        clock = time.perf_counter()
        self._phones.push(self._unheard[:count], pause=pause, last=last)
        self.seconds["phones"] += time.perf_counter() - clock
        self._unheard = self._unheard[count:]
        self._heard += count

    # 4: one window; ``stride`` frames after the ``back`` it redraws are committed.
    def _window(self, upto: int) -> np.ndarray:
        assert self._pending is not None
        heard = self._pending if self._provisional is None else {
            k: np.concatenate([v, self._provisional[k]]) for k, v in self._pending.items()}
        timing, c = self.timing, self.committed
        first = max(0, c - timing.back)  # the window starts here: frames redrawn, not committed
        n = min(timing.window, upto - c)
        commit = min(timing.stride, n)
        pending = {k: v[first - self._pending_from : c + n - self._pending_from]
                   for k, v in heard.items()}
        clock = time.perf_counter()
        phones = self._phones.track(first, c + n - first, self.rate)
        self.seconds["phones"] += time.perf_counter() - clock
        clock = time.perf_counter()
        rows = audio_conditioning(AudioFeatures(fps=self.rate, phones=phones, **pending),
                                  self._levels.levels())
        if timing.pad:
            rows = np.concatenate([rows, np.repeat(rows[-1:], timing.pad, axis=0)])
        d = self._history.shape[1]
        have = len(self._noise) + self._noise_from - first
        if have < len(rows):  # one noise per frame: neighbouring windows share it
            fresh = self._noise_generator.standard_normal((len(rows) - have, self._draws, d))
            self._noise = np.concatenate([self._noise, fresh.astype(np.float32)])
        noise = self._noise[first - self._noise_from : first - self._noise_from + len(rows)]  # (W, S, D)
        k = self.generator.model.config.context
        end = len(self._history) - (c - first)  # committed frames before the window: context
        context = self._history[max(0, end - k) : end]
        step_noise = noise[:, 1:].transpose(1, 0, 2) if self._draws > 1 else None
        full = self._sampler.window(rows, context, noise[:, 0], step_noise)[c - first : c - first + n]
        window = full[:commit].copy()  # (commit, D) normalised
        if timing.fade and len(self._guess):
            m = min(len(self._guess), commit)
            w = np.linspace(0.0, 1.0, m + 2)[1:-1, None]
            window[:m] = (1 - w) * self._guess[:m] + w * window[:m]
        self._guess = full[commit:]
        # Gaze and head drift when windows follow each other this closely (the network learned
        # to continue a window every 2.6 s, not every 0.2 s; the gaze 30 degrees aside within
        # seconds, the head's yaw spread 1.6 times the whole-clip sampler's, measured): their
        # recent means are held at the network's learned ones.
        # The mean taken is of the frames as drawn (before the hold), as the whole-clip sampler
        # takes its clip's: of the frames after it, the hold met only half the network's pull.
        self._anchor = np.concatenate([self._anchor, window])[-HEAD_ANCHOR_FRAMES:]
        head = list(HEAD) if timing.hold_head else []
        for held, span in ((GAZE, GAZE_ANCHOR_FRAMES), (head, HEAD_ANCHOR_FRAMES)):
            window[:, held] -= self._anchor[-span:, held].mean(axis=0)
        self.committed = c = c + commit
        self._history = np.concatenate([self._history, window])[-(timing.back + k) :]
        keep = max(0, c - timing.back)  # what the next window reads from
        self._pending = {key: v[keep - self._pending_from :] for key, v in self._pending.items()}
        self._noise = self._noise[keep - self._noise_from :]
        self._pending_from = self._noise_from = keep
        self.seconds["motion"] += time.perf_counter() - clock
        made = self.generator.denormalise(window)
        # Each tick redraws a short window from fresh noise: the head's frame-to-frame steps came
        # out twice the whole-clip sampler's. A first-order filter (about 60 ms) evens them out.
        if timing.smooth < 1.0:
            pose = slice(0, len(POSE_NAMES))
            for row in made:
                if self._shown is not None:
                    row[pose] = self._shown + timing.smooth * (row[pose] - self._shown)
                self._shown = row[pose].copy()
        return made

    # 5: around the photo, at the output rate, controls applied against running means.
    def _output(self, made: np.ndarray, *, final: bool) -> MotionSequence:
        self._made = np.concatenate([self._made, made])
        if self.fps == self.rate:
            start = self.emitted - self._made_from
            index = np.arange(start, len(self._made), dtype=np.float64)
        else:  # linear interpolation, as motionfile.retime; the last frame held past the end
            end = (round(self._features.received / SAMPLE_RATE * self.fps) if final
                   else int(np.floor((self.committed - 1) * self.fps / self.rate)) + 1)
            wanted = np.arange(self.emitted, max(end, 1) if final else end)
            index = np.clip(wanted * self.rate / self.fps, 0, self.committed - 1) - self._made_from
        if len(index) == 0 or len(self._made) == 0:
            return MotionSequence.from_array(np.zeros((0, self._made.shape[1]), np.float32), self.fps)
        grid = np.arange(len(self._made), dtype=np.float64)
        table = np.stack([np.interp(index, grid, self._made[:, j]) for j in range(self._made.shape[1])],
                         axis=1)
        motion = around_source(table, self.source, self.fps)
        self.emitted += motion.n_frames
        keep = int(np.floor(self.emitted * self.rate / self.fps))  # the next frame's lower neighbour
        keep = min(keep, self.committed - 1)
        if keep > self._made_from:
            self._made = self._made[keep - self._made_from :]
            self._made_from = keep
        # Head distance and a requested gaze are set against the means of the last
        # CONTROL_SECONDS, each frame's own (the whole clip's would need its end).
        recent = np.concatenate([self._recent, np.column_stack([motion.pose[:, 5], motion.gaze])])
        span = max(1, round(CONTROL_SECONDS * self.fps))
        means = np.stack([recent[max(0, i - span + 1) : i + 1].mean(axis=0)
                          for i in range(len(recent) - motion.n_frames, len(recent))])
        self._recent = recent[-(span - 1) :] if span > 1 else recent[:0]
        return apply_controls(motion, self.source, self.controls, scale_mean=means[:, 0],
                              gaze_mean=means[:, 1:])


def pcm_chunks(chunks: Iterable[np.ndarray | bytes], sample_rate: int) -> Iterator[np.ndarray]:
    """Float32 mono 16 kHz pieces of PCM ``chunks``: numpy arrays (float in [-1, 1], or
    integers at full scale; (n,) or (n, channels)) or bytes (16-bit little-endian mono), at
    ``sample_rate`` (resampled as they come)."""
    import soxr

    resampler = None if sample_rate == SAMPLE_RATE else soxr.ResampleStream(
        sample_rate, SAMPLE_RATE, 1, dtype="float32")
    for chunk in chunks:
        data = np.frombuffer(chunk, "<i2") if isinstance(chunk, bytes | bytearray | memoryview) \
            else np.asarray(chunk)
        if np.issubdtype(data.dtype, np.integer):
            data = data.astype(np.float64) / float(np.iinfo(data.dtype).max + 1)
        elif not np.issubdtype(data.dtype, np.floating):
            raise InputError(None, f"audio chunks must be numbers, got {data.dtype}")
        if data.ndim == 2:
            data = data.mean(axis=1)
        elif data.ndim != 1:
            raise InputError(None, f"audio chunks must be (n,) or (n, channels), got {data.shape}")
        check_finite(None, data)
        mono = np.clip(data, -1.0, 1.0).astype(np.float32)
        yield mono if resampler is None else resampler.resample_chunk(mono)
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def stream_batches(motion: MotionStream, decoder: Decoder, audio: Iterable[np.ndarray], *,
                   watermark: str | None = None,
                   seconds: dict[str, float] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Stage 6 over the motion stream: (index of the frame, (1, H, W, 3) uint8 frame), each
    rendered as soon as its motion is final and handed on at once, from 16 kHz mono ``audio``
    pieces. Seconds spent go to ``seconds`` by stage: audio, phones, motion (the engine's), render.

    The audio is read and the motion made on a second thread (``_MotionThread``) while this one
    renders: the next window is sampled while the last one's frames are drawn, so the stream
    keeps up with real-time audio on two cores (one after the other, the two stages took
    about 40 ms a frame, a real-time stream's whole budget). Frames go one at a time, not in
    a file render's batches: each leaves as soon as it is drawn (lag 0.38-0.39 s against
    0.40-0.41 s in batches of a window's 5, at 30 frames/s against 40-44 when the audio comes
    faster than real time; ``bench/latency.py``). The frames are the same on any number of
    threads and however the audio is cut."""
    import os

    import torch

    from talkinghead.provenance import watermark as draw_watermark

    seconds = {} if seconds is None else seconds
    made_so_far = 0
    # The motion thread takes one core and the renderer the rest, all but for the first frame
    # (the motion thread waits for it). The renderer on all cores whenever the motion thread
    # waited for audio measured worse once the motion ran without Python's lock
    # (``MotionGenerator.denoiser``): threads over the cores whenever a window began mid-frame
    # (lag 0.9-1.8 s and growing against 0.45 s with real-time input; 23.5 frames/s against
    # 29-32 fed as fast as taken; 2 cores, 2026-12-03).
    caller = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    alone, beside = max(1, min(caller, cores)), max(1, min(caller, cores - 1))
    maker = _MotionThread(motion, audio, seconds)
    with maker as windows:
        for made in windows:
            for k in range(made.n_frames):
                clock = time.perf_counter()
                torch.set_num_threads(beside if maker.first_frame_out.is_set() else alone)  # back after
                try:
                    images = decoder.render(made.frames(k, k + 1))
                finally:
                    torch.set_num_threads(caller)
                if watermark:
                    draw_watermark(images, watermark)
                seconds["render"] = seconds.get("render", 0.0) + time.perf_counter() - clock
                maker.first_frame_out.set()
                yield made_so_far + k, images
            made_so_far += made.n_frames


class _MotionThread:
    """Iterates the motion windows of ``audio`` made by ``motion`` on a thread of its own (with
    one torch thread: a window's matrices are too small to share), at most AHEAD windows ahead
    of the caller. Errors on that thread (bad audio, a failing source) are raised to the
    caller. Leaving the ``with`` block early stops the thread once its current step is done; a
    thread still waiting for the source's next chunk after STOP_WAIT seconds is left to end
    there (it is a daemon, and takes no further step)."""

    DONE = object()
    AHEAD = 4
    STOP_WAIT = 0.5
    PIECE = SAMPLE_RATE // 5  # samples pushed at a time: 200 ms

    def __init__(self, motion: MotionStream, audio: Iterable[np.ndarray], seconds: dict[str, float]) -> None:
        import queue
        import threading

        self._motion, self._audio, self._seconds = motion, audio, seconds
        # The first window's first frame is rendered before any further window is sampled: a
        # thread racing ahead took the GIL and the cores from it (first frame 0.33 s after its
        # motion instead of 0.03, measured on a file streamed to stdout).
        self.first_frame_out = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="talkinghead-motion", daemon=True)

    def __enter__(self) -> Iterator[MotionSequence]:
        self._thread.start()
        return self._windows()

    def __exit__(self, *exc: object) -> None:
        import queue

        self._stop.set()
        deadline = time.perf_counter() + self.STOP_WAIT
        while self._thread.is_alive() and time.perf_counter() < deadline:
            try:  # make room for a window being handed over
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.02)

    def _windows(self) -> Iterator[MotionSequence]:
        while True:
            item = self._queue.get()
            if item is self.DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _run(self) -> None:
        import torch

        torch.set_num_threads(1)  # this thread's own (OpenMP's settings are per thread)
        try:
            for samples in self._audio:
                # In pieces of about a window's stride, so that each window is handed over as
                # soon as it is made (the motion does not depend on how the audio is cut).
                for start in range(0, len(samples), self.PIECE):
                    if self._stop.is_set():
                        return
                    self._hand_over(self._timed(self._motion.push, samples[start : start + self.PIECE]))
            self._hand_over(self._timed(self._motion.finish))
            self._put(self.DONE)
        except BaseException as error:
            self._put(error)

    def _timed(self, step, *args) -> list[MotionSequence]:
        before = dict(self._motion.seconds)
        made = step(*args)
        for stage, value in self._motion.seconds.items():
            self._seconds[stage] = self._seconds.get(stage, 0.0) + value - before.get(stage, 0.0)
        return made

    def _hand_over(self, windows: list[MotionSequence]) -> None:
        for window in windows:
            self._put(window)
        while windows and not self.first_frame_out.wait(0.05) and not self._stop.is_set():
            pass

    def _put(self, item: object) -> None:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
