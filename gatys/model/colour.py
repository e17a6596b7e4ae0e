"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer"): transfer the style on luminance only, or match the painting's colour
statistics to the photograph's first. Images are (3, H, W) float arrays in [0, 1]."""
from __future__ import annotations

import numpy as np

MODES = ("luminance", "histogram")

# RGB -> YIQ (NTSC); rows give Y, I, Q.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jhw->ihw", _RGB_TO_YIQ, x.astype(np.float64))


def yiq_to_rgb(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jhw->ihw", _YIQ_TO_RGB, x)


def luminance_image(x: np.ndarray) -> np.ndarray:
    """The luminance Y of ``x`` as a gray RGB image (Y in all three channels)."""
    y = rgb_to_yiq(x)[0]
    return np.repeat(np.clip(y, 0, 1)[None], 3, axis=0).astype(np.float32)


def luminance_matched(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The painting's luminance as a gray image, shifted and scaled to the photograph's mean
    and standard deviation of luminance (so the transfer does not change the photo's tones)."""
    ys, yc = rgb_to_yiq(style)[0], rgb_to_yiq(content)[0]
    y = (ys - ys.mean()) * (yc.std() / max(ys.std(), 1e-8)) + yc.mean()
    return np.repeat(np.clip(y, 0, 1)[None], 3, axis=0).astype(np.float32)


def recombine(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance with the photograph's chroma (I and Q of YIQ)."""
    yiq = rgb_to_yiq(content)
    yiq[0] = rgb_to_yiq(result)[0]
    return np.clip(yiq_to_rgb(yiq), 0, 1).astype(np.float32)


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 1e-8)
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def match_colours(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The painting with its colours' mean and covariance moved to the photograph's:
    x' = C_c^(1/2) C_s^(-1/2) (x - mu_s) + mu_c (the symmetric matrix-square-root transfer)."""
    s = style.reshape(3, -1).astype(np.float64)
    c = content.reshape(3, -1).astype(np.float64)
    mu_s, mu_c = s.mean(axis=1, keepdims=True), c.mean(axis=1, keepdims=True)
    A = _sqrtm(np.cov(c)) @ _sqrtm(np.cov(s), inverse=True)
    out = A @ (s - mu_s) + mu_c
    return np.clip(out, 0, 1).reshape(style.shape).astype(np.float32)
