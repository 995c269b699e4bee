"""The two kinds of failure the CLI distinguishes: bad input (exit 2) and internal (exit 1)."""

from __future__ import annotations

from pathlib import Path


class TalkingHeadError(Exception):
    """Something went wrong inside talkinghead: a bug or a broken install. Exit code 1."""

    exit_code = 1


class InputError(TalkingHeadError):
    """Something the user gave us cannot be used. Exit code 2.

    The message is one line that names the file and the problem, e.g.
    ``photo.jpg: no face found``.
    """

    exit_code = 2

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)
