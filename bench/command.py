"""``python -m bench`` and ``gatys bench``: the harness's figures as a table or JSON."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from gatys.errors import GatysError
from gatys.io.atomic import atomic_write_bytes
from gatys.io.images import check_writable
from gatys.kernels import DEVICES
from gatys.run.loading import check_device

from .harness import CUDA_SIZES, DEFAULT_SIZES, run


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def blas_text(m: dict[str, Any]) -> str:
    """The BLAS libraries of :func:`harness.machine`'s record, as the tables name them."""
    return ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})"
                     for b in m.get("blas", [])) or "unknown"


def python_text(m: dict[str, Any]) -> str:
    """The Python of :func:`harness.machine`'s record, as the tables name it ("" in records
    made before it was kept)."""
    if "python" not in m:
        return ""
    return f"; Python {m['python']}" + ("" if m.get("gil", True) else " without the GIL")


def _spread(spread: list[float] | None) -> str:
    """The pair-by-pair ratios' range, as the table shows it."""
    return f"[{spread[0]:.2f}-{spread[-1]:.2f}]" if spread else "-"


def threads_text(n: Any) -> str:
    """``n`` threads, in words: "1 thread", "8 threads"."""
    return f"{n} thread{'' if n == 1 else 's'}"


def format_table(r: dict[str, Any]) -> str:
    cuda = r["device"] == "cuda"
    torch_text = f"{r['torch']['version']} on {r['torch']['device']}" if r["torch"] \
        else "not available"
    if r["torch"] and r["torch"]["device"] == "cpu":
        torch_text += f", {threads_text(r['torch']['threads'])}"
    m = r["machine"]
    blas = blas_text(m)
    by_size = m.get("threads_by_size") or {}  # the largest size's, and others' where they differ
    others = ", ".join(f"{n} at {size}^2" for size, n in by_size.items() if n != m.get("threads"))
    ours = "" if cuda else \
        f", gatys on {threads_text(m.get('threads'))}" + (f" ({others})" if others else "")
    lines = [f"CPU: {m.get('cpu')} ({m.get('vendor')}; {' '.join(m.get('isa', []))}), "
             f"{m.get('cpus')} cores{ours}; BLAS: {blas}{python_text(m)}",
             f"sgemm (NumPy BLAS, 4096^2): {r['sgemm_gflops']:.0f} GFLOP/s   torch: {torch_text}"]
    if cuda:
        lines.append(f"GPU: {r['machine']['gpu']}, cuBLAS sgemm 8192^2 "
                     f"{'(TF32) ' if r['tf32'] else ''}{r['gpu_sgemm_gflops']:.0f} GFLOP/s"
                     f"{'; ours replayed from CUDA graphs' if r.get('cuda_graphs') else ''}")
    lines += ["", f"{'size':>6} {'s/eval':>8} {'GFLOP':>7} {'GFLOP/s':>8} {'of sgemm':>9} "
                  f"{'torch s':>8} {'ours/torch':>10} {'pairs':>11}"
              + (f" {'GPU GiB':>8} {'CPU s':>8} {'CPU/CUDA':>9}" if cuda else "")]
    for e in r["evaluations"]:
        line = (f"{e['size']:>6} {e['seconds']:8.3f} {e['gflop']:7.1f} {e['gflops']:8.1f} "
                f"{e['fraction_of_sgemm']:9.0%} {_fmt(e['torch_seconds'], '8.3f'):>8} "
                f"{_fmt(e['ratio_to_torch'], '10.2f'):>10} {_spread(e.get('ratio_spread')):>11}")
        if cuda:
            line += (f" {e['gpu_pool_bytes'] / 2**30:8.2f} {_fmt(e.get('cpu_seconds'), '8.3f'):>8}"
                     f" {_fmt(e.get('cpu_over_cuda'), '9.1f'):>9}")
        lines.append(line)
    if r.get("seconds_1024_over_512"):
        lines.append(f"1024^2 / 512^2 time: {r['seconds_1024_over_512']:.2f}x")
    if r.get("transfer"):
        t = r["transfer"]
        lines.append(f"{t['iterations']} L-BFGS iterations at {t['size']}^2 ({t['pool']} pooling), "
                     f"end to end: {t['seconds']:.1f} s")
        lines.append(f"  per iteration: {t['seconds_per_iteration']:.3f} s, "
                     f"{t['evaluations_per_iteration']:.2f} evaluations of "
                     f"{t['seconds_per_evaluation']:.3f} s, "
                     f"{_fmt(t['outside_evaluations_share'], '.1%')} "
                     "outside them (scipy's L-BFGS-B, conversions, callbacks)")
        full = t.get("full_memory")
        if full:
            lines.append(f"  from iteration {full['from_iteration']} on (L-BFGS-B's memory full): "
                         f"{full['seconds_per_iteration']:.3f} s, "
                         f"{full['evaluations_per_iteration']:.2f} evaluations of "
                         f"{full['seconds_per_evaluation']:.3f} s, "
                         f"{_fmt(full['outside_evaluations_share'], '.1%')} outside them")
        lines.append(f"  before the first iteration: {t['setup_seconds']:.1f} s outside the "
                     "evaluations (scipy's set-up of the bounds among it)")
    if r.get("layers"):
        lines += ["", f"per layer at {r['size']}^2 (GFLOP/s count direct-convolution FLOPs):",
                  f"{'layer':8} {'output':>12} {'fwd ms':>8} {'GFLOP/s':>8} {'bwd ms':>8} "
                  f"{'GFLOP/s':>8}"]
        for row in r["layers"]:
            lines.append(f"{row['layer']:8} {row['shape']:>12} {row['forward_seconds'] * 1e3:8.1f} "
                         f"{_fmt(row.get('forward_gflops'), '8.1f'):>8} "
                         f"{row['backward_seconds'] * 1e3:8.1f} "
                         f"{_fmt(row.get('backward_gflops'), '8.1f'):>8}")
    if r.get("peak_rss_bytes") is not None:
        lines += ["", f"peak resident memory of `{r['peak_rss_run']}`: "
                      f"{r['peak_rss_bytes'] / 2**30:.2f} GiB"]
    return "\n".join(lines)


