"""Motion files: what ``talkinghead extract`` writes and ``render --motion FILE`` reads.

JSON (``.json``), the full motion space::

    {"format": "talkinghead-motion", "version": 1, "fps": 25.0, "frames": T,
     "pose_names": [...POSE_NAMES], "expression_names": [...EXPRESSION_NAMES],
     "gaze_names": [...GAZE_NAMES], "units": {...},
     "pose": [[6 floats] * T], "expression": [[33 floats] * T], "gaze": [[2 floats] * T]}

Units and signs are those of ``motionspace``: degrees, inter-ocular units, ARKit
coefficients in [0, 1]. Extra keys (e.g. ``face_found``) are allowed and ignored on reading.

CSV (``.csv``), the layout of Epic's Live Link Face app, which face-animation tools (Unreal,
Blender and Maya importers) read: ``Timecode`` (HH:MM:SS:FF.sss, FF counted at the file's
frame rate, .sss the sub-frame), ``BlendShapeCount`` (61), the 52 ARKit blendshapes in Live Link Face's order
(PascalCase; the 19 talkinghead does not model are written as 0, the eyeLook* ones are derived
from gaze), then ``HeadYaw, HeadPitch, HeadRoll`` and ``LeftEyeYaw, LeftEyePitch,
LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll`` in radians with motionspace's signs.
Three columns follow that Live Link Face lacks: ``HeadTx, HeadTy, HeadScale`` (motionspace's
tx, ty, scale); files without them read as 0, 0, 1. On reading, columns are found by name
(any case), so a real Live Link Face export works. The frame rate comes from the timecodes,
which count whole frames: a CSV's frame rate is a whole number (JSON keeps the exact one).
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from talkinghead.errors import InputError
from talkinghead.motionspace import (
    EXPRESSION_NAMES,
    GAZE_NAMES,
    NEUTRAL_POSE,
    POSE_NAMES,
    MotionSequence,
)

FORMAT = "talkinghead-motion"
VERSION = 1
SUFFIXES = (".json", ".csv")

# Apple ARKit's 52 blendshapes, in the column order of Live Link Face's CSV export.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRight",
    "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)
ROTATION_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
EXTRA_COLUMNS = ("HeadTx", "HeadTy", "HeadScale")
EYE_LOOK_FULL_DEG = 30.0  # gaze angle at which an eyeLook* blendshape reaches 1
UNITS = {"yaw": "degrees", "pitch": "degrees", "roll": "degrees",
         "tx": "inter-ocular distances", "ty": "inter-ocular distances", "scale": "ratio",
         "expression": "ARKit coefficient, 0..1", "gaze": "degrees"}


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def csv_header() -> list[str]:
    return ["Timecode", "BlendShapeCount", *(_pascal(n) for n in ARKIT_NAMES), *ROTATION_COLUMNS,
            *EXTRA_COLUMNS]


def _timecode(frame: int, fps: float) -> str:
    per_second = max(1, round(fps))
    seconds, ff = divmod(frame, per_second)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{ff:02d}.000"  # whole frames: no sub-frame


def _write_atomically(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def write_motion(path: Path, motion: MotionSequence, extra: dict | None = None) -> None:
    """Write ``motion`` as JSON or CSV (by the suffix), atomically."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        doc = {"format": FORMAT, "version": VERSION, "fps": float(motion.fps),
               "frames": motion.n_frames, "pose_names": list(POSE_NAMES),
               "expression_names": list(EXPRESSION_NAMES), "gaze_names": list(GAZE_NAMES),
               "units": UNITS, **(extra or {}),
               "pose": np.round(motion.pose.astype(np.float64), 5).tolist(),
               "expression": np.round(motion.expression.astype(np.float64), 5).tolist(),
               "gaze": np.round(motion.gaze.astype(np.float64), 4).tolist()}
        _write_atomically(path, json.dumps(doc, separators=(",", ":")) + "\n")
    elif suffix == ".csv":
        _write_atomically(path, _to_csv(motion))
    else:
        raise InputError(path, "motion file must end in .json or .csv")


