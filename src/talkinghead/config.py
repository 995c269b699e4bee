"""Run configuration: the one home for defaults. ``RenderConfig`` holds every setting of a
render, with the motion controls (``Controls``) and the sampler's settings (``SampleOptions``)
nested in it; ``with_options`` reads ``render``'s long option names, which the CLI, batch rows
and the Python API all pass. Ranges are checked when a config is made (``limits``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from talkinghead.controls import Controls, parse_emotion, parse_gaze
from talkinghead.errors import InputError
from talkinghead.limits import OptionError, check_range
from talkinghead.motionfile import SUFFIXES

Device = Literal["cpu", "cuda", "auto"]
MotionKind = Literal["baseline", "diffusion"]
MouthKind = Literal["learned", "procedural"]
WATERMARK_TEXT = "AI-generated"


def shipped_weights() -> Path:
    """The weights the project trains and ships: inside the installed package (a wheel), else
    ``weights/`` at the root of the source checkout (an editable install)."""
    packaged = Path(str(resources.files("talkinghead") / "weights"))
    if (packaged / "MANIFEST.json").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "weights"


DEFAULT_WEIGHTS = shipped_weights()
MOUTH_WEIGHTS = DEFAULT_WEIGHTS / "mouth"  # the learned mouth interior (renderer.mouthnet)


@dataclass(frozen=True)
class SampleOptions:
    """The diffusion sampler's settings."""

    steps: int = 16  # DDIM steps per window
    cfg_audio: float = 1.5  # guidance scale of the audio condition (1 = plain conditional)
    cfg_controls: float = 1.0  # guidance scale of the controls (gaze, distance, emotion)
    overlap: int = 10  # frames shared (and cross-faded) by consecutive windows
    eta: float = 1.0  # fresh noise per DDIM step (0 deterministic, 1 ancestral; seeded either way)

    def __post_init__(self) -> None:
        for name in ("steps", "cfg_audio", "cfg_controls", "eta"):
            check_range(name, getattr(self, name))


