"""Setup reuse: what a second clip from one ``talkinghead.Avatar`` costs against the first.

    python bench/avatar.py [--photo P] [--audio A] [--size 512] [--seconds 4] [--out out/avatar.json]

``Avatar.from_photo`` does the work that depends on the photo alone: the motion weights, the
photo's loading, face fitting, encoding and the decoder's build. Every ``render`` after that
only analyses the audio, samples the motion, renders and encodes. This script renders two
different stretches of the audio (``--seconds`` each) from one Avatar and prints, per render,
the seconds spent on that setup and on the clip's own stages, and the ratio of the second
render's setup to the first's (the target: at most 0.10). For scale it also times one
``talkinghead.render`` call of the second clip, which does the setup again.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import soundfile as sf

import talkinghead

ROOT = Path(__file__).resolve().parents[1]


def clip_stages(result: talkinghead.RenderResult) -> dict[str, float]:
    return {k: round(v, 3) for k, v in result.stage_seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "examples" / "astronaut.png")
    parser.add_argument("--audio", type=Path, default=ROOT / "examples" / "speech.wav")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "avatar.json")
    args = parser.parse_args()
    data, rate = sf.read(args.audio)
    step = int(args.seconds * rate)
    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for k in range(2):
            path = Path(tmp) / f"clip{k}.wav"
            sf.write(path, data[k * step : (k + 1) * step], rate)
            clips.append(path)

        started = time.perf_counter()
        avatar = talkinghead.Avatar.from_photo(args.photo, size=args.size, device="cpu")
        setup = avatar.setup_seconds
        first_setup = {"weights": setup["weights"], "load photo": setup["load"],
                       "face": setup["face"], "encode": setup["encode"], "decoder": setup["render"]}
        first = avatar.render(clips[0], Path(tmp) / "first.mp4")
        first_total = time.perf_counter() - started

        started = time.perf_counter()
        second = avatar.render(clips[1], Path(tmp) / "second.mp4")
        second_total = time.perf_counter() - started
        # What the second render spent on setup stages: none of them run again.
        second_setup = {stage: second.stage_seconds.get(stage, 0.0)
                        for stage in ("weights", "face", "encode")}

        started = time.perf_counter()
        talkinghead.render(args.photo, clips[1], Path(tmp) / "again.mp4", size=args.size, device="cpu")
        one_call_total = time.perf_counter() - started

    ratio = sum(second_setup.values()) / sum(first_setup.values())
    rows = [("first render (from_photo + render)", first_setup, first, first_total),
            ("second render (same Avatar)", second_setup, second, second_total)]
    for label, setup_times, result, total in rows:
        print(f"{label}: {total:.2f} s for {result.frames} frames; setup {sum(setup_times.values()):.2f} s "
              f"({', '.join(f'{k} {v:.2f}' for k, v in setup_times.items())}); clip stages "
              f"{', '.join(f'{k} {v:.2f}' for k, v in result.stage_seconds.items())}")
    print(f"one talkinghead.render call of the second clip: {one_call_total:.2f} s")
    print(f"second render's setup / first's: {ratio:.3f} (target <= 0.10)")
    report = {"size": args.size, "clip_seconds": args.seconds, "first_setup": first_setup,
              "first_clip_stages": clip_stages(first), "first_total": first_total,
              "second_setup": second_setup, "second_clip_stages": clip_stages(second),
              "second_total": second_total, "one_call_total": one_call_total,
              "setup_ratio": ratio}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
