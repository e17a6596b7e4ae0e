"""The first CPU's fields in Linux's /proc/cpuinfo: what the engine and the benches read of it."""
from __future__ import annotations

CPUINFO = "/proc/cpuinfo"


def first_cpu_fields(cpuinfo: str = CPUINFO) -> dict[str, str]:
    """The first CPU's "name: value" lines of ``cpuinfo``, stripped; empty where it is
    missing."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                if not line.strip():
                    break  # the next CPU's block
                name, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_vendor(cpuinfo: str = CPUINFO) -> str:
    """The CPU's vendor id as Linux names it ("AuthenticAMD", "GenuineIntel", ...); "" where
    ``cpuinfo`` is missing or has none."""
    return first_cpu_fields(cpuinfo).get("vendor_id", "")
