"""Write files so that a reader never sees a half-written one: temporary file, then rename."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from gatys.io.signals import deferred

TEMP_PREFIX = ".gatys-"  # every temporary file gatys makes beside an output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on any error
    remove it, leaving ``path`` as it was."""
    path = Path(path)
    with deferred():  # a signal waits until the file is in place or gone (gatys.signals)
        # A fixed-length name, so that any name the file system takes for ``path`` works too.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600: a normal file's mode
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and move the result onto ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