def build_parser(prog: str = "python -m bench",
                 parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
                 ) -> argparse.ArgumentParser:
    p = parser_class(prog=prog, description="Measure the engine: per layer, per "
                                "evaluation, against BLAS and against PyTorch.")
    p.add_argument("--size", type=int, action="append", default=None,
                   help="image side to time (repeatable; default 256, 512 and 1024)")
    p.add_argument("--repeats", type=int, default=3, help="timed evaluations per size (median)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="engine to time: cpu (default), cuda (with the CPU engine and PyTorch on "
                        "the GPU as peers) or auto")
    p.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 products (both engines)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="CUDA: replay each evaluation from a recorded CUDA graph (ours only)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="the CPU engine's threads at every size, on CUDA the one timed beside it "
                        "(default: GATYS_THREADS if set, else one per core, at most 8, or 12 "
                        "from 1024^2); PyTorch keeps its own")
    p.add_argument("--no-cpu", action="store_true",
                   help="CUDA: skip timing the CPU engine at the same sizes")
    p.add_argument("--transfer-iterations", type=int, default=None, metavar="N",
                   help="also time an N-iteration transfer end to end (at 512^2 when 512 is "
                        "among the sizes), with the share outside the evaluations (0: skip; "
                        "default 500 on CUDA, 30 on the CPU)")
    return p


def run_from_args(a: argparse.Namespace) -> int:
    try:
        device = check_device(a.device, a.tf32, a.cuda_graphs)
        if a.threads is not None:  # the CPU engine's, on CUDA the one timed beside it
            check_device("cpu", threads=a.threads)
    except GatysError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    if a.out:
        try:
            check_writable(Path(a.out))
        except GatysError as e:
            print(f"bench: error: {e}", file=sys.stderr)
            return 2
    sizes = a.size or list(CUDA_SIZES if device == "cuda" else DEFAULT_SIZES)
    if any(s < 32 for s in sizes) or a.repeats < 1 or (a.transfer_iterations or 0) < 0:
        print("bench: error: sizes must be >= 32, --repeats >= 1 and --transfer-iterations >= 0",
              file=sys.stderr)
        return 2
    log = (lambda s: None) if a.json else (lambda s: print(f"bench: {s}", file=sys.stderr))
    result = run(sizes, a.repeats, with_torch=not a.no_torch, memory=not a.no_memory,
                 device=device, tf32=a.tf32, cuda_graphs=a.cuda_graphs, with_cpu=not a.no_cpu,
                 transfer_iterations=a.transfer_iterations, threads=a.threads, log=log)
    text = json.dumps(result, indent=2)
    if a.out:
        atomic_write_bytes(Path(a.out), (text + "\n").encode())
    print(text if a.json else format_table(result))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m bench",
         parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """``python -m bench``, and ``gatys bench``, which hands its arguments here with its own
    parser class (errors in one line)."""
    return run_from_args(build_parser(prog, parser_class).parse_args(argv))
