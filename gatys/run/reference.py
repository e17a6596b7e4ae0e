"""Reference data for other implementations: ``gatys reference export DIR`` / ``check DIR``.

Each case is a folder ``test_data_set_N`` in the ONNX test-data layout: ``input_K.pb`` and
``output_K.pb``, each a serialized ``onnx.TensorProto`` whose name says what it is. The inputs are
the generated image x, the photograph p and the painting a. The outputs are the features of the
content and style layers for x, each layer's loss (eq. 1 per position, eq. 4), L_total (eq. 7)
and dL/dx. Everything is float64, from the paper's weights. ``cases.json`` records each case's
settings and the weights' checksum, and ``README.md`` explains it all for a reader without gatys.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
from onnx import numpy_helper

from gatys.errors import GatysError, InputError
from gatys.io.atomic import atomic_write_bytes
from gatys.kernels import get_backend
from gatys.model.network import Network
from gatys.model.objective import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, paper_objective
from gatys.model.vgg import LAYERS
from gatys.run.declarations import declared, options_of
from gatys.run.fitting import smallest_side
from gatys.run.options import ReferenceOptions
from gatys.store import weights as weights_store

RTOL = 1e-7  # float64 against float64: different summation orders stay far below this
ATOL_GRAD = 1e-12  # dL/dx has exact zeros where a ReLU is off everywhere above a pixel


@dataclass(frozen=True)
class Case:
    """One reference case: sizes of x and p (H, W), of a, the pooling, and the loss settings."""

    shape: tuple[int, int]
    style_shape: tuple[int, int]
    pool: str
    seed: int
    alpha: float = 1e-3
    beta: float = 1.0
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    content_scale: str = "per-position"


CASES = (Case((16, 24), (20, 16), "avg", 0), Case((32, 48), (40, 36), "avg", 1),
         Case((32, 48), (32, 48), "max", 2))


def _images(case: Case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(case.seed)
    return {"x": rng.random((3, *case.shape)), "p": rng.random((3, *case.shape)),
            "a": rng.random((3, *case.style_shape))}


def compute(case: Case, vgg: Any, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of ``case`` for ``images``, in float64 on the CPU, by name."""
    net = Network(vgg, get_backend("cpu"), pool=case.pool, dtype=np.float64)
    styles = list(case.style_layers)
    objective = paper_objective(net, images["p"], images["a"], case.alpha, case.beta,
                                case.content_layer, case.style_layers, case.content_scale)
    layers = sorted({case.content_layer, *styles}, key=LAYERS.index)
    tape = net.forward(images["x"], keep=layers)
    out = {f"features_{n}": np.asarray(tape.features[n])[None] for n in layers}
    ev = objective.evaluate(images["x"])
    out[f"loss_content_{case.content_layer}"] = np.array(ev.layers[f"content:{case.content_layer}"])
    for n in styles:
        out[f"loss_style_{n}"] = np.array(ev.layers[f"style:{n}"])
    out["loss_total"] = np.array(ev.total)
    out["grad_x"] = np.asarray(ev.grad)[None]
    return out


def _write(path: Path, array: np.ndarray, name: str) -> None:
    atomic_write_bytes(path, numpy_helper.from_array(np.asarray(array, np.float64), name)
                       .SerializeToString())


def _read(path: Path) -> tuple[str, np.ndarray]:
    t = onnx.TensorProto()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}; {AGAIN}") from None
    try:
        t.ParseFromString(data)
        return t.name, numpy_helper.to_array(t)
    except Exception as e:
        raise InputError(f"{path} is not a serialized TensorProto ({e}); {AGAIN}") from None


AGAIN = "write it again with gatys reference export DIR"


