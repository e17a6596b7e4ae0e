"""Colour preservation (Gatys et al. 2016) by what it computes, not only that it runs: the
painting's luminance moved to the photo's statistics, and the photo's chroma under the
result's luminance."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

from gatys.model.colour import luminance_matched, recombine, rgb_to_yiq


def pictures(low: float, high: float):
    return hnp.arrays(np.float64, (3, 6, 7),
                      elements=st.floats(low, high, allow_nan=False, allow_subnormal=False))


@settings(max_examples=60, deadline=None)
@given(style=pictures(0.0, 1.0), content=pictures(0.45, 0.55))
def test_the_matched_luminance_has_the_photos_mean_and_deviation(style, content):
    ys = rgb_to_yiq(style)[0]
    if ys.std() < 1e-3:  # a flat painting has no deviation to scale
        return
    y = luminance_matched(style, content)
    assert np.array_equal(y[0], y[1]) and np.array_equal(y[0], y[2])  # grey
    yc = rgb_to_yiq(content)[0]
    # The photo's luminance is within [0.45, 0.55] and the painting's standardised values
    # within about 4.1 deviations (7 * 6 samples), so nothing is clipped.
    assert abs(y[0].mean() - yc.mean()) < 1e-6
    assert abs(y[0].std() - yc.std()) < 1e-6
    if yc.std() > 1e-3:  # the painting's own pattern: a positive affine map of its luminance
        assert np.corrcoef(y[0].ravel(), ys.ravel())[0, 1] > 1 - 1e-6


@settings(max_examples=60, deadline=None)
@given(result=pictures(0.4, 0.6), content=pictures(0.4, 0.6))
def test_recombining_keeps_the_results_luminance_and_the_photos_chroma(result, content):
    out = rgb_to_yiq(recombine(result, content))
    np.testing.assert_allclose(out[0], rgb_to_yiq(result)[0], atol=1e-6)
    np.testing.assert_allclose(out[1:], rgb_to_yiq(content)[1:], atol=1e-6)
