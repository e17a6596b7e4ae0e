"""Write files so that a reader never sees a half-written one: temporary file, then rename."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from gatys.io.signals import deferred

TEMP_PREFIX = ".gatys-"  # every temporary file gatys makes beside an output
# Our temporary files are named .gatys-HOST-PID-RANDOM.tmp, so that a later run can tell the
# leftovers of a killed process (same host, process gone) from a write still going on.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_OURS = re.compile(
    rf"^{re.escape(TEMP_PREFIX)}(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)-.+\.(tmp|probe)$")
_UNMARKED = re.compile(rf"^{re.escape(TEMP_PREFIX)}[^-]+\.tmp$")  # gatys 0.3.0 and before
UNMARKED_AGE_S = 86400.0  # an unmarked one this old is no write in progress
_swept: set[str] = set()


def temp_prefix() -> str:
    """The start of this process's temporary file names."""
    return f"{TEMP_PREFIX}{_HOST}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process: leave its files alone
    return True


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files that a killed gatys left in ``folder`` (those of this host
    whose process is gone, and unmarked ones older than a day). Once per folder and process,
    so that a sweep's many writes do not each list the folder."""
    key = os.path.abspath(folder)
    if key in _swept or os.name != "posix":
        return
    _swept.add(key)
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            with contextlib.suppress(OSError):
                ours = _OURS.match(entry.name)
                if ours:
                    stale = ours["host"] == _HOST and not _alive(int(ours["pid"]))
                else:
                    stale = (_UNMARKED.match(entry.name) is not None and
                             time.time() - entry.stat(follow_symlinks=False).st_mtime
                             > UNMARKED_AGE_S)
                if stale and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)


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
        remove_stale_temporaries(path.parent)
        # A name of bounded length, so that any name the file system takes for ``path`` works.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(), suffix=".tmp")
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
