"""The diffusion motion generator: MotionDiT weights, the audio conditioning it reads, and
windowed sampling over audio of any length.

Steps of ``MotionGenerator.sample``:
1. audio features -> per-frame conditioning (``audio_conditioning``), normalised per clip so
   that loudness and voice pitch of the recording do not matter;
2. for each overlapping window, in order: seeded noise, a few DDIM steps over the guided
   denoiser, conditioned on the frames just before the window;
3. windows cross-fade over their overlap; the result is un-normalised motion around a neutral
   source (``diffusion_motion`` puts it around the photo's own motion).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkinghead.audio import AudioFeatures
from talkinghead.config import SampleOptions  # the sampler's settings live with the other options
from talkinghead.controls import Controls
from talkinghead.errors import InputError
from talkinghead.motion import SPEECH_RANGE_DB
from talkinghead.motionspace import EXPRESSION_NAMES, MOTION_NAMES, POSE_NAMES, MotionSequence
from talkinghead.motionstats import BLINK, GAZE

if TYPE_CHECKING:
    from talkinghead.models.motion_dit import MotionDiT

PHONE_SET: tuple[str, ...] = (
    "", "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F",
    "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
    "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # pocketsphinx's ARPAbet phones; anything else (noise tokens) counts as SIL
AUDIO_DIM = 80 + 7 + len(PHONE_SET)
WEIGHTS_FILE = "motion_dit.safetensors"
MANIFEST_FILE = "MANIFEST.json"
# Mouth channels the generator sets outright (the photo's own values are replaced, as the
# baseline does), so that a photo with a parted mouth still closes on /p b m/.
REPLACED = ("jawOpen", "mouthFunnel", "mouthPucker", "mouthLowerDownLeft", "mouthLowerDownRight")
HEAD = (0, 1, 2)  # yaw, pitch, roll in POSE_NAMES
MOUTH = tuple(i for i, name in enumerate(MOTION_NAMES) if name.startswith(("jaw", "mouth")))  # lips and jaw


def phone_indices(phones: np.ndarray) -> np.ndarray:
    """(T,) object labels -> (T,) int indices into PHONE_SET."""
    lookup = {p: i for i, p in enumerate(PHONE_SET)}
    return np.array([lookup.get(p, 1) for p in phones], np.int64)


@dataclass(frozen=True)
class AudioLevels:
    """The reference levels ``audio_conditioning`` makes the audio relative to, so that the
    recording's loudness and the voice's pitch do not matter."""

    mel: float  # log10 power: 95th percentile of the frames' mean log-mel
    energy: float  # dB: 95th percentile of the full-band loudness
    speech_energy: float  # dB: 95th percentile of the speech-band loudness
    pitch: float  # Hz: median pitch of the voiced frames


def clip_levels(features: AudioFeatures) -> AudioLevels:
    """The levels of a whole clip (training, and ``sample`` on a clip)."""
    pitch = features.pitch.astype(np.float64)
    voiced = pitch > 0
    return AudioLevels(mel=float(np.percentile(features.mel.astype(np.float64).mean(axis=1), 95)),
                       energy=float(np.percentile(features.energy.astype(np.float64), 95)),
                       speech_energy=float(np.percentile(features.speech_energy.astype(np.float64), 95)),
                       pitch=float(np.median(pitch[voiced])) if voiced.sum() > 3 else 150.0)


def audio_conditioning(features: AudioFeatures, levels: AudioLevels | None = None) -> np.ndarray:
    """(T, AUDIO_DIM) float32: what the network hears at each frame, relative to ``levels``
    (default: the clip's own, ``clip_levels``; the streaming engine passes levels heard so far)."""
    levels = levels or clip_levels(features)
    n = features.n_frames
    mel = features.mel.astype(np.float64)
    mel = np.clip(mel - levels.mel, -5.0, 1.5) / 2.0  # log10 power, relative to the clip's loud
    energy = [np.clip((e.astype(np.float64) - loud) / 20.0, -3.0, 0.5)
              for e, loud in ((features.energy, levels.energy),
                              (features.speech_energy, levels.speech_energy))]
    centroid = features.centroid.astype(np.float64) / 2000.0 - 0.75
    pitch = features.pitch.astype(np.float64)
    voiced = pitch > 0
    semitones = np.where(voiced, 12.0 * np.log2(np.where(voiced, pitch, 1.0) / levels.pitch), 0.0) / 12.0
    phones = np.zeros((n, len(PHONE_SET)))
    phones[np.arange(n), phone_indices(features.phones)] = 1.0
    activity = np.clip((features.speech_energy.astype(np.float64) - (levels.speech_energy - SPEECH_RANGE_DB))
                       / SPEECH_RANGE_DB, 0.0, 1.0)  # motion.speech_activity at these levels
    out = np.column_stack([mel, *energy, centroid, voiced, np.clip(semitones, -1.5, 1.5),
                           features.voicing, activity, phones])
    return out.astype(np.float32)


def verified_weights(folder: Path, name: str, remedy: str) -> tuple[dict, Path]:
    """The MANIFEST.json of a weights ``folder`` and the path of its file ``name``, checked
    against the manifest's size and SHA-256 (InputError naming the file otherwise; ``remedy``
    says how to get the weights)."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise InputError(folder, f"no {MANIFEST_FILE} in the weights folder ({remedy})")
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["files"][name]
    path = folder / name
    size_ok = path.is_file() and path.stat().st_size == entry["bytes"]
    if not size_ok or file_sha256(path) != entry["sha256"]:
        raise InputError(path, "weights are missing or do not match MANIFEST.json (size or SHA-256)")
    return manifest, path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MotionGenerator:
    """A MotionDiT with its weights, sampling motion for whole clips."""

    def __init__(self, model, device: str = "cpu", fps: float = 25.0) -> None:
        import threading

        self.model = model.to(device).eval()
        self.device = device
        self.fps = fps  # the frame rate of the motion it was trained on, and samples at
        self._denoiser: Callable | None = None
        self._tracing = threading.Lock()

    def denoiser(self) -> Callable:
        """``model.denoise`` (x, t, audio, context, controls: ``Conditions``' fields) traced by
        TorchScript, once (about 0.08 s; it takes any batch and window length: the shapes
        only flow through). The same numbers bit for bit, and it runs without holding
        Python's lock: the streaming engine's motion thread and the renderer took turns at
        it, each 35-40% slower side by side (1-thread window 98 -> 136 ms, frame 27 -> 37 ms);
        traced, neither slows down. Call it under ``torch.jit.optimized_execution(False)``:
        the JIT's optimising passes cost 50-70 ms on the first calls and gained nothing here."""
        with self._tracing:
            if self._denoiser is None:
                self._denoiser = self._trace()
            return self._denoiser

    def _trace(self) -> Callable:
        import warnings

        import torch

        from talkinghead.models.motion_dit import Conditions

        class Denoise(torch.nn.Module):  # Conditions taken apart: a trace takes tensors
            def __init__(self, model: MotionDiT) -> None:
                super().__init__()
                self.model = model

            def forward(self, x, t, audio, context, controls):
                return self.model.denoise(x, t, Conditions(audio=audio, context=context, controls=controls))

        cfg, dev, b, w = self.model.config, self.device, 3, self.model.config.window
        example = (torch.zeros(b, w, cfg.motion_dim, device=dev), torch.full((b,), 0.5, device=dev),
                   torch.zeros(b, w, cfg.width, device=dev),
                   torch.zeros(b, cfg.context, cfg.width, device=dev),
                   torch.zeros(b, cfg.width, device=dev))
        with warnings.catch_warnings(), torch.no_grad(), torch.jit.optimized_execution(False):
            warnings.simplefilter("ignore")  # TracerWarning: len() of a constant kernel
            return torch.jit.trace(Denoise(self.model), example, check_trace=False)

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> MotionGenerator:
        """Weights from ``folder`` (MANIFEST.json + safetensors), verified against the manifest."""
        from safetensors.torch import load_file

        from talkinghead.models.motion_dit import MotionDiT, MotionDiTConfig

        manifest, path = verified_weights(folder, WEIGHTS_FILE, "run `make weights` or pass --weights DIR")
        config = dict(manifest["config"])
        config["slow"] = tuple(config.get("slow", ()))
        model = MotionDiT(MotionDiTConfig(**config))
        model.load_state_dict(load_file(str(path)), strict=True)
        return cls(model, device, float(manifest.get("fps", 25.0)))

    def sample(self, features: AudioFeatures, controls: Controls, *, seed: int,
               options: SampleOptions = SampleOptions()) -> np.ndarray:
        """(T, D) motion for every frame of ``features``, around a neutral source."""
        return self.sample_conditioning(audio_conditioning(features), controls, seed=seed, options=options)

    def sample_conditioning(self, audio: np.ndarray, controls: Controls, *, seed: int,
                            options: SampleOptions = SampleOptions()) -> np.ndarray:
        """``sample`` from (T, A) audio conditioning (``audio_conditioning``) already made."""
        from talkinghead.diffusion.windows import join, window_starts

        cfg = self.model.config
        n = len(audio)
        starts = window_starts(n, cfg.window, options.overlap)
        padded = np.concatenate([audio, np.repeat(audio[-1:], starts[-1] + cfg.window - n, axis=0)])
        out = np.zeros((n, cfg.motion_dim), np.float32)  # normalised motion
        sampler = WindowSampler(self, controls, seed=seed, options=options)
        for i, start in enumerate(starts):
            have = min(start, cfg.context)
            chunk = sampler.window(padded[start : start + cfg.window], out[start - have : start])
            join(out, start, chunk, options.overlap, first=i == 0)
        # The gaze rests, on average, where the network learned it to (about the photo's own):
        # held on its target, the network still drifts to a side that depends on the emotion
        # condition (yaw -6 degrees neutral, +5 angry, measured on val audio). The head drifts
        # too: its yaw sat +2.9 to +8.1 degrees and its roll -5.7 to +1.1 over whole clips
        # (10 realdata train clips, 2 seeds; the data's mean yaw is +0.5), the same side for 9
        # of 10, so every render looked a little aside; held the same way. The streaming engine
        # holds both over its last frames.
        out[:, GAZE] -= out[:, GAZE].mean(axis=0)
        out[:, HEAD] -= out[:, HEAD].mean(axis=0)
        return self.denormalise(out)

    def denormalise(self, motion: np.ndarray) -> np.ndarray:
        """(T, D) network-space motion -> motion around a neutral source."""
        mean, std = (t.cpu().numpy() for t in (self.model.motion_mean, self.model.motion_std))
        return motion * std + mean


class WindowSampler:
    """One window at a time, in order: seeded noise walked down by DDIM over the guided
    denoiser, conditioned on the window's audio and the motion just before it. ``sample``
    draws its windows through one; the streaming engine draws shorter ones as audio arrives.
    The same seed and the same sequence of windows give the same motion."""

    def __init__(self, generator: MotionGenerator, controls: Controls, *, seed: int,
                 options: SampleOptions = SampleOptions(), mouth_guidance: float = 1.0) -> None:
        """``mouth_guidance``: the jaw and mouth channels' audio guidance goes this many times
        as far past the plain conditional estimate as ``options.cfg_audio`` takes the rest
        (2: cfg_audio 1.5 is 2.0 on the mouth)."""
        import torch

        from talkinghead.diffusion.guidance import needs_branches
        from talkinghead.diffusion.schedule import timesteps

        self.model, self.device, self.options = generator.model, generator.device, options
        self._owner = generator
        dev = self.device
        self.generator = torch.Generator().manual_seed(seed)
        self.branches = needs_branches(options.cfg_audio, options.cfg_controls)
        b = self.b = 3 if self.branches else 1
        # Without a gaze asked for, the photo's own (0 in the generated motion) is the target:
        # real gaze returns to where the speaker looks most (``train.load_video_clips``).
        # ``camera`` gaze is set against the head afterwards (``apply_controls``).
        gaze = torch.tensor([controls.gaze if isinstance(controls.gaze, tuple) else (0.0, 0.0)],
                            dtype=torch.float32)
        # Branch rows: nothing given, audio only, audio and controls.
        self.keep_audio = torch.tensor([0.0, 1.0, 1.0][-b:], device=dev)
        self.keep_controls = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                           [1.0, 1.0, 1.0]][-b:], device=dev)
        self.conditions = dict(
            gaze=gaze.to(dev).expand(b, -1),
            distance=torch.full((b,), controls.head_distance, device=dev),
            emotion=torch.tensor(controls.emotion_vector(), device=dev)[None].expand(b, -1))
        self.ts = timesteps(options.steps)
        self.w_audio: float | torch.Tensor = options.cfg_audio
        if mouth_guidance != 1.0:
            w_audio = torch.full((generator.model.config.motion_dim,), options.cfg_audio, device=dev)
            w_audio[list(MOUTH)] = 1.0 + mouth_guidance * (options.cfg_audio - 1.0)
            self.w_audio = w_audio

    def window(self, audio: np.ndarray, context: np.ndarray, noise: np.ndarray | None = None,
               step_noise: np.ndarray | None = None) -> np.ndarray:
        """(W, D) normalised motion for (W, A) audio conditioning, after ``context`` (up to K
        frames of normalised motion just before the window; none at the start). W may be
        shorter than the network's window: the network then sees the first positions only.
        ``noise`` (W, D) is the starting noise and ``step_noise`` (steps, W, D) each step's
        fresh noise (default: drawn from the seeded generator)."""
        import torch

        from talkinghead.diffusion.guidance import guide
        from talkinghead.diffusion.sampler import sample_ddim

        model, cfg, dev, b = self.model, self.model.config, self.device, self.b
        w = len(audio)
        window_audio = torch.from_numpy(np.ascontiguousarray(audio, np.float32)).to(dev)
        window_audio = window_audio[None].expand(b, -1, -1)  # (b, W, A)
        padded_context = np.zeros((cfg.context, cfg.motion_dim), np.float32)
        if len(context):
            padded_context[cfg.context - len(context) :] = context
        context_t = torch.from_numpy(padded_context).to(dev)[None].expand(b, -1, -1)
        keep_context = torch.full((b,), 1.0 if len(context) else 0.0, device=dev)
        # Audio, context and controls are embedded once per window, not once per step.
        with torch.no_grad():
            conditions = model.condition(window_audio, context_t, keep_audio=self.keep_audio,
                                         keep_context=keep_context, keep_controls=self.keep_controls,
                                         **self.conditions)

        traced = self._owner.denoiser()
        parts = (conditions.audio, conditions.context, conditions.controls)

        def denoise(x: torch.Tensor, t: float) -> torch.Tensor:
            estimate = traced(x.expand(b, -1, -1), torch.full((b,), t, device=dev), *parts)
            if not self.branches:
                return estimate
            return guide(estimate[0:1], estimate[1:2], estimate[2:3], w_audio=self.w_audio,
                         w_controls=self.options.cfg_controls)

        noise_t = (torch.randn((1, w, cfg.motion_dim), generator=self.generator) if noise is None
                   else torch.from_numpy(np.ascontiguousarray(noise, np.float32))[None]).to(dev)
        threads = torch.get_num_threads()
        if w < cfg.window and dev == "cpu":
            # A short window's matrices are too small to share: a second thread only waits
            # (10-20x slower on a busy 2-core machine, measured).
            torch.set_num_threads(1)
        try:
            fresh = None if step_noise is None else (
                torch.from_numpy(np.ascontiguousarray(step_noise, np.float32))[:, None].to(dev))
            with torch.jit.optimized_execution(False):  # see MotionGenerator.denoiser
                chunk = sample_ddim(denoise, noise_t, self.ts, eta=self.options.eta,
                                    generator=self.generator, step_noise=fresh)
        finally:
            torch.set_num_threads(threads)
        return tie_blinks(chunk[0].cpu().numpy(), model)  # (W, D)


