"""Ctrl-C that cannot be lost.

Python runs a signal's handler at the next bytecode of the main thread, wherever that is. When
that is code Python calls on its own (a finalizer, a weakref callback, an at-fork hook such as
logging's, which runs each time the encoder is started), the KeyboardInterrupt is printed as
"Exception ignored ... Traceback" and dropped, and the render would finish as if nothing had
happened. The command line calls ``install``: such a dropped interrupt is remembered, silently,
the writers ``check`` before each write and before moving a finished file into place, and the
command line checks before it reports success. Library callers keep their own handling:
without ``install`` nothing here is ever set.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

_received = threading.Event()
_installed = False
_holding = False


def handler(signum: int, frame: object) -> None:
    """SIGINT's handler at the command line: remember the interrupt, then raise it (at the
    end of a ``held`` block, if one is running)."""
    _received.set()
    if not _holding:
        raise KeyboardInterrupt


def note() -> None:
    """Remember an interrupt (for a process's own SIGINT handler, as batch workers have)."""
    _received.set()


def remember_dropped() -> None:
    """Remember, silently, a KeyboardInterrupt that Python drops (once per process)."""
    global _installed
    if _installed:
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            _received.set()  # dropped by Python: remembered, and no traceback on stderr
            return
        previous(unraisable)

    sys.unraisablehook = hook
    _installed = True


def install() -> None:
    """At the command line: route SIGINT to ``handler`` and remember interrupts Python drops
    (main thread only; nothing when SIGINT is being ignored)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return
    signal.signal(signal.SIGINT, handler)
    remember_dropped()


def check() -> None:
    """Raise KeyboardInterrupt if an interrupt came, even one whose exception was dropped."""
    if _received.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block ends, then raise an interrupt that came
    meanwhile: for steps that must not be cut in two (create a file and remember its name,
    start the encoder and keep its handle). The main thread blocks both signals; one that
    another thread takes anyway is deferred by ``handler`` (command line) or raised at once by
    Python's default handler (library callers)."""
    global _holding
    signals = {signal.SIGINT, signal.SIGTERM}
    main = threading.current_thread() is threading.main_thread()
    mask = getattr(signal, "pthread_sigmask", None)  # absent on Windows: nothing blocked
    before = mask(signal.SIG_BLOCK, signals) if main and mask is not None else None
    was_holding, _holding = _holding, main or _holding
    try:
        yield
    finally:
        _holding = was_holding
        if before is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a blocked signal is raised here
    if not _holding:
        check()


def reset() -> None:
    """Forget a past interrupt: it has been handled (an interrupted batch's summary; tests)."""
    _received.clear()