def _to_csv(motion: MotionSequence) -> str:
    ours = {name: motion.expression[:, i] for i, name in enumerate(EXPRESSION_NAMES)}
    yaw, pitch = motion.gaze[:, 0], motion.gaze[:, 1]
    look = lambda x: np.clip(x / EYE_LOOK_FULL_DEG, 0.0, 1.0)  # noqa: E731
    # Gaze yaw > 0 looks toward the subject's left: the left eye out, the right eye in.
    ours.update({"eyeLookOutLeft": look(yaw), "eyeLookInLeft": look(-yaw),
                 "eyeLookInRight": look(yaw), "eyeLookOutRight": look(-yaw),
                 "eyeLookUpLeft": look(pitch), "eyeLookUpRight": look(pitch),
                 "eyeLookDownLeft": look(-pitch), "eyeLookDownRight": look(-pitch)})
    zero = np.zeros(motion.n_frames)
    pose, gaze_rad = motion.pose.astype(np.float64), np.deg2rad(motion.gaze.astype(np.float64))
    columns = [ours.get(name, zero) for name in ARKIT_NAMES]
    columns += [np.deg2rad(pose[:, 0]), np.deg2rad(pose[:, 1]), np.deg2rad(pose[:, 2]),
                gaze_rad[:, 0], gaze_rad[:, 1], zero, gaze_rad[:, 0], gaze_rad[:, 1], zero,
                pose[:, 3], pose[:, 4], pose[:, 5]]
    table = np.stack(columns, axis=1)
    lines = [",".join(csv_header())]
    for t, row in enumerate(table):
        lines.append(",".join([_timecode(t, motion.fps), str(len(ARKIT_NAMES) + len(ROTATION_COLUMNS)),
                               *(f"{x:.6g}" for x in row)]))
    return "\n".join(lines) + "\n"


