"""``python -m gatys.bench.peak ARGS``: run ``gatys ARGS`` in this process, then print its own
high-water mark (``VmHWM:`` from /proc/self/status) and exit with the command's code. Meant for a
child process: there ru_maxrss is no use, since Linux carries the forking parent's resident size
over into the child's."""
from __future__ import annotations

import sys
from typing import Sequence


def high_water_mark() -> str:
    with open("/proc/self/status") as status:
        return next(line.strip() for line in status if line.startswith("VmHWM:"))


def high_water_bytes() -> int:
    """This process's own peak resident bytes: VmHWM where /proc has it, else ru_maxrss (which
    on Linux may be the forking parent's)."""
    try:
        return int(high_water_mark().split()[1]) * 1024  # "VmHWM:   912 kB"
    except (OSError, StopIteration):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes there, else kB


def main(argv: Sequence[str] | None = None) -> int:
    from gatys.cli import main as gatys_main  # here: bench.gil's child reads only the peak

    code = gatys_main(argv)
    print(high_water_mark())
    return code


if __name__ == "__main__":
    sys.exit(main())
