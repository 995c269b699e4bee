"""Command line: ``talkinghead render PHOTO AUDIO`` and the other commands, one module per
group. Thin: each command hands off to one library function (``talkinghead.api`` for videos);
domain errors become one line on stderr and an exit code.

Exit codes: 0 success, 1 internal failure, 2 bad input or usage, 130 interrupted.
Results (the output path, or one JSON line with --json) go to stdout; progress bars,
warnings and summaries go to stderr. torch and mediapipe are imported only when a command
runs, so ``--help`` is instant.
"""

from talkinghead.cli import batch, motion, tools, video  # noqa: F401  (each registers its commands)
from talkinghead.cli.common import app

# --help lists the commands in this order: making videos first, then tools.
ORDER = ("render", "reenact", "extract", "batch", "eval", "corpus", "train", "train-mouth")
app.registered_commands.sort(key=lambda command: ORDER.index(command.name or command.callback.__name__))


def main() -> None:
    import sys

    app(args=batch.ray_address_optional(sys.argv[1:]))
