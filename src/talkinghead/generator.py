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
from pathlib import Path

import numpy as np

from talkinghead.audio import AudioFeatures
from talkinghead.config import SampleOptions  # the sampler's settings live with the other options
from talkinghead.controls import Controls
from talkinghead.errors import InputError
from talkinghead.motion import speech_activity
from talkinghead.motionspace import EXPRESSION_NAMES, MOTION_NAMES, POSE_NAMES, MotionSequence

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


def phone_indices(phones: np.ndarray) -> np.ndarray:
    """(T,) object labels -> (T,) int indices into PHONE_SET."""
    lookup = {p: i for i, p in enumerate(PHONE_SET)}
    return np.array([lookup.get(p, 1) for p in phones], np.int64)


def audio_conditioning(features: AudioFeatures) -> np.ndarray:
    """(T, AUDIO_DIM) float32: what the network hears at each frame."""
    n = features.n_frames
    mel = features.mel.astype(np.float64)
    reference = np.percentile(mel.mean(axis=1), 95)
    mel = np.clip(mel - reference, -5.0, 1.5) / 2.0  # log10 power, relative to the clip's loud
    energy = [np.clip((e - np.percentile(e, 95)) / 20.0, -3.0, 0.5)
              for e in (features.energy.astype(np.float64), features.speech_energy.astype(np.float64))]
    centroid = features.centroid.astype(np.float64) / 2000.0 - 0.75
    pitch = features.pitch.astype(np.float64)
    voiced = pitch > 0
    median = np.median(pitch[voiced]) if voiced.sum() > 3 else 150.0
    semitones = np.where(voiced, 12.0 * np.log2(np.where(voiced, pitch, 1.0) / median), 0.0) / 12.0
    phones = np.zeros((n, len(PHONE_SET)))
    phones[np.arange(n), phone_indices(features.phones)] = 1.0
    out = np.column_stack([mel, *energy, centroid, voiced, np.clip(semitones, -1.5, 1.5),
                           features.voicing, speech_activity(features), phones])
    return out.astype(np.float32)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MotionGenerator:
    """A MotionDiT with its weights, sampling motion for whole clips."""

    def __init__(self, model, device: str = "cpu", fps: float = 25.0) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.fps = fps  # the frame rate of the motion it was trained on, and samples at

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> MotionGenerator:
        """Weights from ``folder`` (MANIFEST.json + safetensors), verified against the manifest."""
        from safetensors.torch import load_file

        from talkinghead.models.motion_dit import MotionDiT, MotionDiTConfig

        manifest_path = folder / MANIFEST_FILE
        if not manifest_path.is_file():
            raise InputError(folder, f"no {MANIFEST_FILE} in the weights folder (run `make weights` or "
                                     "pass --weights DIR)")
        manifest = json.loads(manifest_path.read_text())
        entry = manifest["files"][WEIGHTS_FILE]
        path = folder / WEIGHTS_FILE
        size_ok = path.is_file() and path.stat().st_size == entry["bytes"]
        if not size_ok or file_sha256(path) != entry["sha256"]:
            raise InputError(path, "weights are missing or do not match MANIFEST.json (size or SHA-256)")
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
        import torch

        from talkinghead.diffusion.guidance import guide, needs_branches
        from talkinghead.diffusion.sampler import sample_ddim
        from talkinghead.diffusion.schedule import timesteps
        from talkinghead.diffusion.windows import join, window_starts

        model, cfg, dev = self.model, self.model.config, self.device
        n = len(audio)
        starts = window_starts(n, cfg.window, options.overlap)
        padded = np.concatenate([audio, np.repeat(audio[-1:], starts[-1] + cfg.window - n, axis=0)])
        out = np.zeros((n, cfg.motion_dim), np.float32)  # normalised motion
        generator = torch.Generator().manual_seed(seed)
        branches = needs_branches(options.cfg_audio, options.cfg_controls)
        b = 3 if branches else 1
        gaze_given = isinstance(controls.gaze, tuple)
        gaze = torch.tensor([controls.gaze if gaze_given else (0.0, 0.0)], dtype=torch.float32)
        keep_gaze = 1.0 if gaze_given else 0.0
        # Branch rows: nothing given, audio only, audio and controls.
        keep_audio = torch.tensor([0.0, 1.0, 1.0][-b:], device=dev)
        keep_controls = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                      [keep_gaze, 1.0, 1.0]][-b:], device=dev)
        conditions = dict(gaze=gaze.to(dev).expand(b, -1),
                          distance=torch.full((b,), controls.head_distance, device=dev),
                          emotion=torch.tensor(controls.emotion_vector(), device=dev)[None].expand(b, -1))
        ts = timesteps(options.steps)
        for i, start in enumerate(starts):
            window_audio = torch.from_numpy(padded[start : start + cfg.window]).to(dev)
            window_audio = window_audio[None].expand(b, -1, -1)  # (b, W, A)
            context = np.zeros((cfg.context, cfg.motion_dim), np.float32)
            have = min(start, cfg.context)
            if have:
                context[cfg.context - have :] = out[start - have : start]
            context_t = torch.from_numpy(context).to(dev)[None].expand(b, -1, -1)
            keep_context = torch.full((b,), 1.0 if start > 0 else 0.0, device=dev)

            def denoise(x: torch.Tensor, t: float, window_audio=window_audio, context_t=context_t,
                        keep_context=keep_context) -> torch.Tensor:
                estimate = model(x.expand(b, -1, -1), torch.full((b,), t, device=dev), window_audio,
                                 context_t, **conditions, keep_audio=keep_audio,
                                 keep_context=keep_context, keep_controls=keep_controls)
                if not branches:
                    return estimate
                return guide(estimate[0:1], estimate[1:2], estimate[2:3], w_audio=options.cfg_audio,
                             w_controls=options.cfg_controls)

            noise = torch.randn((1, cfg.window, cfg.motion_dim), generator=generator).to(dev)
            chunk = sample_ddim(denoise, noise, ts, eta=options.eta, generator=generator)
            chunk = chunk[0].cpu().numpy()  # (W, D)
            join(out, start, chunk, options.overlap, first=i == 0)
        mean, std = (t.cpu().numpy() for t in (model.motion_mean, model.motion_std))
        return out * std + mean


def diffusion_motion(features: AudioFeatures, source: MotionSequence, controls: Controls,
                     generator: MotionGenerator, *, seed: int,
                     options: SampleOptions = SampleOptions()) -> MotionSequence:
    """Motion for every frame of ``features`` around the ``source`` motion (before
    ``controls.apply_controls``, which the pipeline runs for every generator)."""
    generated = generator.sample(features, controls, seed=seed, options=options).astype(np.float64)
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
    return MotionSequence(fps=features.fps, pose=pose.astype(np.float32),
                          expression=np.clip(expression, 0.0, 1.0).astype(np.float32),
                          gaze=gaze.astype(np.float32))
