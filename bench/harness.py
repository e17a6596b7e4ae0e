"""Measure the engine: per layer, per evaluation, against BLAS and against PyTorch."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from gatys.errors import GatysError
from gatys.io.atomic import atomic_write_bytes
from gatys.io.images import check_writable
from gatys.kernels import cpu_backend, resolve_device
from gatys.kernels.cpuinfo import first_cpu_fields
from gatys.kernels.workers import Workers, gil_enabled
from gatys.model.network import LayerTimer, Network
from gatys.model.objective import Objective, paper_objective
from gatys.model.vgg import layer_shapes
from gatys.run.api import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, load_network

from . import torch_peer

DEFAULT_SIZES = (256, 512, 1024)
CUDA_SIZES = (512, 1024, 2048)
ALPHA, BETA = 1e-3, 1.0


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
             "amx_bf16", "neon", "sve")


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU model and vendor, the ISA flags that matter to
    BLAS, the BLAS library and kernel (threadpoolctl), and versions, Python's with whether it
    runs with a GIL."""
    info: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                            "numpy": np.__version__, "python": platform.python_version(),
                            "gil": gil_enabled(), "cpu": platform.processor() or None,
                            "vendor": None, "isa": []}
    fields = first_cpu_fields()
    info["cpu"] = fields.get("model name", info["cpu"])
    if "cpu family" in fields:  # two CPUs of one model name may be generations apart
        info["cpu_id"] = f"family {fields['cpu family']} model {fields.get('model', '?')}"
    vendor = fields.get("vendor_id", "")
    info["vendor"] = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(vendor, vendor.lower()
                                                                         or None)
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    info["isa"] = [f for f in ISA_FLAGS if f in flags]
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                                 "num_threads", "filepath")}
                        for lib in threadpool_info() if lib.get("user_api") == "blas"]
    except Exception:  # threadpoolctl is a dependency; a broken BLAS probe must not stop a bench
        info["blas"] = []
    return info


def transfer_split(size: int, iterations: int, device: str, tf32: bool,
                   cuda_graphs: bool = False, threads: int | None = None) -> dict[str, Any]:
    """A transfer at ``size``^2 (random pictures, the transfer's defaults but in one stage, so
    that every iteration is at ``size``) timed end to end, with :func:`time_split` of it;
    ``threads``: the CPU engine's (default: by size)."""
    from gatys.run.api import transfer

    rng = np.random.default_rng(1)
    content, style = (rng.random((size, size, 3)).astype(np.float32) for _ in range(2))
    result = transfer(content, style, size=size, iterations=iterations, seed=0, scales=1,
                      device=device, tf32=tf32, cuda_graphs=cuda_graphs, threads=threads)
    return {"size": size, "iterations": len(result.history), "seconds": result.seconds,
            "pool": result.parameters["pool"],
            **time_split(result.history, result.parameters["history"])}


def time_split(history: Sequence[dict[str, Any]], memory: int | None = None) -> dict[str, Any]:
    """Where a finished run's time went, from its ``history``: the set-up before the first
    iteration, outside the evaluations (scipy's L-BFGS-B set-up among it), and from the first
    iteration on, seconds, evaluations (line searches' included) and the share outside the
    evaluations (scipy's L-BFGS-B steps, the float64 conversions, the callbacks) per
    iteration; with ``memory``, L-BFGS-B's correction pairs, the same over iterations memory + 2
    on, whose steps find the memory full (``full_memory``, None where the run ends before): its
    steps cost more as the memory fills."""
    first, last = history[0], history[-1]
    steps = max(1, len(history) - 1)
    span = last["seconds"] - first["seconds"]
    inside = last["evaluation_seconds"] - first["evaluation_seconds"]
    evaluations = last["evaluations"] - first["evaluations"]
    split = {"setup_seconds": first["seconds"] - first["evaluation_seconds"],
             "seconds_per_iteration": span / steps,
             "evaluations_per_iteration": evaluations / steps,
             "seconds_per_evaluation": inside / max(1, evaluations),
             "outside_evaluations_share": 1 - inside / span if span else None}
    if memory is not None:
        full = len(history) > memory + 1
        split["full_memory"] = {"from_iteration": memory + 2, **{
            k: v for k, v in time_split(history[memory:]).items() if k != "setup_seconds"}} \
            if full else None
    return split


