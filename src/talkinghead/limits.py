"""The allowed range of every numeric render option, in one table.

The option dataclasses (``RenderConfig``, ``Controls``, ``SampleOptions``) check their values
against it when they are made, whoever makes them (the CLI, a batch row, an API call), and the
CLI's help shows it. Names are ``render``'s long option names with underscores.
"""

from __future__ import annotations

LIMITS: dict[str, tuple[float, float | None]] = {
    "fps": (1.0, 120.0),
    "size": (64, 2048),
    "steps": (1, 50),
    "cfg_audio": (0.0, 5.0),
    "cfg_controls": (0.0, 5.0),
    "eta": (0.0, 1.0),
    "head_distance": (0.3, 3.0),
    "head_motion": (0.0, 3.0),
    "expression": (0.0, 3.0),
    "emotion_intensity": (0.0, 1.0),
    "face": (0, None),
    "batch_size": (1, None),
    "crf": (0, 51),
}


class OptionError(ValueError):
    """An option's value is out of its range or otherwise unusable; the message starts with
    the option as the command line spells it (``--head-distance must be ...``)."""

    def __init__(self, name: str, problem: str) -> None:
        self.option = name
        super().__init__(f"--{name.replace('_', '-')} {problem}")


def check_range(name: str, value: float) -> None:
    """Raise OptionError unless ``value`` lies in ``LIMITS[name]`` (ends included)."""
    low, high = LIMITS[name]
    if value < low or (high is not None and value > high):
        allowed = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise OptionError(name, f"must be {allowed}, got {value:g}")


def describe(name: str) -> str:
    """The range as help text: ``[1-120]`` or ``[>= 0]``."""
    low, high = LIMITS[name]
    return f"[{low:g}-{high:g}]" if high is not None else f"[>= {low:g}]"
