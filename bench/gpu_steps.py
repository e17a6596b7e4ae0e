"""The GPU check's steps that time or check the engine as a whole: the CUDA tests, the
gradient checks, the bench against PyTorch, CUDA graphs, scipy's L-BFGS-B on the host and a
transfer end to end. Each returns its record for the report (:mod:`.gpu_report`)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .gpu_report import log, precision

ROOT = Path(__file__).resolve().parent.parent
RANDOM_SEED = 7


def random_weights_file(folder: Path) -> Path:
    """A VGG-19 of the real layer sizes with seeded random weights, as our ONNX file."""
    import onnx

    from gatys.model.gradcheck import random_vgg
    from gatys.model.vgg import CHANNELS
    from gatys.store.onnx_build import build_model

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
    from gatys.run import gradcheck_command

    checks = gradcheck_command.run("cuda")
    worst = max(checks, key=lambda c: c.max_rel_error)
    return {"status": "passed" if all(c.passed for c in checks) else "failed",
            "passed": sum(c.passed for c in checks), "checks": len(checks),
            "worst": {"name": worst.name, "max_rel_error": worst.max_rel_error},
            "failed": [c.name for c in checks if not c.passed],
            "table": gradcheck_command.format_table(checks)}


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
    from gatys.model.network import Network
    from gatys.store.weights import load

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
    gatys runs it (history 20, bounds, the fixed padding), with BLAS on one thread (as gatys
    holds it) and on every core, and on one thread without the padding: the host's share of a
    transfer, apart from the GPU."""
    from gatys.kernels.workers import cpus

    from . import lbfgsb

    rows = [lbfgsb.seconds_per_iteration(variables, 20, True, iterations, threads, padding=pad)
            for threads, pad in [(1, True), (1, False)] + [(cpus(), True)] * (cpus() > 1)]
    return {"rows": rows, "summary": ", ".join(
        f"{r['threads']} thread(s){'' if r['padding'] else ' unpadded'}: "
        f"{1e3 * r['seconds_per_iteration']:.0f} ms/iteration" for r in rows)}


def run_transfer(out: Path, weights: Path, iterations: int, size: int = 512,
                 cuda_graphs: bool = False) -> dict[str, Any]:
    """The demo's pictures (scikit-image's photo, gatys' painting), or seeded noise where
    scikit-image is missing."""
    from gatys.errors import InputError
    from gatys.run import api, demo

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
    # one stage, so that its iterations compare with the CPU's and with earlier runs
    result = api.transfer(content, style, png, size=size, iterations=iterations, scales=1,
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