def tie_blinks(motion: np.ndarray, model: MotionDiT | None = None) -> np.ndarray:
    """``motion`` with both eyelids at their mean: people blink both eyes at once. Training
    ties them in the real clips (the encoder reads the two lids with separate noise,
    correlation about 0.9 on the realdata train split, and a generator trained on that noise
    winks now and then), and the synthetic corpus moves them together; sampling ties them
    too, since a sampler that draws fresh noise per step (eta > 0) gives each lid its own.
    With ``model``, ``motion`` is in its normalised space (tied as the motion they stand for)."""
    i = list(BLINK)
    tied = motion.copy()
    if model is None:
        tied[:, i] = motion[:, i].mean(axis=1, keepdims=True)
        return tied
    mean, std = (b.detach().cpu().numpy()[i] for b in (model.motion_mean, model.motion_std))
    lids = (motion[:, i] * std + mean).mean(axis=1, keepdims=True)
    tied[:, i] = (lids - mean) / std
    return tied


def diffusion_motion(features: AudioFeatures, source: MotionSequence, controls: Controls,
                     generator: MotionGenerator, *, seed: int,
                     options: SampleOptions = SampleOptions()) -> MotionSequence:
    """Motion for every frame of ``features`` around the ``source`` motion (before
    ``controls.apply_controls``, which the pipeline runs for every generator)."""
    generated = generator.sample(features, controls, seed=seed, options=options)
    return around_source(generated, source, features.fps)


def around_source(generated: np.ndarray, source: MotionSequence, fps: float) -> MotionSequence:
    """(T, D) generated motion (``MotionGenerator.denormalise``d) put around the photo's own
    motion: pose and gaze added to the source's, mouth channels in REPLACED set outright."""
    generated = generated.astype(np.float64)
    p, e = len(POSE_NAMES), len(EXPRESSION_NAMES)
    if generated.shape[1] != len(MOTION_NAMES):
        raise ValueError(f"generator gives {generated.shape[1]} channels, expected {len(MOTION_NAMES)}")
    pose = source.pose[0].astype(np.float64) + generated[:, :p]
    pose[:, 5] = source.pose[0, 5] * generated[:, 5]
    expression = source.expression[0].astype(np.float64) + generated[:, p : p + e]
    for name in REPLACED:
        i = EXPRESSION_NAMES.index(name)
        expression[:, i] = generated[:, p + i]
    gaze = source.gaze[0].astype(np.float64) + generated[:, p + e :]
    return MotionSequence(fps=fps, pose=pose.astype(np.float32),
                          expression=np.clip(expression, 0.0, 1.0).astype(np.float32),
                          gaze=gaze.astype(np.float32))
