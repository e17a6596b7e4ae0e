"""Read a legacy (pre-1.6, non-zip) ``torch.save`` file without PyTorch, safely.

Layout: pickled magic number, protocol version and sys-info; the pickled state dict, whose tensors
name their storages by key (persistent ids); the pickled list of storage keys; then, per key, an
int64 element count followed by the raw little-endian data. A pickle can run arbitrary code, so
the unpickler below resolves only the handful of names this format needs and refuses any other.
"""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any, BinaryIO

import numpy as np

from gatys.errors import WeightsError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES[name]


class _TensorRef:
    """A tensor as the pickle describes it: a view into a storage not yet read."""

    def __init__(self, storage: tuple, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None,
                       *rest):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    ALLOWED: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        **{("torch", name): (lambda n=name: _StorageType(n)) for name in _STORAGE_DTYPES},
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            found = self.ALLOWED[(module, name)]
            return found() if module == "torch" else found
        raise WeightsError(
            f"refusing to load {module}.{name} from the weights file: a legacy torch weights file "
            "needs only tensors and an OrderedDict, so this file is not one (or was tampered with)"
        )

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError(f"unexpected persistent id in the weights file: {pid!r}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"unexpected storage type in the weights file: {storage_type!r}")
        return (storage_type.dtype, str(key), int(numel))


def _load_one(f: BinaryIO) -> Any:
    try:
        return _RestrictedUnpickler(f).load()
    except WeightsError:
        raise
    except Exception as e:  # truncated or corrupt pickle streams raise many kinds of error
        raise WeightsError(f"the weights file is damaged or not a legacy torch file "
                           f"({e})") from None


def load_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """Parse a legacy torch state dict from bytes into {name: float array (own memory)}."""
    f = io.BytesIO(data)
    if _load_one(f) != MAGIC_NUMBER:
        raise WeightsError("not a legacy torch weights file (wrong magic number)")
    if _load_one(f) != PROTOCOL_VERSION:
        raise WeightsError("unsupported legacy torch protocol version")
    sys_info = _load_one(f)
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
        raise WeightsError("only little-endian legacy torch files are supported")
    state = _load_one(f)
    keys = _load_one(f)
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsError("the weights file does not hold a state dict")
    dtypes = {r.storage[1]: r.storage[0] for r in state.values() if isinstance(r, _TensorRef)}
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        count_bytes = f.read(8)
        if len(count_bytes) != 8:
            raise WeightsError("the weights file is truncated")
        count = int(np.frombuffer(count_bytes, "<i8")[0])
        dtype = dtypes.get(str(key), np.dtype("<f4"))
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise WeightsError("the weights file is truncated")
        storages[str(key)] = np.frombuffer(raw, dtype)
    tensors: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise WeightsError(f"entry {name!r} of the weights file is not a tensor")
        flat = storages.get(ref.storage[1])
        if flat is None:
            raise WeightsError(f"tensor {name!r} refers to a missing storage")
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if ref.offset < 0 or min(ref.stride, default=0) < 0 or last >= flat.size:
            raise WeightsError(f"tensor {name!r} does not fit its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset:], shape=ref.size,
            strides=[s * flat.dtype.itemsize for s in ref.stride], writeable=False)
        tensors[str(name)] = np.array(view, dtype=np.float32)
    return tensors
