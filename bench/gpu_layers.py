"""The GPU check's per-layer steps: each conv layer alone through every path of the CUDA
backend and through cuDNN, and the Winograd experiment against im2col + GEMM."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .gpu_report import log, precision


def run_winograd(weights: Path, sizes: Sequence[int], repeats: int) -> dict[str, Any]:
    """The experiment the CUDA issue asks for: the engine's Winograd path on CuPy (batched
    cuBLAS products, element-wise transforms) for the wide layers, against im2col + GEMM, in
    the same run, float32 and TF32; its error against the CPU in float64; per layer at 512^2."""
    import cupy

    from gatys.kernels import get_backend
    from gatys.kernels.cuda_backend import CudaBackend
    from gatys.model.network import Network
    from gatys.model.objective import paper_loss_and_gradient
    from gatys.store.weights import load

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
    ref_total, ref_grad = paper_loss_and_gradient(
        Network(vgg, get_backend("cpu"), dtype=np.float64), *images)
    total, grad = paper_loss_and_gradient(
        Network(vgg, CudaBackend("cuda", cupy, winograd=True)), *images)
    errors = {"loss_vs_float64": abs(total - ref_total) / abs(ref_total),
              "grad_vs_float64": float(np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad))}
    return {"status": "passed" if max(errors.values()) < 1e-3 else "failed",
            "evaluations": rows, "layers_winograd": layers, "errors_float32": errors}


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
    from gatys.model.vgg import layer_shapes
    from gatys.store.weights import load

    torch = None
    with contextlib.suppress(Exception):
        import torch
        if not torch.cuda.is_available():
            torch = None
    vgg = load(weights)
    rng = np.random.default_rng(0)
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
            _time_paths(row, paths, weight, bias, x, g, rng, repeats)
            if torch is not None:
                _time_cudnn(row, torch, weight, bias, x, g, repeats)
            rows.append(row)
            cupy.get_default_memory_pool().free_all_blocks()
    totals = _totals(rows)
    log("layers: " + ", ".join(f"{k} {v:.2f}" for k, v in totals.items()))
    return {"size": size, "repeats": repeats, "torch": torch is not None, "rows": rows,
            "totals_ms": totals, "table": format_layers(rows)}


def _time_paths(row: dict[str, Any], paths: dict[str, Any], weight: Any, bias: Any,
                x: np.ndarray, g: np.ndarray, rng: np.random.Generator, repeats: int) -> None:
    """Into ``row``: the layer forward and as an input gradient through each backend path that
    applies to it, and im2col's GEMM alone."""
    import cupy

    from gatys.kernels.winograd import winograd_tile

    h = x.shape[1]
    sync = cupy.cuda.get_current_stream().synchronize
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
                row[f"gemm_{key}_ms"] = 1e3 * _gpu_seconds(lambda: m @ col, sync, repeats)
                del col


def _time_cudnn(row: dict[str, Any], torch: Any, weight: Any, bias: Any, x: np.ndarray,
                g: np.ndarray, repeats: int) -> None:
    """Into ``row``: PyTorch's cuDNN on the same layer (conv2d + ReLU; conv2d_input)."""
    F = torch.nn.functional
    tx, tg = (torch.from_numpy(a[None]).cuda() for a in (x, g))
    tw = torch.from_numpy(np.array(weight, np.float32)).cuda()  # a writable copy
    tb = torch.from_numpy(np.array(bias, np.float32)).cuda()
    tsync = torch.cuda.synchronize
    row["torch_forward_ms"] = 1e3 * _gpu_seconds(
        lambda: F.relu(F.conv2d(tx, tw, tb, padding=1)), tsync, repeats)
    row["torch_input_grad_ms"] = 1e3 * _gpu_seconds(
        lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tg, padding=1), tsync, repeats)


def _totals(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per precision: each path's total over the layers, and the best path's per layer."""
    totals = {}
    for tf32 in (False, True):
        mine = [r for r in rows if r["tf32"] == tf32]
        for key in ("im2col_forward_ms", "im2col_input_grad_ms", "gemm_forward_ms",
                    "gemm_input_grad_ms", "torch_forward_ms", "torch_input_grad_ms"):
            totals[f"{precision(tf32)}_{key}"] = sum(r.get(key) or 0 for r in mine)
        best = sum(min(r[f"{p}_{d}_ms"] for p in LAYER_PATHS if f"{p}_{d}_ms" in r)
                   for r in mine for d in ("forward", "input_grad"))
        totals[f"{precision(tf32)}_best_path_ms"] = best
    return totals


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
