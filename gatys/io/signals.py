"""One policy for SIGINT (Ctrl-C) and SIGTERM (a plain ``kill``) on every command.

Either signal stops the run at once as a :class:`KeyboardInterrupt` (:class:`Terminated` for
SIGTERM): the image reached is written, atomically, and the command exits with 128 + the
signal's number (130, 143). While a file is being written and renamed into place
(:func:`deferred`), a signal waits until that is done, so a write is never cut in half and no
temporary file is left behind. Once a signal has been acted on, further ones are let go: the
command is already stopping, and a second Ctrl-C must not interrupt the writing of the image.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

_state = threading.local()  # ``depth`` of deferred() in this thread
_pending: list[int] = []
_stopping = False  # a signal has been acted on: later ones are let go (one is enough)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""

    signum = signal.SIGTERM


def raise_for(signum: int) -> None:
    global _stopping
    _stopping = True
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _handler(signum: int, frame: Any) -> None:
    if _stopping:  # already stopping cleanly: a second Ctrl-C must not cut that short
        return
    if getattr(_state, "depth", 0):
        _pending.append(signum)
        return
    raise_for(signum)


def signum_of(e: BaseException) -> int:
    """The number of the signal behind an interruption (SIGINT for a plain Ctrl-C)."""
    return int(getattr(e, "signum", signal.SIGINT))


def exit_code(e: BaseException) -> int:
    """128 + the number of the signal that stopped the command."""
    return 128 + signum_of(e)


@contextlib.contextmanager
def handled(until_exit: bool = False) -> Iterator[None]:
    """Install the policy for the block (in the main thread; elsewhere a no-op). With
    ``until_exit`` (the command line), once a signal has stopped the block, later ones stay
    ignored while the process reports and exits, instead of interrupting that."""
    global _stopping
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            # Ignored by the OS from here when stopping: Python's own shutdown would otherwise
            # let a late second signal kill the process after it reported.
            signal.signal(s, signal.SIG_IGN if until_exit and _stopping else h)
        _stopping = False


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold signals back while the block runs; one that came meanwhile is raised after it."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _pending:
            signum = _pending.pop(0)
            _pending.clear()
            raise_for(signum)