def _load_index(path: Path) -> dict[str, Any]:
    """``cases.json`` of a reference folder, its shape checked: InputError naming the file and
    what is wrong, for anything :func:`export` would not have written."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path} is not a reference index ({e}): {AGAIN}") from None

    def bad(what: str) -> InputError:
        return InputError(f"{path} is not a reference index: {what}; {AGAIN}")

    if not isinstance(record, dict):
        raise bad(f"it holds a {type(record).__name__}, not an object")
    for key, kind in (("weights", str), ("weights_sha256", str), ("rtol", (int, float)),
                      ("cases", list)):
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            raise bad(f"{key!r} is missing or of the wrong type")
    if not record["cases"] or not all(isinstance(c, dict) for c in record["cases"]):
        raise bad("'cases' must be a non-empty list of cases")
    return record


def _case_of(entry: dict[str, Any], path: Path) -> tuple[int, Case]:
    """The case number and :class:`Case` of one entry of ``cases.json`` (at ``path``)."""
    try:
        number = int(str(entry["folder"]).rsplit("_", 1)[1])
        fields = {k: entry[k] for k in Case.__dataclass_fields__}
        case = Case(**{**fields, "shape": tuple(int(v) for v in fields["shape"]),
                       "style_shape": tuple(int(v) for v in fields["style_shape"]),
                       "style_layers": tuple(fields["style_layers"])})
        inputs, outputs = list(entry["inputs"]), list(entry["outputs"])
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise InputError(f"{path}: a case is not as gatys reference export writes it "
                         f"({type(e).__name__}: {e}); {AGAIN}") from None
    if inputs != ["x", "p", "a"] or not all(isinstance(o, str) for o in outputs) \
            or len(case.shape) != 2 or len(case.style_shape) != 2 \
            or entry["folder"] != f"test_data_set_{number}":
        raise InputError(f"{path}: case {entry['folder']!r} is not as gatys reference export "
                         f"writes it; {AGAIN}")
    for name, shape in (("shape", case.shape), ("style_shape", case.style_shape)):
        need = smallest_side([case.content_layer, *case.style_layers])
        if min(shape) < need:
            raise InputError(f"{path}: case {number}'s {name} {shape[0]}x{shape[1]} is too "
                             f"small for its layers (needs >= {need} px on each side); {AGAIN}")
    return number, case


@declared(ReferenceOptions)
def export(folder: str | os.PathLike, **keywords: Any) -> list[Path]:
    """Write every case of :data:`CASES` into ``folder`` (test_data_set_0, 1, ...), with
    ``cases.json`` and ``README.md``; returns the case folders."""
    options = options_of(ReferenceOptions, "export", keywords)
    folder = Path(folder)
    path = weights_store.ensure(options.weights)
    vgg = weights_store.load(path)
    numbers = range(len(CASES)) if options.cases is None \
        else cast(list[int], options.cases)  # a list once checked
    for n in numbers:
        if not 0 <= n < len(CASES):
            raise InputError(f"there is no reference case {n}: choose among 0 to {len(CASES) - 1}")
    written = []
    index = []
    for number in numbers:
        case = CASES[number]
        case_dir = folder / f"test_data_set_{number}"
        case_dir.mkdir(parents=True, exist_ok=True)
        images = _images(case)
        for k, name in enumerate(("x", "p", "a")):
            _write(case_dir / f"input_{k}.pb", images[name][None], name)
        outputs = compute(case, vgg, images)
        for k, (name, value) in enumerate(outputs.items()):
            _write(case_dir / f"output_{k}.pb", value, name)
        index.append({"folder": case_dir.name, **asdict(case),
                      "inputs": ["x", "p", "a"], "outputs": list(outputs)})
        written.append(case_dir)
    record = {"weights": vgg.source, "weights_sha256": weights_store.weights_checksum(vgg),
              "rtol": RTOL, "atol_grad": ATOL_GRAD, "cases": index}
    atomic_write_bytes(folder / "cases.json", (json.dumps(record, indent=2) + "\n").encode())
    atomic_write_bytes(folder / "README.md", readme(record).encode())
    return written


@declared(ReferenceOptions)
def check(folder: str | os.PathLike, **keywords: Any) -> list[str]:
    """Recompute every case in ``folder`` (as written by :func:`export`) and compare; one line
    per case, or GatysError naming the first output that differs."""
    options = options_of(ReferenceOptions, "check", keywords)
    folder = Path(folder)
    index_path = folder / "cases.json"
    if not index_path.is_file():
        raise InputError(f"{folder} has no cases.json: give a folder written by "
                         "gatys reference export")
    record = _load_index(index_path)
    cases = [(*_case_of(entry, index_path), entry) for entry in record["cases"]]
    vgg = weights_store.load(weights_store.ensure(options.weights))
    if weights_store.weights_checksum(vgg) != record["weights_sha256"]:
        raise GatysError(f"{folder} was made with other weights ({record['weights']}): check it "
                         "with those (--weights)")
    lines = []
    for number, case, entry in cases:
        if options.cases is not None and number not in options.cases:
            continue
        case_dir = folder / entry["folder"]
        images = {name: _read(case_dir / f"input_{k}.pb")[1]
                  for k, name in enumerate(entry["inputs"])}
        for name, image in images.items():
            expected = (1, 3, *(case.style_shape if name == "a" else case.shape))
            if image.shape != expected:
                raise InputError(f"{case_dir}/input_{entry['inputs'].index(name)}.pb holds "
                                 f"{name} of shape {image.shape}, cases.json says {expected}; "
                                 f"{AGAIN}")
        images = {name: image[0] for name, image in images.items()}
        ours = compute(case, vgg, images)
        worst = 0.0
        for k, name in enumerate(entry["outputs"]):
            stored_name, stored = _read(case_dir / f"output_{k}.pb")
            if stored_name != name or stored.shape != ours[name].shape:
                raise GatysError(f"{case_dir}/output_{k}.pb holds {stored_name} "
                                 f"{stored.shape}, expected {name} {ours[name].shape}")
            err = float(np.max(np.abs(ours[name] - stored)) / max(np.max(np.abs(stored)), 1e-300))
            if err > record["rtol"]:
                raise GatysError(f"{case_dir.name}: {name} differs by {err:.2e} relative "
                                 f"(tolerance {record['rtol']:g})")
            worst = max(worst, err)
        lines.append(f"{case_dir.name}: {len(entry['outputs'])} outputs agree "
                     f"(largest relative difference {worst:.1e})")
    return lines


def readme(record: dict[str, Any]) -> str:
    """The folder's README: what each file holds and how to compare, for any implementation."""
    case = record["cases"][0]
    outputs = "\n".join(f"| `output_{k}.pb` | `{name}` | {_describe(name)} |"
                        for k, name in enumerate(case["outputs"]))
    cases = "\n".join(f"| `{c['folder']}` | {c['shape'][0]}x{c['shape'][1]} | "
                      f"{c['style_shape'][0]}x{c['style_shape'][1]} | {c['pool']} |"
                      for c in record["cases"])
    return f"""# Reference data for Gatys, Ecker & Bethge (2015)

Written by `gatys reference export`; `gatys reference check DIR` recomputes and compares.
Each `test_data_set_N` folder follows the ONNX test-data layout: `input_K.pb` and `output_K.pb`
are serialized `onnx.TensorProto`s (read them with `onnx.TensorProto().ParseFromString(...)`
and `onnx.numpy_helper.to_array`), named for what they hold. Everything is float64, NCHW with
a batch of 1 for images and features.

Weights: {record['weights']}, the normalised VGG-19 the paper used (ONNX file from `gatys weights
build`; sha256 over its 16 conv weight and bias arrays as little-endian float32:
`{record['weights_sha256']}`). Zero padding 1 on every 3x3 convolution, ReLU after each, 2x2
pools with stride 2 (floor); the network takes RGB in [0, 1] and applies Caffe's preprocessing
(BGR, 0-255, minus the mean pixel 103.939, 116.779, 123.68).

| folder | x and p (HxW) | a (HxW) | pooling |
|---|---|---|---|
{cases}

Inputs: `input_0.pb` x (the generated image), `input_1.pb` p (the photograph), `input_2.pb` a
(the painting), each (1, 3, H, W) RGB in [0, 1]. Loss settings: content layer conv4_2, style
layers conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 with w_l = 1/5, alpha = 1e-3, beta = 1.

| file | name | what |
|---|---|---|
{outputs}

Compare with a relative tolerance of {record['rtol']:g} (largest absolute difference over the
largest absolute value of each output) for a float64 implementation; a float32 one should stay
within about 1e-4 on features and losses and 1e-3 on the gradient.
"""


def _describe(name: str) -> str:
    if name.startswith("features_"):
        return f"F^l of x at {name[9:]}: the ReLU output, (1, N_l, H_l, W_l)"
    if name.startswith("loss_content_"):
        return ("eq. 1 divided by M_l: 1/(2 M_l) sum (F - P)^2 (the per-position scale, see "
                "gatys' docs/loss-scale.md)")
    if name.startswith("loss_style_"):
        return ("E_l of eq. 4: sum (G - A)^2 / (4 N_l^2 M_l^2), G = F F^T; A is the painting's "
                "Gram matrix times M_l(x) / M_l(a), eq. 3's A when the sizes agree")
    if name == "loss_total":
        return "L_total of eq. 7: alpha L_content + beta sum_l w_l E_l"
    return "dL_total/dx, (1, 3, H, W)"