def read_motion(path: Path) -> MotionSequence:
    """Read a motion file written by ``write_motion`` (or a Live Link Face CSV).

    Raises InputError, one line naming the file and the problem, for anything unusable.
    """
    if not path.is_file():
        raise InputError(path, "motion file not found" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(path, "motion file must end in .json or .csv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read motion file ({exc})") from None
    if not text.strip():
        raise InputError(path, "motion file is empty")
    try:
        motion = _from_json(path, text) if suffix == ".json" else _from_csv(path, text)
    except ValueError as exc:  # MotionSequence's own checks: NaN, shapes, fps
        raise InputError(path, str(exc)) from None
    if motion.n_frames == 0:
        raise InputError(path, "motion file holds no frames")
    return motion


def _from_json(path: Path, text: str) -> MotionSequence:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(path, f"not a talkinghead motion file (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise InputError(path, f"motion file version {doc.get('version')!r} is not supported "
                               f"(this talkinghead reads version {VERSION})")
    fps = doc.get("fps")
    if not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise InputError(path, f"fps must be a positive number, got {fps!r}")
    parts = {}
    for key, names in (("pose", POSE_NAMES), ("expression", EXPRESSION_NAMES), ("gaze", GAZE_NAMES)):
        file_names = doc.get(f"{key}_names", list(names))
        rows = doc.get(key)
        try:
            table = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(path, f"\"{key}\" must be a list of rows of numbers") from None
        if table.ndim != 2 or table.shape[1] != len(file_names):
            raise InputError(path, f"\"{key}\" must be a list of rows of {len(file_names)} numbers")
        unknown = sorted(set(file_names) - set(names))
        if unknown:
            raise InputError(path, f"unknown {key} name {unknown[0]!r}")
        out = np.zeros((len(table), len(names)))
        if key == "pose":
            out[:] = NEUTRAL_POSE
        for j, name in enumerate(file_names):
            out[:, names.index(name)] = table[:, j]
        parts[key] = out
    lengths = {len(v) for v in parts.values()}
    if len(lengths) != 1:
        raise InputError(path, "\"pose\", \"expression\" and \"gaze\" have different frame counts")
    return MotionSequence(fps=float(fps), pose=parts["pose"].astype(np.float32),
                          expression=np.clip(parts["expression"], 0, 1).astype(np.float32),
                          gaze=parts["gaze"].astype(np.float32))


_TIMECODE = re.compile(r"^(\d+):(\d+):(\d+)[:;](\d+)(?:\.(\d+))?$")


def _csv_fps(path: Path, codes: list[str]) -> float:
    """Frame rate from Live Link Face timecodes: the rows of a whole second (one that starts
    at frame 0 and is followed by another), else the highest frame number + 1."""
    seconds: dict[int, list[int]] = {}
    for code in codes:
        match = _TIMECODE.match(code.strip())
        if not match:
            raise InputError(path, f"bad Timecode {code!r} (expected HH:MM:SS:FF.mmm)")
        h, m, s, ff = (int(g) for g in match.groups()[:4])
        seconds.setdefault(h * 3600 + m * 60 + s, []).append(ff)
    whole = [len(ffs) for second, ffs in seconds.items() if second + 1 in seconds and min(ffs) == 0]
    if whole:
        return float(np.median(whole))
    return float(max(max(ffs) for ffs in seconds.values()) + 1)


def _from_csv(path: Path, text: str) -> MotionSequence:
    rows = list(csv.reader(text.splitlines()))
    header = [h.strip() for h in rows[0]]
    lookup = {h.lower(): j for j, h in enumerate(header)}
    if "timecode" not in lookup:
        raise InputError(path, "not a Live Link Face CSV (no Timecode column)")
    present = [n for n in EXPRESSION_NAMES if n.lower() in lookup]
    if not present:
        raise InputError(path, "no ARKit blendshape column (e.g. JawOpen) in the CSV header")
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if not body:
        raise InputError(path, "motion file holds no frames")

    def column(name: str, default: float) -> np.ndarray:
        j = lookup.get(name.lower())
        if j is None:
            return np.full(len(body), default)
        try:
            return np.array([float(r[j]) for r in body])
        except (ValueError, IndexError):
            line = next(i for i, r in enumerate(body, start=2)
                        if len(r) <= j or not _is_number(r[j]))
            raise InputError(path, f"line {line}: column {header[j]} is not a number") from None

    fps = _csv_fps(path, [r[lookup["timecode"]] for r in body])
    expression = np.stack([column(n, 0.0) for n in EXPRESSION_NAMES], axis=1)
    pose = np.stack([np.rad2deg(column("HeadYaw", 0.0)), np.rad2deg(column("HeadPitch", 0.0)),
                     np.rad2deg(column("HeadRoll", 0.0)), column("HeadTx", 0.0),
                     column("HeadTy", 0.0), column("HeadScale", 1.0)], axis=1)
    gaze = np.rad2deg(np.stack([0.5 * (column("LeftEyeYaw", 0.0) + column("RightEyeYaw", 0.0)),
                                0.5 * (column("LeftEyePitch", 0.0) + column("RightEyePitch", 0.0))],
                               axis=1))
    return MotionSequence(fps=fps, pose=pose.astype(np.float32),
                          expression=np.clip(expression, 0, 1).astype(np.float32),
                          gaze=gaze.astype(np.float32))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def retime(motion: MotionSequence, fps: float, n_frames: int) -> MotionSequence:
    """``motion`` resampled to ``fps`` (linear interpolation) and made exactly ``n_frames``
    long: trimmed when longer, its last frame held when shorter."""
    times = np.arange(n_frames) / fps
    source_times = np.arange(motion.n_frames) / motion.fps
    table = motion.to_array().astype(np.float64)
    out = np.stack([np.interp(times, source_times, table[:, j]) for j in range(table.shape[1])], axis=1)
    return MotionSequence.from_array(out.astype(np.float32), fps)


def relative_to(motion: MotionSequence, source: MotionSequence) -> MotionSequence:
    """``motion`` applied relative to ``source``: each frame's change from the motion's first
    frame is added to the source's own state (expression clipped to [0, 1], scale multiplied).

    So a driving face's pose, expression and gaze move the photo's face as they moved the
    driving face, whatever the two faces' resting states.
    """
    first = motion.to_array()[:1].astype(np.float64)
    table = motion.to_array().astype(np.float64)
    base = source.to_array()[:1].astype(np.float64)
    out = base + (table - first)
    p, e = len(POSE_NAMES), len(EXPRESSION_NAMES)
    scale = POSE_NAMES.index("scale")
    out[:, scale] = base[0, scale] * table[:, scale] / max(first[0, scale], 1e-6)
    out[:, p:p + e] = np.clip(out[:, p:p + e], 0.0, 1.0)
    return MotionSequence.from_array(out.astype(np.float32), motion.fps)