def sgemm_gflops(n: int = 4096, repeats: int = 3) -> float:
    """The machine's float32 matrix-multiply throughput through NumPy's BLAS (best of runs)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2.0 * n ** 3 / best / 1e9


def _timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def conv_flops(network: Network, shape: tuple[int, int], upto: str) -> dict[str, float]:
    """Direct-convolution FLOPs (2 * 9 * C * O * H * W) of each conv layer's forward pass; the
    backward pass to the input costs the same."""
    return {name: 2.0 * 9 * c_in * c_out * h * w
            for name, c_in, c_out, h, w in layer_shapes(shape, network.channels, upto)
            if name.startswith("conv")}


def pictures(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random content, style and generated images (3, ``size``, ``size``): the same for
    every engine timed at that size."""
    rng = np.random.default_rng(size)
    content, style, x = (rng.random((3, size, size), dtype=np.float32) for _ in range(3))
    return content, style, x


def make_objective(network: Network, size: int) -> tuple[Objective, np.ndarray]:
    """The paper's objective on :func:`pictures` of ``size``^2, and the image to evaluate."""
    content, style, x = pictures(size)
    return paper_objective(network, content, style, ALPHA, BETA), x


def cpu_objective(vgg: Any, workers: Workers, size: int) -> tuple[Objective, np.ndarray]:
    """:func:`make_objective` on the CPU engine with ``workers``, under average pooling (the
    network the scaling benches time)."""
    return make_objective(Network(vgg, cpu_backend(workers), pool="avg"), size)


def make_peer(vgg: Any, device: str, tf32: bool) -> torch_peer.TorchPeer:
    """PyTorch on the same network, loss and weighting as :func:`make_objective`."""
    return torch_peer.TorchPeer(vgg, DEFAULT_CONTENT_LAYER, list(DEFAULT_STYLE_LAYERS), ALPHA,
                                BETA, device, tf32)


def peer_seconds(peer: torch_peer.TorchPeer, size: int, repeats: int) -> float:
    """PyTorch's median seconds per evaluation on :func:`pictures` of ``size``^2."""
    content, style, x = pictures(size)
    peer.targets(content, style)
    return peer.seconds_per_evaluation(x, repeats)


def evaluation(objective: Objective, x: np.ndarray) -> Callable[[], None]:
    """One loss+gradient evaluation from a host image to its gradient back on the host (what
    each L-BFGS step costs)."""
    backend = objective.network.backend

    def once() -> None:
        backend.to_numpy(objective.evaluate(x).grad)

    return once


def warm_ups(objective: Objective) -> int:
    """Evaluations before timing: one for first-touch of buffers, BLAS threads, CUDA kernels
    compiled; and one more that records the CUDA graph."""
    return 2 if getattr(objective.network.backend, "graphs", False) else 1


def seconds_per_evaluation(objective: Objective, x: np.ndarray, repeats: int) -> float:
    """Median seconds of :func:`evaluation`, after :func:`warm_ups`."""
    once = evaluation(objective, x)
    for _ in range(warm_ups(objective)):
        once()
    return float(np.median([_timed(once) for _ in range(repeats)]))


