"""A fake tracefs for the benches that count or record uprobes (bench.releases, bench.gil_waits)."""
from __future__ import annotations

from pathlib import Path


def fake_uprobe(root: Path, name: str, event_id: int, on: str,
                group: str = "probe_python3") -> None:
    """A uprobe ``name`` of ``group`` on the file ``on``, as tracefs under ``root`` shows it:
    its id under events/, and its line in uprobe_events (a return probe's for a name perf gives
    return probes)."""
    probe = root / "events" / group / name
    probe.mkdir(parents=True)
    (probe / "id").write_text(f"{event_id}\n")
    kind = "r" if name.endswith("__return") else "p"
    with open(root / "uprobe_events", "a") as events:
        events.write(f"{kind}:{group}/{name} {on}:0x000000000024fd40\n")
