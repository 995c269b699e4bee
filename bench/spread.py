"""Does sampling keep the spread of the data the generator learned? Motion sampled from the
audio of real videos against those videos' own motion, in the motion space (no rendering).

    python bench/spread.py [--weights weights] [--realdata ../shared/realdata] [--split train]
                           [--cache out/video-cache] [--steps 8,16,32] [--eta 0,1] [--cfg 1,1.5]
                           [--draws 1]

For each sampler setting (steps x eta x audio guidance), the median over the split's videos of
the ratio sampled / real of: yaw, pitch, roll sd, rotation per frame, jaw sd, gaze yaw and
pitch sd, blinks per minute and blink length (at half closure; over the videos that blink),
and the lip lag
(sampled minus real, ms). Each video draws its own noise (seed: its index in the split, plus
1000 per further draw; ``--draws`` N averages each video's statistics over N draws): one seed
for every video would give every clip the same noise, so that its blinks, for one, fall at the
same moments in every clip and the figures are those of one draw. The split's motion and
audio conditioning come from ``train.cached_video_motion`` (the project's own encoder and audio front end).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

from talkinghead.controls import Controls
from talkinghead.generator import MotionGenerator, SampleOptions
from talkinghead.motionstats import clip_statistics
from talkinghead.train import TRAIN_FPS, cached_video_motion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realism import mean_of, split_videos

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("yaw_std", "pitch_std", "roll_std", "delta_pose_deg", "jaw_std", "gaze_yaw_std", "gaze_pitch_std",
        "blinks_per_min", "blink_ms")
SPEECH_ENERGY = 81  # column of audio_conditioning: speech-band energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    parser.add_argument("--split", default="train")
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "video-cache")
    parser.add_argument("--steps", default="8,16,32")
    parser.add_argument("--eta", default="0,1")
    parser.add_argument("--cfg", default="1.5")
    parser.add_argument("--draws", type=int, default=1, help="noise draws per video")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = MotionGenerator.load(args.weights)
    clips = []
    for video in split_videos(args.realdata, args.split):
        extracted = cached_video_motion(video, args.cache)
        if extracted is not None:
            clips.append(extracted)
    real = [clip_statistics(m, TRAIN_FPS, a[:, SPEECH_ENERGY]) for m, a in clips]
    print(f"{len(clips)} {args.split} videos; ratios sampled / real (median), lag difference ms",
          flush=True)
    header = "".join(f"{k:>16s}" for k in KEYS)
    print(f"{'steps':>5s} {'eta':>4s} {'cfg':>4s}{header}{'lag diff':>10s}")
    grid = itertools.product([int(s) for s in args.steps.split(",")], [float(e) for e in args.eta.split(",")],
                             [float(c) for c in args.cfg.split(",")])
    for steps, eta, cfg in grid:
        options = SampleOptions(steps=steps, eta=eta, cfg_audio=cfg)
        ratios, lags = {k: [] for k in KEYS}, []
        for i, ((_, audio), truth) in enumerate(zip(clips, real, strict=True)):
            draws = [generator.sample_conditioning(audio, Controls(), seed=1000 * d + i, options=options)
                     for d in range(args.draws)]
            each = [clip_statistics(m, TRAIN_FPS, audio[:, SPEECH_ENERGY]) for m in draws]
            stats = {k: mean_of(d[k] for d in each) for k in each[0]}
            for k in KEYS:
                if stats[k] is not None and truth[k]:  # clips without a real blink have no ratio
                    ratios[k].append(stats[k] / truth[k])
            if stats["lip_lag_ms"] is not None and truth["lip_lag_ms"] is not None:
                lags.append(stats["lip_lag_ms"] - truth["lip_lag_ms"])
        print(f"{steps:5d} {eta:4.1f} {cfg:4.1f}" + "".join(f"{np.median(ratios[k]):16.3f}" for k in KEYS)
              + f"{np.median(lags):10.1f}", flush=True)


if __name__ == "__main__":
    main()
