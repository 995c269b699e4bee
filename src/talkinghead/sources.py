"""Stage 5's inputs: where a clip's motion comes from, behind one interface.

A ``MotionSource`` reads the audio features at its own frame rate (or none at all) and gives
the motion for every output frame around the photo's own motion (``source``), before
``controls.apply_controls``, which the pipeline runs whatever the source:

- ``BaselineSource``: the hand-written rules of ``motion.baseline_motion``;
- ``DiffusionSource``: the diffusion transformer (``generator``), sampled at the rate it
  learned and retimed to the output's; the pipeline runs it through the streaming engine
  (``streamer``, ``stream.MotionStream``), so a clip and a stream of it give the same motion;
- ``GivenMotion``: motion read from a file or passed in memory, retimed, trimmed or held to
  the audio's length and applied relative to the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from talkinghead.config import SampleOptions
from talkinghead.controls import Controls, with_emotion
from talkinghead.motionspace import MotionSequence

if TYPE_CHECKING:
    from talkinghead.audio import AudioFeatures
    from talkinghead.generator import MotionGenerator
    from talkinghead.stream import MotionStream


class MotionSource(Protocol):
    """Motion for a clip. ``features_fps`` is the rate of the audio features it reads, or
    None when it reads no audio."""

    @property
    def features_fps(self) -> float | None: ...

    def motion(self, features: AudioFeatures | None, source: MotionSequence, controls: Controls, *,
               fps: float, n_frames: int, seed: int) -> MotionSequence:
        """(n_frames) motion at ``fps`` around ``source``, before the controls are applied."""
        ...

    def streamer(self, source: MotionSequence, controls: Controls, *, fps: float, seed: int
                 ) -> MotionStream | None:
        """The streaming engine's motion stage for this source (controls applied), or None
        when it needs the whole clip first."""
        ...


@dataclass(frozen=True)
class BaselineSource:
    fps: float  # the output's frame rate, at which the rules read the audio

    @property
    def features_fps(self) -> float:
        return self.fps

    def motion(self, features: AudioFeatures | None, source: MotionSequence, controls: Controls, *,
               fps: float, n_frames: int, seed: int) -> MotionSequence:
        from talkinghead.motion import baseline_motion

        assert features is not None
        return with_emotion(baseline_motion(features, source, seed), controls)

    def streamer(self, source: MotionSequence, controls: Controls, *, fps: float, seed: int) -> None:
        return None  # its smoothing and normalisation look at the whole clip


@dataclass(frozen=True)
class DiffusionSource:
    generator: MotionGenerator
    options: SampleOptions

    @property
    def features_fps(self) -> float:
        return self.generator.fps  # it learned motion at this rate

    def motion(self, features: AudioFeatures | None, source: MotionSequence, controls: Controls, *,
               fps: float, n_frames: int, seed: int) -> MotionSequence:
        from talkinghead.generator import diffusion_motion
        from talkinghead.motionfile import retime

        assert features is not None
        motion = diffusion_motion(features, source, controls, self.generator, seed=seed,
                                  options=self.options)
        return motion if self.generator.fps == fps else retime(motion, fps, n_frames)

    def streamer(self, source: MotionSequence, controls: Controls, *, fps: float, seed: int
                 ) -> MotionStream:
        from talkinghead.stream import MotionStream

        return MotionStream(self.generator, source, controls, fps=fps, seed=seed, options=self.options)


@dataclass(frozen=True)
class GivenMotion:
    given: MotionSequence  # at any frame rate, relative to its own first frame

    @property
    def features_fps(self) -> None:
        return None

    def motion(self, features: AudioFeatures | None, source: MotionSequence, controls: Controls, *,
               fps: float, n_frames: int, seed: int) -> MotionSequence:
        from talkinghead.motionfile import relative_to, retime

        return relative_to(retime(self.given, fps, n_frames), source)

    def streamer(self, source: MotionSequence, controls: Controls, *, fps: float, seed: int) -> None:
        return None  # fitted to the audio's length
