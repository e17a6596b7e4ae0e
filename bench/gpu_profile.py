"""The GPU check's profile step: one evaluation, ours and PyTorch's, under PyTorch's profiler,
and the trace read back: how long the GPU was busy, on which kernels, and where it waited for
the host."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .gpu_report import log, precision

GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")  # the host's calls that queue GPU work
WAITED_US = 5.0  # a GPU activity that starts this soon after its launch call had nothing queued


def gpu_activity(trace: dict[str, Any], evaluations: int) -> dict[str, Any]:
    """What the GPU did in a Chrome trace of ``evaluations`` evaluations (PyTorch's profiler
    records every kernel, copy and fill in the process through CUPTI, CuPy's and cuBLAS's
    included): per evaluation, the time from its first to its last GPU activity, how much of
    it the GPU was busy, the activities by category and the kernels by name (microseconds), and
    the longest idle gaps with what came before and after them (a host stall or a sync). Where
    the trace links activities to the host calls that launched them, also the share that
    started within WAITED_US of their call's return, i.e. found the GPU waiting for the host."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    spans = sorted((e["ts"], e["ts"] + e.get("dur", 0), e["cat"], e["name"])
                   for e in events if e.get("cat") in GPU_CATEGORIES)
    if not spans:
        return {"events": 0}
    launched = {e["args"]["correlation"]: e["ts"] + e.get("dur", 0) for e in events
                if e.get("cat") in LAUNCH_CATEGORIES and "correlation" in e.get("args", {})}
    delays = sorted(e["ts"] - launched[e["args"]["correlation"]] for e in events
                    if e.get("cat") in GPU_CATEGORIES
                    and e.get("args", {}).get("correlation") in launched)
    busy, end, gaps = 0.0, spans[0][0], []
    for i, (s, e, _, name) in enumerate(spans):
        if s > end and i:
            gaps.append((s - end, spans[i - 1][3], name))
        busy += max(0.0, e - max(s, end))
        end = max(end, e)
    by_category: dict[str, list[float]] = {}
    by_name: dict[str, list[float]] = {}
    for s, e, cat, name in spans:
        for table, key in ((by_category, cat), (by_name, name[:90])):
            row = table.setdefault(key, [0, 0.0])
            row[0] += 1
            row[1] += e - s
    n = max(1, evaluations)
    top = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:25]
    return {"evaluations": evaluations,
            "span_us": (end - spans[0][0]) / n, "busy_us": busy / n,
            "busy_share": busy / (end - spans[0][0]) if end > spans[0][0] else None,
            "categories": {k: {"count": c / n, "us": t / n} for k, (c, t) in by_category.items()},
            "kernels": [{"name": k, "count": c / n, "us": t / n} for k, (c, t) in top],
            "longest_gaps": [{"us": g, "after": a[:90], "before": b[:90]}
                             for g, a, b in sorted(gaps, reverse=True)[:12]],
            "gaps_over_20us": sum(g for g, _, _ in gaps if g > 20) / n,
            "linked_to_launch": len(delays),
            "started_on_launch_share": sum(d < WAITED_US for d in delays) / len(delays)
            if delays else None,
            "median_launch_to_start_us": delays[len(delays) // 2] if delays else None}


def _profiled(run: Callable[[], Any], evaluations: int, trace_out: Path | None,
              scratch: Path) -> dict[str, Any]:
    """``run`` (``evaluations`` evaluations) under PyTorch's profiler: :func:`gpu_activity`
    of its trace, which is also kept, gzipped, as ``trace_out``."""
    import gzip

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    path = scratch / "trace.json"
    prof.export_chrome_trace(str(path))
    text = path.read_text()
    if trace_out is not None:
        trace_out.write_bytes(gzip.compress(text.encode()))
    return {"wall_us_profiled": 1e6 * wall / evaluations, **gpu_activity(json.loads(text),
                                                                          evaluations)}


def run_profile(out: Path, weights: Path, size: int = 512, repeats: int = 10,
                traced: int = 3) -> dict[str, Any]:
    """Where an evaluation's time goes on the GPU and off it, ours against PyTorch+cuDNN, at
    ``size``^2, float32 and TF32: the median wall time of ``repeats`` evaluations (host image
    in, gradient back, as the bench times them), then ``traced`` more under PyTorch's profiler,
    which shows how long the GPU was busy within them, on what, and where it waited. Keeps the
    TF32 traces as OUTDIR/trace_{gatys,torch}_tf32.json.gz (chrome://tracing, Perfetto)."""
    import cupy

    from gatys.store.weights import load

    from . import torch_peer

    if not torch_peer.available("cuda"):  # its profiler is the tool, and it is the peer
        return {"status": "skipped", "reason": "PyTorch is missing or sees no GPU"}
    vgg = load(weights)
    scratch = Path(tempfile.mkdtemp(prefix="gatys-profile-"))
    rows = []
    for tf32 in (False, True):
        rows += _profile_engines(vgg, size, tf32, repeats, traced, out, scratch)
        cupy.get_default_memory_pool().free_all_blocks()
    return {"size": size, "repeats": repeats, "traced": traced, "rows": rows,
            "table": format_profile(rows)}


def _profile_engines(vgg: Any, size: int, tf32: bool, repeats: int, traced: int, out: Path,
                     scratch: Path) -> list[dict[str, Any]]:
    """:func:`run_profile`'s rows for one precision: ours, then PyTorch's."""
    import cupy

    from gatys.kernels.cuda_backend import CudaBackend
    from gatys.model.network import Network

    from . import harness

    tag = precision(tf32)
    backend = CudaBackend("cuda", cupy, tf32=tf32)
    objective, x = harness.make_objective(Network(vgg, backend), size)
    peer = harness.make_peer(vgg, "cuda", tf32)
    content, style, _ = harness.pictures(size)
    peer.targets(content, style)
    # Each engine: one evaluation as the bench times it, and its median time over ``repeats``.
    engines = {"gatys": (lambda: backend.to_numpy(objective.evaluate(x).grad),
                         lambda: harness.seconds_per_evaluation(objective, x, repeats)),
               "torch": (lambda: peer.evaluate(x),
                         lambda: peer.seconds_per_evaluation(x, repeats))}
    rows = []
    for name, (once, median) in engines.items():
        row = {"engine": name, "tf32": tf32, "size": size, "wall_us": 1e6 * median()}

        def traced_run() -> None:
            for _ in range(traced):
                once()

        row.update(_profiled(traced_run, traced,
                             out / f"trace_{name}_{tag}.json.gz" if tf32 else None, scratch))
        rows.append(row)
        log(f"profile {name} {tag}: wall {row['wall_us']:.0f} us, GPU busy "
            f"{row.get('busy_us', 0):.0f} us of a {row.get('span_us', 0):.0f} us span")
    return rows


def format_profile(rows: Sequence[dict[str, Any]]) -> str:
    """The profile step as text: per engine and precision, wall and GPU time, then each one's
    top kernels."""
    lines = [f"{'engine':7} {'tf32':5} {'wall us':>9} {'GPU span':>9} {'GPU busy':>9} "
             f"{'kernels':>8} {'idle>20us':>10} {'waited':>7}"]
    for r in rows:
        kernels = r.get("categories", {}).get("kernel", {}).get("count", 0)
        waited = r.get("started_on_launch_share")
        lines.append(f"{r['engine']:7} {str(r['tf32']):5} {r['wall_us']:9.0f} "
                     f"{r.get('span_us', 0):9.0f} {r.get('busy_us', 0):9.0f} {kernels:8.0f} "
                     f"{r.get('gaps_over_20us', 0):10.0f} "
                     f"{'-' if waited is None else format(waited, '.0%'):>7}")
    lines.append(f"(waited: the share of GPU work that started within {WAITED_US:.0f} us of "
                 "its launch call, the GPU having waited for the host)")
    for r in rows:
        lines += ["", f"{r['engine']} {'TF32' if r['tf32'] else 'float32'}: top kernels "
                      "(count, us per evaluation)"]
        lines += [f"  {k['count']:5.0f} {k['us']:9.1f}  {k['name']}" for k in r.get("kernels", [])]
    return "\n".join(lines)