@dataclass(frozen=True)
class RenderConfig:
    fps: float = 25.0  # output frames per second
    size: int = 512  # side of the face-centred square crop, pixels (ignored with full_frame)
    full_frame: bool = False  # keep the photo's own framing instead of a face-centred crop
    max_side: int = 1920  # full-frame outputs are scaled down to fit this, pixels
    seed: int = 0  # one seed drives every random choice: same inputs + seed = same video
    device: Device = "auto"  # torch device for motion and rendering
    motion: MotionKind = "diffusion"  # motion generator: the diffusion transformer, or rules
    weights: Path = DEFAULT_WEIGHTS  # folder with the diffusion weights and their MANIFEST.json
    motion_file: str | None = None  # a motion file (.json/.csv) played instead of the generator
    # Mouth interior: drawn by rules ("procedural"), or repainted by a network: the shipped one
    # ("learned") or the one in a folder of mouth weights (``talkinghead train-mouth --out``).
    mouth: str = "procedural"
    face_index: int | None = None  # which face when several are found (0 = largest)
    batch_size: int = 8  # frames rendered per batch
    crf: int = 18  # x264 quality (lower is better, 18 is visually lossless)
    min_face_px: int = 48  # faces narrower than this in the photo are refused, pixels
    watermark: str | None = None  # a visible label drawn into every frame, or none
    controls: Controls = field(default_factory=Controls)  # gaze, distance, emotion, amplitudes
    sampler: SampleOptions = field(default_factory=SampleOptions)  # the diffusion sampler

    def __post_init__(self) -> None:
        check_range("fps", self.fps)
        check_range("size", self.size)
        if self.size % 2:
            raise OptionError("size", f"must be even (H.264 needs even frame sides), got {self.size}")
        check_range("batch_size", self.batch_size)
        check_range("crf", self.crf)
        if self.mouth not in get_args(MouthKind) and not Path(self.mouth).is_dir():
            raise OptionError("mouth", f"expected {', '.join(get_args(MouthKind))} or a folder of mouth "
                                       f"weights, got {self.mouth!r}")
        if self.face_index is not None:
            check_range("face", self.face_index)

    @property
    def mouth_weights(self) -> Path | None:
        """The folder of the mouth network's weights, or None for the procedural painter."""
        if self.mouth == "procedural":
            return None
        return MOUTH_WEIGHTS if self.mouth == "learned" else Path(self.mouth).expanduser().absolute()

    def with_options(self, **options: Any) -> RenderConfig:
        """This config with ``render``'s options by their long names (``seed=3``,
        ``full_frame=True``, ``gaze="camera"``, ``emotion="happy:0.7"``, ``motion="a.json"``).
        Raises InputError, one line naming the option, for an unknown name or a bad value."""
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise InputError(None, f"unknown option {unknown[0]!r}: options are {', '.join(OPTION_NAMES)}")
        top: dict[str, Any] = {}
        controls: dict[str, Any] = {}
        sampler = {k: options[k] for k in ("steps", "cfg_audio", "cfg_controls", "eta") if k in options}
        if "mouth" in options:
            top["mouth"] = str(options["mouth"])
        for name in ("fps", "size", "full_frame", "seed", "device"):
            if name in options:
                top[name] = options[name]
        for name in ("head_distance", "head_motion", "expression", "still"):
            if name in options:
                controls[name] = options[name]
        try:
            if "face" in options:
                top["face_index"] = options["face"]
            if "weights" in options:
                top["weights"] = _folder(options["weights"])
            if "motion" in options:
                top["motion"], top["motion_file"] = _motion(options["motion"])
            if "watermark" in options or "watermark_text" in options:
                top["watermark"] = self._watermark(options)
            if options.get("gaze") is not None:
                controls["gaze"] = _gaze(options["gaze"])
            elif "gaze" in options:
                controls["gaze"] = None
            if "emotion" in options:
                controls["emotion"], controls["emotion_intensity"] = _emotion(options["emotion"])
            return dataclasses.replace(self, **top,
                                       controls=dataclasses.replace(self.controls, **controls),
                                       sampler=dataclasses.replace(self.sampler, **sampler))
        except (ValueError, TypeError) as exc:
            raise InputError(None, str(exc)) from None

    def _watermark(self, options: dict[str, Any]) -> str | None:
        """The label from ``watermark`` (on/off, or the text itself) and ``watermark_text``."""
        on = options.get("watermark", self.watermark is not None)
        text = options.get("watermark_text") or self.watermark or WATERMARK_TEXT
        if isinstance(on, str):
            on, text = True, on
        return str(text) if on else None


# The options ``with_options`` takes: ``render``'s long option names, with underscores.
OPTION_NAMES: tuple[str, ...] = (
    "fps", "size", "full_frame", "seed", "device", "motion", "weights", "steps", "eta", "cfg_audio",
    "cfg_controls", "gaze", "head_distance", "emotion", "head_motion", "expression", "still",
    "face", "watermark", "watermark_text", "mouth",
)
# Options that shape the photo's setup (canvas, face, device): fixed once an Avatar is made.
SETUP_OPTIONS: tuple[str, ...] = ("size", "full_frame", "face", "device", "mouth")


def _folder(value: str | Path | None) -> Path:
    return Path(value).expanduser().absolute() if value else DEFAULT_WEIGHTS


def _motion(value: str | Path) -> tuple[MotionKind, str | None]:
    """``--motion``: a generator's name, or a motion file (played through the baseline's slot)."""
    if value in get_args(MotionKind):
        return value, None  # type: ignore[return-value]
    if Path(value).suffix.lower() not in SUFFIXES:
        raise OptionError("motion", f"{str(value)!r} is neither a generator "
                                    f"({', '.join(get_args(MotionKind))}) nor a .json or .csv motion file")
    return "baseline", str(Path(value).expanduser().absolute())


def _gaze(value: str | tuple[float, float]) -> tuple[float, float] | Literal["camera"]:
    try:
        return parse_gaze(value if isinstance(value, str) else ",".join(str(v) for v in value))
    except ValueError as exc:
        raise ValueError(f"--gaze: {exc}") from None


def _emotion(value: str) -> tuple[str, float]:
    try:
        return parse_emotion(value)
    except ValueError as exc:
        raise ValueError(f"--emotion: {exc}") from None
