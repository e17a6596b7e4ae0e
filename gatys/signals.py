"""One policy for SIGINT (Ctrl-C) and SIGTERM (a plain ``kill``) on every command.

Either signal stops the run at once as a :class:`KeyboardInterrupt` (:class:`Terminated` for
SIGTERM): the image reached is written, atomically, and the command exits with 128 + the
signal's number (130, 143). While a file is being written and renamed into place
(:func:`deferred`), a signal waits until that is done, so a write is never cut in half and no
temporary file is left behind; a second Ctrl-C during a write is not lost, only delayed.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

_state = threading.local()  # ``depth`` of deferred() in this thread
_pending: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""

    signum = signal.SIGTERM


def raise_for(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _handler(signum: int, frame: Any) -> None:
    if getattr(_state, "depth", 0):
        _pending.append(signum)
        return
    raise_for(signum)


def exit_code(e: BaseException) -> int:
    """128 + the number of the signal that stopped the command."""
    return 128 + int(getattr(e, "signum", signal.SIGINT))


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the policy for the block (in the main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