def alternate(ours: Callable[[], Any], theirs: Callable[[], Any] | None, pairs: int,
              warm: int = 1) -> dict[str, Any]:
    """``pairs`` rounds of one evaluation of each (A B A B ...), ours first, after ``warm``
    evaluations of ours and one of theirs: the medians, and the median of the pair-by-pair
    ratios with their spread [min, quartiles, max], so that a machine whose speed drifts (other
    work, clocks) moves both sides of each pair alike."""
    for _ in range(warm):
        ours()
    if theirs is not None:
        theirs()
    a, b = [], []
    for _ in range(pairs):
        a.append(_timed(ours))
        if theirs is not None:
            b.append(_timed(theirs))
    return paired(a, b)


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Ours' seconds ``a`` and PyTorch's ``b`` (empty: none), timed in pairs: their medians, and
    the median of the pair-by-pair ratios with their spread (:func:`spread`)."""
    out: dict[str, Any] = {"seconds": float(np.median(a)), "seconds_all": list(a),
                           "torch_seconds": None, "torch_seconds_all": list(b) or None,
                           "ratio": None, "ratio_spread": None}
    if len(b):
        ratio, out["ratio_spread"] = spread(np.array(a) / np.array(b))
        out.update(torch_seconds=float(np.median(b)), ratio=ratio)
    return out


def spread(values: Sequence[float]) -> tuple[float, list[float]]:
    """The median of ``values`` and their spread [min, quartiles, max]."""
    v = np.asarray(values, dtype=float)
    return float(np.median(v)), [float(v.min()), float(np.quantile(v, 0.25)),
                                 float(np.quantile(v, 0.75)), float(v.max())]


def layer_times(objective: Objective, x: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    """Median per-layer forward and backward seconds over ``repeats`` evaluations."""
    timers = []
    for _ in range(repeats):
        timer = LayerTimer(objective.network.backend.synchronize)
        objective.evaluate(x, timer=timer)
        timers.append(timer)
    upto = Network.deepest(objective.layers)
    flops = conv_flops(objective.network, x.shape[1:], upto)
    rows = []
    for name, _, c_out, h, w in layer_shapes(x.shape[1:], objective.network.channels, upto):
        fwd = float(np.median([t.forward.get(name, 0.0) for t in timers]))
        bwd = float(np.median([t.backward.get(name, 0.0) for t in timers]))
        row = {"layer": name, "forward_seconds": fwd, "backward_seconds": bwd,
               "shape": f"{c_out}x{h}x{w}"}
        if name in flops:
            row["forward_gflops"] = flops[name] / fwd / 1e9 if fwd else None
            row["backward_gflops"] = flops[name] / bwd / 1e9 if bwd else None
        rows.append(row)
    return rows


def peak_memory_of_run(size: int, iterations: int = 3, device: str = "cpu",
                       threads: int | None = None) -> int | None:
    """Peak resident memory (bytes) of a ``gatys transfer`` at ``size``^2 in a child process
    (on ``threads``, default: by size); None where /proc is not available."""
    if not Path("/proc/self/status").exists():
        return None
    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(0)
        for name in ("content", "style"):
            picture = (rng.random((size, size, 3)) * 255).astype(np.uint8)
            Image.fromarray(picture).save(f"{d}/{name}.png")
        done = subprocess.run([sys.executable, "-m", "gatys.bench.peak", "transfer",
                               f"{d}/content.png", f"{d}/style.png", "-o", f"{d}/out.png",
                               "--size", str(size), "--iterations", str(iterations),
                               "--device", device, "--quiet",
                               *(["--threads", str(threads)] if threads else [])],
                              check=True, capture_output=True, text=True)
    line = next(s for s in done.stdout.splitlines() if s.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def gpu_sgemm_gflops(xp: Any, n: int = 8192, repeats: int = 3) -> float:
    """The GPU's float32 matrix-multiply throughput through CuPy's cuBLAS (best of runs), under
    the compute type set when called."""
    a, b = (xp.random.random((n, n), dtype=xp.float32) for _ in range(2))
    out = xp.matmul(a, b)
    stream = xp.cuda.get_current_stream()

    def once() -> None:
        xp.matmul(a, b, out=out)
        stream.synchronize()

    once()
    return 2.0 * n ** 3 / min(_timed(once) for _ in range(repeats)) / 1e9


def _time_size(network: Network, size: int, repeats: int, peak: float, with_layers: bool,
               cpu_network: Network | None, peer: Any, log: Callable[[str], None]
               ) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """One size's row (ours, and the CPU engine's and PyTorch's where given) and, when
    ``with_layers``, the per-layer times there."""
    cuda = network.backend.name == "cuda"
    objective, x = make_objective(network, size)
    theirs = None
    if peer is not None:
        log(f"timing ours and PyTorch alternately at {size}x{size}")
        peer.targets(*pictures(size)[:2])
        theirs = lambda: peer.evaluate(x)  # noqa: E731
    timed = alternate(evaluation(objective, x), theirs, repeats, warm_ups(objective))
    seconds = timed["seconds"]
    deepest = Network.deepest(objective.layers)
    flop = 2 * sum(conv_flops(network, (size, size), deepest).values())
    row = {"size": size, "seconds": seconds, "gflop": flop / 1e9,
           "gflops": flop / seconds / 1e9, "fraction_of_sgemm": flop / seconds / 1e9 / peak,
           "torch_seconds": timed["torch_seconds"], "ratio_to_torch": timed["ratio"],
           "ratio_spread": timed["ratio_spread"]}
    if cuda:
        row["gpu_pool_bytes"] = network.backend.xp.get_default_memory_pool().total_bytes()
    layers = None
    if with_layers:
        log(f"timing layers at {size}x{size}")
        layers = layer_times(objective, x, repeats)
    del objective
    if cuda:
        network.backend.xp.get_default_memory_pool().free_all_blocks()
    if cpu_network is not None:
        log(f"timing the CPU engine at {size}x{size}")
        cpu_objective, _ = make_objective(cpu_network, size)
        row["cpu_seconds"] = seconds_per_evaluation(cpu_objective, x, repeats)
        row["cpu_over_cuda"] = row["cpu_seconds"] / seconds
        del cpu_objective
    return row, layers


def _throughputs(result: dict[str, Any], network: Network, log: Callable[[str], None]) -> None:
    """The machine's sgemm throughput (and on CUDA the GPU's, its name too) into ``result``."""
    log("measuring sgemm throughput")
    result["sgemm_gflops"] = sgemm_gflops()
    if network.backend.name == "cuda":
        xp = network.backend.xp
        result["machine"]["gpu"] = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        network.backend.select_compute_type()
        result["gpu_sgemm_gflops"] = gpu_sgemm_gflops(xp)


def _torch_peer(device: str, tf32: bool) -> tuple[dict[str, Any], torch_peer.TorchPeer]:
    """What the report says of PyTorch, and the peer on the built weights."""
    import torch

    from gatys.store import weights as weights_store

    about = {"version": torch.__version__, "threads": torch.get_num_threads(), "device": device}
    return about, make_peer(weights_store.load(), device, tf32)


def run(sizes: Sequence[int], repeats: int = 3, layers_at: int | None = None,
        with_torch: bool = True, memory: bool = True, device: str = "cpu", tf32: bool = False,
        cuda_graphs: bool = False, with_cpu: bool = True, transfer_iterations: int | None = None,
        threads: int | None = None, log=lambda s: None) -> dict[str, Any]:
    """Time the engine on ``device``; on CUDA, also the CPU engine at the same sizes (unless
    ``with_cpu`` is off), and a transfer of ``transfer_iterations`` end to end at the size the
    layers are timed at, 512^2 by default (default 500 iterations on CUDA, 30 on the CPU; 0:
    none). ``threads``: the CPU engine's at every size (default: by size), on CUDA the one timed
    beside it; PyTorch keeps its own default, as a user runs it."""
    cuda = resolve_device(device) == "cuda"
    ours = None if cuda else threads  # on CUDA, threads are those of the CPU engine beside it
    network = load_network(device=device, tf32=tf32, cuda_graphs=cuda_graphs, threads=ours)
    device = network.backend.name
    result: dict[str, Any] = {
        "device": device, "tf32": tf32, "cuda_graphs": cuda_graphs,
        "machine": {**machine(), "threads": network.backend.workers.threads_for(max(sizes) ** 2),
                    "threads_by_size": {str(size): network.backend.workers.threads_for(size ** 2)
                                        for size in sizes}},
        "repeats": repeats,
    }
    _throughputs(result, network, log)
    peer = None
    result["torch"] = None
    if with_torch and torch_peer.available(device):
        result["torch"], peer = _torch_peer(device, tf32)
    cpu_network = None
    if cuda and with_cpu:
        cpu_network = load_network(device="cpu", threads=threads)
    evaluations = []
    layers_at = layers_at or (512 if 512 in sizes else sizes[0])
    peak = result["gpu_sgemm_gflops"] if cuda else result["sgemm_gflops"]
    for size in sizes:
        log(f"timing evaluations at {size}x{size}")
        row, layers = _time_size(network, size, repeats, peak, size == layers_at, cpu_network,
                                 peer, log)
        if layers is not None:
            result["layers"] = layers
        evaluations.append(row)
    result["evaluations"] = evaluations
    main = next(r for r in evaluations if r["size"] == layers_at)
    result["size"] = main["size"]
    result["seconds_per_evaluation"] = main["seconds"]
    result["torch_seconds_per_evaluation"] = main["torch_seconds"]
    result["ratio_to_torch"] = main["ratio_to_torch"]
    result["fraction_of_sgemm"] = main["fraction_of_sgemm"]
    by_size = {r["size"]: r["seconds"] for r in evaluations}
    result["seconds_1024_over_512"] = (by_size[1024] / by_size[512]
                                       if {512, 1024} <= set(by_size) else None)
    if transfer_iterations is None:  # on the CPU past L-BFGS-B's 20 pairs, where steps cost most
        transfer_iterations = 500 if cuda else 30
    if transfer_iterations:
        log(f"timing a {transfer_iterations}-iteration transfer at {layers_at}x{layers_at}")
        result["transfer"] = transfer_split(layers_at, transfer_iterations, device, tf32,
                                            cuda_graphs, ours)
    if memory:
        log(f"measuring peak memory of a {layers_at} px transfer (3 iterations)")
        result["peak_rss_bytes"] = peak_memory_of_run(layers_at, device=device, threads=ours)
        threads_flag = f" --threads {ours}" if ours else ""
        result["peak_rss_run"] = (f"gatys transfer --size {layers_at} --iterations 3 "
                                  f"--device {device}{threads_flag}")
    return result


def add_output_options(p: argparse.ArgumentParser, shown: str = "the table") -> None:
    """A bench's ``--json`` (print JSON instead of ``shown``) and ``--out FILE`` (also write
    the JSON there): :func:`report` writes and prints what they ask for."""
    p.add_argument("--json", action="store_true", help=f"print JSON instead of {shown}")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")


def report(result: dict[str, Any], a: argparse.Namespace,
           format_table: Callable[[dict[str, Any]], str]) -> None:
    """``result`` as :func:`add_output_options`' ``a`` asks: written to ``--out`` (atomically),
    and printed as JSON or as its table."""
    text = json.dumps(result, indent=2)
    if a.out:
        atomic_write_bytes(a.out, (text + "\n").encode())
    print(text if a.json else format_table(result))


def measure_and_report(name: str, a: argparse.Namespace, measure: Callable[[], dict[str, Any]],
                       format_table: Callable[[dict[str, Any]], str]) -> int:
    """A bench's run and its exit code: ``--out`` checked before ``measure()`` starts, the
    result written and printed as :func:`report` does (0); a GatysError or RuntimeError is one
    line, ``NAME: error: ...`` (2)."""
    try:
        if a.out:
            check_writable(a.out)
        r = measure()
    except (GatysError, RuntimeError) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    report(r, a, format_table)
    return 0
