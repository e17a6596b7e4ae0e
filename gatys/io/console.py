"""What the command line prints, made safe: names shown with their control characters escaped
(a file name cannot retitle or clear the terminal), and standard streams that drop what they
cannot deliver (a full disk, a closed pipe) so that the work done stands and only the message
is lost."""
from __future__ import annotations

import os
import sys
from typing import Any, TextIO

# C0 controls, DEL and C1 controls, each shown as an escape (\x1b ...).
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: object) -> str:
    """``text`` with every control character escaped, and any undecodable byte of a file name
    (a lone surrogate) as its escape: one line, whatever a name holds."""
    s = str(text).translate(_CONTROLS)
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


class Lenient:
    """A standard stream that, once a write or flush fails, points its file descriptor at
    /dev/null and drops the rest, instead of failing the command after its work is done."""

    def __init__(self, stream: TextIO) -> None:
        self._stream, self.lost = stream, False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._stream.write(text)
            except OSError:
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError:
                self._lose()

    def _lose(self) -> None:
        self.lost = True
        try:  # what is still buffered, and what Python flushes at exit, goes nowhere
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def lenient_streams() -> None:
    """Standard output and error as :class:`Lenient` streams, undecodable names escaped."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, Lenient):
            continue
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
        setattr(sys, name, Lenient(stream))
