"""Run ``gatys ARGS`` in this process, then print its own high-water mark (``VmHWM:`` from
/proc/self/status) and exit with the command's code. Run as a script in a child process:
ru_maxrss is no use there, since Linux carries the forking parent's resident size over."""
import sys

from gatys.cli import main

if __name__ == "__main__":
    code = main(sys.argv[1:])
    print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")))
    sys.exit(code)
