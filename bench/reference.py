"""Reference table: `talkinghead eval` on real talking videos next to talkinghead's renders.

    python bench/reference.py [--devdata ../shared/devdata] [--out out/reference]
                              [--motion baseline|diffusion]

Real rows: each video in devdata/videos, measured with its own audio. Render rows: every
devdata portrait speaking each devdata audio clip (512x512, seed 0, the --motion generator:
baseline unless told), measured with the clip
and the portrait as source, averaged over the portraits. Writes reference.md (the README's
table) and reference.json (every measurement).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from talkinghead.api import render
from talkinghead.config import RenderConfig
from talkinghead.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (
    ("corr_lag0", "corr@0", 2), ("corr_best", "corr best", 2), ("corr_best_lag_ms", "lag ms", 0),
    ("auc_lag0", "AUC@0", 2), ("auc_best", "AUC best", 2), ("bilabial_closure", "/p b m/ closed", 2),
    ("silence_ratio", "silence/speech", 2), ("blinks_per_min", "blinks/min", 0),
    ("blink_ms", "blink ms", 0), ("yaw_std", "yaw sd", 1), ("pitch_std", "pitch sd", 1),
    ("roll_std", "roll sd", 1), ("delta_pose_deg", "deg/frame", 2), ("jitter", "jitter", 4),
    ("face_ssim", "face SSIM", 2),
)


def _cell(values: list, digits: int) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ±{np.std(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "reference")
    parser.add_argument("--motion", choices=("baseline", "diffusion"), default="baseline",
                        help="the motion generator of the render rows (the README's table: baseline)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, list[dict]]] = []
    everything: dict[str, list[dict]] = {}

    for video in sorted((args.devdata / "videos").glob("*.mp4")):
        report = evaluate(video).as_dict()
        rows.append((f"real: {video.stem}", [report]))
        everything[video.name] = [report]
        print(f"measured {video.name}", flush=True)

    portraits = sorted((args.devdata / "portraits").iterdir())
    config = RenderConfig(motion=args.motion)
    with tempfile.TemporaryDirectory() as tmp:
        for audio in sorted((args.devdata / "audio").iterdir()):
            reports = []
            for photo in portraits:
                out = Path(tmp) / f"{photo.stem}__{audio.stem}.mp4"
                render(photo, audio, out, config=config, force=True)
                reports.append(evaluate(out, audio=audio, source=photo).as_dict())
                print(f"rendered and measured {out.name}", flush=True)
            rows.append((f"talkinghead {args.motion}: {audio.stem} ({len(portraits)} portraits)", reports))
            everything[audio.name] = reports
    all_renders = [r for name, group in rows if name.startswith("talkinghead") for r in group]
    rows.append((f"talkinghead {args.motion}: all {len(all_renders)} renders", all_renders))

    header = "| | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    lines = [header, "|---" * (len(COLUMNS) + 1) + "|"]
    for name, reports in rows:
        cells = [_cell([r[key] for r in reports], digits) for key, _, digits in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (args.out / "reference.md").write_text(table + "\n")
    (args.out / "reference.json").write_text(json.dumps(everything, indent=1))
    print(table)


if __name__ == "__main__":
    main()
