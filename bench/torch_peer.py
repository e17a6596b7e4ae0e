"""The same network and loss in PyTorch, as a peer for timing (only used when torch imports).

VGG-19 up to the deepest loss layer with our weights, zero padding, average pooling, the same
preprocessing, and the same loss (eqs. 1-7 with the per-position content scale); the gradient
with respect to the pixels comes from autograd. The weights do not require gradients, so
PyTorch, like gatys, computes only the gradient with respect to the input (an nn.Module-based
implementation that leaves requires_grad on also pays for weight gradients: about 1.4x the time
here).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from gatys.model.vgg import LAYERS, VGGWeights, walk


def available(device: str = "cpu") -> bool:
    """Whether torch imports (and, for ``device`` "cuda", sees a GPU)."""
    try:
        import torch
    except Exception:
        return False
    return device != "cuda" or torch.cuda.is_available()


class TorchPeer:
    def __init__(self, vgg: VGGWeights, content_layer: str, style_layers: list[str],
                 alpha: float, beta: float, device: str = "cpu", tf32: bool = False) -> None:
        import torch

        self.torch = torch
        self.device = device
        if device == "cuda":  # cuDNN convolutions; TF32 only when ours may use it too
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        self.weights = [self._put(np.array(w, np.float32)) for w in vgg.weights]
        self.biases = [self._put(np.array(b, np.float32)) for b in vgg.biases]
        pre = vgg.preprocess
        self.order = list(pre.order)
        self.scale = self._put(np.array(pre.scale, np.float32))[:, None, None]
        self.shift = self._put(np.array(pre.shift, np.float32))[:, None, None]
        self.content_layer, self.style_layers = content_layer, style_layers
        self.alpha, self.beta = alpha, beta
        self.upto = max([content_layer, *style_layers], key=LAYERS.index)

    def _put(self, a: np.ndarray) -> Any:
        return self.torch.from_numpy(a).to(self.device)

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def features(self, x: Any) -> dict[str, Any]:
        F = self.torch.nn.functional
        h = (x[self.order] * self.scale + self.shift)[None]
        out = {}
        for name, conv in walk(self.upto):
            if conv is not None:
                h = F.relu(F.conv2d(h, self.weights[conv], self.biases[conv], padding=1))
            else:
                h = F.avg_pool2d(h, 2)
            out[name] = h[0].reshape(h.shape[1], -1)
        return out

    def targets(self, content: np.ndarray, style: np.ndarray) -> None:
        with self.torch.no_grad():
            self.P = self.features(self._put(content))[self.content_layer]
            fs = self.features(self._put(style))
            self.A = {n: fs[n] @ fs[n].T for n in self.style_layers}

    def evaluate(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        t = self._put(x).requires_grad_(True)
        f = self.features(t)
        Fc = f[self.content_layer]
        loss = self.alpha * 0.5 * ((Fc - self.P) ** 2).sum() / Fc.shape[1]
        for n in self.style_layers:
            N, M = f[n].shape
            G = f[n] @ f[n].T
            E = ((G - self.A[n]) ** 2).sum() / (4.0 * N * N * M * M)  # eq. 4
            loss = loss + self.beta / len(self.style_layers) * E
        loss.backward()
        return float(loss.detach()), t.grad.cpu().numpy()  # as ours: the gradient to the host

    def seconds_per_evaluation(self, x: np.ndarray, repeats: int) -> float:
        self.evaluate(x)
        times = []
        for _ in range(repeats):
            self._sync()
            start = time.perf_counter()
            self.evaluate(x)
            times.append(time.perf_counter() - start)
        return float(np.median(times))
