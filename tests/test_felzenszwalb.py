"""The multi-scale Felzenszwalb segmentation behind XRAI, against scikit-image.

``felzenszwalb_multiscale`` must give, label for label, what
``skimage.segmentation.felzenszwalb`` gives at each scale: the compiled
kernel (``_felzenszwalb.c``) shares the edge sort between scales and merges
with path compression and union by size, none of which may change a label.
The fallback without the kernel calls scikit-image itself.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import ndimage as ndi

from sklearn_relevance.explainers import _segmentation as seg

skimage_segmentation = pytest.importorskip("skimage.segmentation")
skimage_transform = pytest.importorskip("skimage.transform")

needs_kernel = pytest.mark.skipif(
    seg._kernel is None, reason="the C kernel was not compiled (no C compiler at install)")


def test_kernel_is_built_where_required():
    # CI sets SKLEARN_RELEVANCE_REQUIRE_KERNEL=1: a broken build must fail there
    # rather than fall back silently to the slow path.
    if os.environ.get("SKLEARN_RELEVANCE_REQUIRE_KERNEL") == "1":
        assert seg._kernel is not None


def _reference(image, scales, sigma, min_size):
    return np.stack([skimage_segmentation.felzenszwalb(
        image, scale=s, sigma=sigma, min_size=min_size, channel_axis=-1) for s in scales])


def _image(rng, kind, shape, channels):
    im = rng.normal(size=(*shape, channels))
    if kind == "quantised":  # many exactly tied edge costs
        im = np.round(im * 2) / 2
    elif kind == "smooth":
        im = ndi.gaussian_filter(im, (3, 3, 0))
    elif kind == "flat_regions":  # constant areas: runs of zero-cost edges
        im = np.zeros((*shape, channels))
        im[shape[0] // 3:, : shape[1] // 2] = 1.0
        im += (rng.random((*shape, channels)) < 0.02)
    return im


@needs_kernel
@pytest.mark.parametrize("kind", ["noise", "quantised", "smooth", "flat_regions"])
@pytest.mark.parametrize("channels", [1, 3])
def test_kernel_equals_scikit_image(kind, channels):
    rng = np.random.default_rng(abs(hash((kind, channels))) % 2**32)
    for shape in [(2, 2), (7, 40), (53, 29), (96, 96)]:
        image = _image(rng, kind, shape, channels)
        for sigma, min_size in [(0.0, 1), (0.8, 20), (2.0, 150)]:
            scales = (1, 10, 50, 250, 1200)
            got = seg.felzenszwalb_multiscale(image, scales, sigma=sigma, min_size=min_size)
            want = _reference(image, scales, sigma, min_size)
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {sigma} {min_size}")


@needs_kernel
def test_kernel_equals_scikit_image_on_pair_input():
    # the XRAI case: a small image resized to 224 x 224, PAIR's six scales
    rng = np.random.default_rng(0)
    image = ndi.gaussian_filter(rng.normal(size=(64, 64, 1)), (1.5, 1.5, 0))
    resized = seg.normalize_image(image, (-1.0, 1.0), seg.PAIR_SHAPE)
    got = seg.felzenszwalb_multiscale(resized, seg.PAIR_SCALES, sigma=0.8, min_size=150)
    np.testing.assert_array_equal(got, _reference(resized, seg.PAIR_SCALES, 0.8, 150))


def test_fallback_without_kernel_is_scikit_image(monkeypatch):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(20, 24, 1))
    monkeypatch.setattr(seg, "_kernel", None)
    got = seg.felzenszwalb_multiscale(image[..., 0], (5, 50), sigma=0.5, min_size=4)
    np.testing.assert_array_equal(got, _reference(image, (5, 50), 0.5, 4))


@needs_kernel
def test_kernel_checks_its_buffers():
    costs = np.zeros(3 * 2 + 2 * 3 + 2 * 2 * 2)  # a 3 x 3 image has 20 edges
    order = np.arange(costs.size)
    out = np.empty((1, 3, 3), dtype=np.intp)
    with pytest.raises(ValueError, match="costs must hold 20 items"):
        seg._kernel.multiscale(order, costs[:-1], 3, 3, np.ones(1), 1, out)
    with pytest.raises(ValueError, match="out must hold 9 items"):
        seg._kernel.multiscale(order, costs, 3, 3, np.ones(1), 1, out[:, :2])
    with pytest.raises(ValueError, match="out of range"):
        seg._kernel.multiscale(order + 1, costs, 3, 3, np.ones(1), 1, out)
    with pytest.raises(ValueError, match="at least 2 x 2"):
        seg._kernel.multiscale(order[:1], costs[:1], 1, 2, np.ones(1), 1, out[:, :1, :2])


@pytest.mark.parametrize("shape,target", [((64, 64, 1), (224, 224)),
                                          ((40, 50, 3), (224, 224)),
                                          ((300, 280, 1), (224, 224))])
def test_cubic_resize_equals_scikit_image(shape, target):
    rng = np.random.default_rng(2)
    image = seg.normalize_image(rng.normal(size=shape))
    want = skimage_transform.resize(image, target, order=3, mode="constant",
                                    preserve_range=True, anti_aliasing=True)
    np.testing.assert_allclose(seg.normalize_image(image, shape=target), want,
                               rtol=0, atol=1e-13)


def test_labels_resized_back_as_scikit_image():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 50, size=(224, 224))
    pick = seg._nearest_pixels((224, 224), (61, 70))
    want = skimage_transform.resize(labels, (61, 70), order=0, preserve_range=True,
                                    mode="constant", anti_aliasing=False).astype(int)
    np.testing.assert_array_equal(labels.ravel()[pick], want)


@needs_kernel
def test_threshold_in_single_precision_as_scikit_image():
    # scikit-image rounds a segment's threshold cint + scale / size to float32:
    # a cost between 1/255 and float32(1/255) merges two singletons there
    # (a double-precision threshold would keep them apart)
    low, high = 1 / 255, float(np.float32(1 / 255))
    cost = (low + high) / 2
    assert low < cost < high
    image = np.array([[0.0, cost], [10.0, 30.0]])[..., None]
    got = seg.felzenszwalb_multiscale(image, (1,), sigma=0.0, min_size=1)
    np.testing.assert_array_equal(got[0], [[0, 0], [1, 2]])
    np.testing.assert_array_equal(got, _reference(image, (1,), 0.0, 1))


@pytest.mark.parametrize("kernel", [True, False])
def test_picked_labels_equal_full_labels(kernel, monkeypatch):
    if kernel and seg._kernel is None:
        pytest.skip("the C kernel was not compiled")
    if not kernel:
        monkeypatch.setattr(seg, "_kernel", None)
    rng = np.random.default_rng(4)
    image = ndi.gaussian_filter(rng.normal(size=(60, 50, 1)), (2, 2, 0))
    pick = rng.integers(0, 60 * 50, size=(7, 9))
    full = seg.felzenszwalb_multiscale(image, (5, 50, 500), sigma=0.5, min_size=10)
    picked = seg.felzenszwalb_multiscale(image, (5, 50, 500), sigma=0.5, min_size=10,
                                         pick=pick)
    assert picked.shape == (3, 7, 9)
    np.testing.assert_array_equal(picked, full.reshape(3, -1)[:, pick])


@needs_kernel
def test_kernel_checks_picked_pixels():
    image = np.random.default_rng(5).normal(size=(6, 6, 1))
    with pytest.raises(ValueError, match="pick holds a pixel index out of range"):
        seg.felzenszwalb_multiscale(image, (5,), pick=np.array([0, 36]))
