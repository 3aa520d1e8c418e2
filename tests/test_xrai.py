"""XRAI against the PAIR ``saliency`` package's XRAI, its axioms and contract.

How the comparison with PAIR is exact
-------------------------------------
Both implementations receive the same base attribution (PAIR through its
``base_attribution`` argument), so only the segmentation and the greedy
selection are compared. The segmentation gives scikit-image's label maps
(tests/test_felzenszwalb.py) on the same resized float64 image (equal to
scikit-image's resize to about 1e-15), so the candidate masks are identical
(checked mask by mask, after dropping PAIR's empty and repeated masks, which
cannot change the selection). The greedy selection takes the first region of largest gain,
as PAIR's strict ``>``. Exact ties in practice come from regions with the
same uncovered pixels (nested segments of different scales): whichever wins
covers the same pixels, so the result is the same. Regions whose gains differ
by less than ~1e-12 of the peak attribution (our sums run on exact integers,
PAIR's are float64 means) could be ordered differently; random float64
attributions never produce such near-ties. Hence: equal rank maps and region
masks, and attribution maps equal to 1e-10 (float64 means summed in another
order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from sklearn_relevance.explainers import XRAI, get_explainer
from sklearn_relevance.explainers._segmentation import dilate_disk, image_masks
from sklearn_relevance.explainers.xrai import greedy_regions

saliency = pytest.importorskip("saliency.core")
pair_xrai = pytest.importorskip("saliency.core.xrai")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one torch thread (two threads thrash on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _smooth_images(n, c, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return torch.tensor(gaussian_filter(rng.normal(size=(n, c, h, w)), (0, 0, 3, 3)))


def _cnn(c, h, w, n_out=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * h * w, n_out),
    ).double()


def _pair(image_chw, attr_chw, min_pixel_diff=50, segments=None, **params):
    """PAIR's XRAI on one image: (map, rank map, ranked masks)."""
    x = image_chw.permute(1, 2, 0).double().numpy()
    b = attr_chw.permute(1, 2, 0).double().numpy()
    extra = saliency.XRAIParameters(**params)
    extra.experimental_params["min_pixel_diff"] = min_pixel_diff
    extra.return_xrai_segments, extra.flatten_xrai_segments = True, False
    out = saliency.XRAI().GetMaskWithDetails(x, None, base_attribution=b,
                                             segments=segments, extra_parameters=extra)
    masks = np.array(out.segments)
    # PAIR's flattened segments: attr_ranks[mask_i] = i + 1
    ranks = (masks * np.arange(1, len(masks) + 1)[:, None, None]).sum(0)
    return out.attribution_mask, ranks, masks


# ---------------------------------------------------------------- segments
def _pair_masks_deduplicated(image):
    out = []
    for m in pair_xrai._get_segments_felzenszwalb(image):
        if m.any() and not any(np.array_equal(m, o) for o in out):
            out.append(m)
    return np.array(out)


@pytest.mark.parametrize("channels", [1, 3])
def test_segments_equal_pair(channels):
    image = _smooth_images(1, channels, 40, 36, seed=channels)[0].permute(1, 2, 0).numpy()
    expected = _pair_masks_deduplicated(image)
    got = image_masks(image).numpy()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("radius", [0, 1, 3, 5, 6])
def test_dilate_disk_equals_skimage(radius):
    from skimage.morphology import dilation, disk

    rng = np.random.default_rng(radius)
    masks = rng.random((6, 17, 23)) < 0.03
    masks[0, 0, 0] = masks[1, -1, -1] = masks[2, 8, 0] = True  # borders
    expected = np.array([dilation(m, footprint=disk(radius)) if radius else m
                         for m in masks])
    got = dilate_disk(torch.as_tensor(masks), radius).numpy()
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------- greedy selection
def _random_regions(rng, h, w, k):
    masks = np.zeros((k, h, w), dtype=bool)
    for m in masks:
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        m[y:y + rng.integers(3, h // 2), x:x + rng.integers(3, w // 2)] = True
    # repeats tie exactly with their first copy
    return np.concatenate([masks, masks[:3]])


@pytest.mark.parametrize("area_threshold", [1.0, 0.7, 0.3, 0.0])
@pytest.mark.parametrize("min_pixel_diff", [1, 5, 20])
def test_greedy_equals_pair(area_threshold, min_pixel_diff):
    """A chunk of images with different region counts against PAIR's `_xrai`."""
    rng = np.random.default_rng(int(area_threshold * 10) + min_pixel_diff)
    h, w = 20, 24
    regions = [_random_regions(rng, h, w, k) for k in (25, 10, 30)]
    attr = rng.normal(size=(3, h, w))
    attr[0, :10] = 0.0  # zero-attribution rows: exactly tied gains
    values, ranks = greedy_regions(
        [torch.as_tensor(r) for r in regions], torch.as_tensor(attr),
        min_pixel_diff=min_pixel_diff, area_threshold=area_threshold)
    for i in range(3):
        ref_values, ref_ranks = pair_xrai.XRAI._xrai(
            attr[i], list(regions[i]), area_perc_th=area_threshold,
            min_pixel_diff=min_pixel_diff)
        np.testing.assert_allclose(values[i].numpy(), ref_values, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(ranks[i].numpy(), ref_ranks)


def test_greedy_in_small_memory_chunks_gives_the_same(monkeypatch):
    """Chunked float64 work arrays and image chunks change nothing."""
    from sklearn_relevance.explainers import _greedy_regions as greedy_module

    rng = np.random.default_rng(11)
    regions = [torch.as_tensor(_random_regions(rng, 20, 24, k)) for k in (25, 0, 12)]
    attr = torch.as_tensor(rng.normal(size=(3, 20, 24)))
    expected = greedy_regions(regions, attr, min_pixel_diff=3)
    monkeypatch.setattr(greedy_module, "_WORK_BUDGET", 2000)
    got = greedy_regions(regions, attr, min_pixel_diff=3)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert bool((got[1][1] == 1).all())  # no regions: one rest region


# ------------------------------------------------------- the whole method
@pytest.fixture(scope="module")
def gray_case():
    """3 grayscale images, a double CNN, XRAI with its default IG base."""
    X = _smooth_images(3, 1, 40, 36)
    module = _cnn(1, 40, 36)
    target = torch.tensor([0, 2, 1])
    xrai = XRAI()
    regions, values = xrai.explain_regions(module, X, target, return_attributions=True)
    return X, module, target, values, regions


def _default_base_attribution(module, X, target):
    """IG (the default base) averaged over the black and white baselines."""
    n = X.shape[0]
    flat = X.reshape(n, -1)
    low = flat.amin(1).view(n, 1, 1, 1).expand_as(X)
    high = flat.amax(1).view(n, 1, 1, 1).expand_as(X)
    ig = get_explainer("ig")
    return (ig.set_params(baselines=low).explain(module, X, target)
            + ig.set_params(baselines=high).explain(module, X, target)) / 2


def test_explain_equals_pair(gray_case):
    X, module, target, values, regions = gray_case
    base = _default_base_attribution(module, X, target)
    for i in range(X.shape[0]):
        ref_values, ref_ranks, ref_masks = _pair(X[i], base[i])
        np.testing.assert_allclose(values[i, 0].numpy(), ref_values, rtol=1e-10,
                                   atol=1e-14)
        np.testing.assert_array_equal(regions[i].numpy(), ref_masks)
        ranks = (regions[i].long() * torch.arange(1, len(regions[i]) + 1).view(-1, 1, 1))
        np.testing.assert_array_equal(ranks.sum(0).numpy(), ref_ranks)


def test_explain_equals_pair_rgb_area_threshold():
    X = _smooth_images(1, 3, 32, 32, seed=5)
    module = _cnn(3, 32, 32)
    base = get_explainer("gradient_x_input").explain(module, X, 1)
    xrai = XRAI(explainer="gradient_x_input", area_threshold=0.4, min_pixel_diff=20)
    values = xrai.explain(module, X, 1)
    regions = xrai.explain_regions(module, X, 1, base_attribution=base)
    ref_values, _, ref_masks = _pair(X[0], base[0], min_pixel_diff=20, area_threshold=0.4)
    assert values.shape == X.shape  # the map repeated over the channels
    for c in range(3):
        np.testing.assert_allclose(values[0, c].numpy(), ref_values, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(regions[0].numpy(), ref_masks)
    # both parameters change the result (PAIR on its own segments of the image)
    segments = pair_xrai._get_segments_felzenszwalb(X[0].permute(1, 2, 0).numpy())
    assert not np.array_equal(
        _pair(X[0], base[0], segments=segments, area_threshold=0.4)[2], ref_masks)
    assert not np.allclose(
        _pair(X[0], base[0], segments=segments, min_pixel_diff=20)[0], ref_values)


def test_real_ct_slice_equals_pair(shared_data):
    """A real CT slice (more, smaller regions than the smooth toy images)."""
    from skimage.io import imread
    from skimage.transform import resize

    path = sorted((shared_data / "ct2d" / "images").glob("*.png"))[0]
    image = imread(path, as_gray=True).astype(np.float64)
    image = resize(image, (64, 64), anti_aliasing=True)
    X = torch.tensor(image)[None, None]
    module = _cnn(1, 64, 64)
    base = get_explainer("gradient_x_input").explain(module, X, 0)
    values = XRAI().explain(module, X, 0, base_attribution=base)
    ref_values, _, ref_masks = _pair(X[0], base[0])
    assert len(ref_masks) > 20
    np.testing.assert_allclose(values[0, 0].numpy(), ref_values, rtol=1e-10, atol=1e-14)


@pytest.mark.slow
def test_all_ct_slices_at_128_equal_pair(shared_data):
    """Every CT slice at 128 x 128, XRAI's default IG base, in one batch."""
    from skimage.io import imread
    from skimage.transform import resize

    paths = sorted((shared_data / "ct2d" / "images").glob("*.png"))
    X = torch.tensor(np.array([
        resize(imread(p, as_gray=True).astype(np.float64), (128, 128), anti_aliasing=True)
        for p in paths]))[:, None]
    module = _cnn(1, 128, 128)
    target = torch.arange(len(paths)) % 3
    regions, values = XRAI().explain_regions(module, X, target, return_attributions=True)
    base = _default_base_attribution(module, X, target)
    for i in range(len(paths)):
        ref_values, _, ref_masks = _pair(X[i], base[i])
        np.testing.assert_allclose(values[i, 0].numpy(), ref_values, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(regions[i].numpy(), ref_masks)


# ---------------------------------------------------------------- axioms
def test_map_keeps_the_total_and_regions_partition(gray_case):
    """Each region holds its mean attribution, so the map sums to the total."""
    X, module, target, values, regions = gray_case
    base = _default_base_attribution(module, X, target)
    torch.testing.assert_close(values[:, 0].sum((1, 2)), base[:, 0].sum((1, 2)),
                               rtol=1e-10, atol=1e-12)
    for i, masks in enumerate(regions):
        assert bool(masks.sum(0).eq(1).all())  # disjoint and covering
        gains = torch.stack([values[i, 0][m].mean() for m in masks])
        for m, g in zip(masks, gains):  # one value per region
            torch.testing.assert_close(values[i, 0][m], g.expand(int(m.sum())))
        covered = gains if masks[-1].sum() >= 50 else gains[:-1]
        assert bool((covered[:-1] >= covered[1:]).all())  # ranked by gain


def test_min_max_baselines_on_a_linear_model():
    """IG is exact on a linear model: the default base is w * (x - (min + max) / 2)."""
    X = _smooth_images(2, 1, 24, 24, seed=3)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24 * 24, 2)).double()
    w = module[1].weight[1].detach().view(1, 1, 24, 24)
    mid = (X.amax((1, 2, 3)) + X.amin((1, 2, 3))).view(-1, 1, 1, 1) / 2
    expected = w * (X - mid)
    fast = dict(segment_shape=None)
    got = XRAI(n_steps=4, **fast).explain(module, X, 1)
    ref = XRAI(**fast).explain(module, X, 1, base_attribution=expected)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)
    plain = XRAI(baselines=None, **fast).explain(module, X, 1)  # IG from 0
    assert not torch.allclose(plain, got)
    # an explainer object keeps its own baselines under "auto"
    ig = get_explainer("ig").set_params(n_steps=4)
    torch.testing.assert_close(XRAI(explainer=ig, **fast).explain(module, X, 1), plain)
    torch.testing.assert_close(
        XRAI(explainer=ig, baselines="min_max", **fast).explain(module, X, 1), got)


# ------------------------------------------------- batching, determinism
def test_batch_equals_one_by_one_and_is_deterministic():
    X = _smooth_images(4, 2, 28, 30, seed=7)
    module = _cnn(2, 28, 30)
    target = torch.tensor([2, 0, 1, 2])
    xrai = XRAI(explainer="gradient", segment_shape=None, batch_size=3)
    batch = xrai.explain(module, X, target)
    single = torch.cat([xrai.explain(module, X[i:i + 1], target[i:i + 1])
                        for i in range(4)])
    torch.testing.assert_close(batch, single, rtol=0, atol=0)
    torch.testing.assert_close(xrai.explain(module, X, target), batch, rtol=0, atol=0)


@pytest.mark.slow  # starting worker processes costs seconds
def test_segmentation_workers_give_the_same_result():
    X = _smooth_images(3, 1, 28, 30, seed=8)
    module = _cnn(1, 28, 30)
    xrai = XRAI(explainer="gradient", segment_shape=None)
    torch.testing.assert_close(xrai.set_params(n_jobs=2).explain(module, X, 1),
                               xrai.set_params(n_jobs=None).explain(module, X, 1),
                               rtol=0, atol=0)


def test_default_base_is_integrated_gradients():
    base = XRAI()._base_explainer()
    assert type(base) is type(get_explainer("ig"))
    assert XRAI(n_steps=7)._base_explainer().n_steps == 7
    assert get_explainer("xrai").get_params() == XRAI().get_params()


# ------------------------------------------------------------- refusals
@pytest.mark.parametrize("shape", [(2, 1, 30), (2, 1, 6, 6, 6)])
def test_refuses_1d_and_3d_inputs(shape):
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    with pytest.raises(ValueError, match="2D inputs of shape"):
        XRAI().explain(module, torch.rand(shape), 0)


def test_not_differentiable():
    assert XRAI.differentiable is False
    module = _cnn(1, 8, 8).float()
    with pytest.raises(ValueError, match="not differentiable"):
        XRAI().explain(module, torch.rand(1, 1, 8, 8), 0, create_graph=True)
    with pytest.raises(ValueError, match="dict"):
        XRAI().explain(module, {"a": torch.rand(1, 1, 8, 8)}, 0)


@pytest.mark.parametrize("params, name", [
    ({"min_pixel_diff": 0}, "min_pixel_diff"),
    ({"area_threshold": 1.5}, "area_threshold"),
    ({"baselines": "black"}, "baselines"),
    ({"n_steps": 0}, "n_steps"),
    ({"scales": ()}, "scales"),
    ({"scales": (50, -1)}, "scales"),
    ({"scales": ("a", 1)}, "scales"),
    ({"segment_shape": (224,)}, "segment_shape"),
    ({"dilation_radius": -1}, "dilation_radius"),
    ({"explainer": "nope"}, "explainer"),
    ({"explainer": "gradient", "n_steps": 10}, "n_steps"),
    ({"explainer": "gradient", "baselines": "min_max"}, "baselines"),
])
def test_bad_parameters(params, name, monkeypatch):
    calls = []
    monkeypatch.setattr(XRAI, "_segment", lambda self, X: calls.append(X))
    monkeypatch.setattr(XRAI, "_base_attribution", lambda self, *a: calls.append(a))
    module = _cnn(1, 8, 8).float()
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        XRAI(**params).explain(module, torch.rand(1, 1, 8, 8), 0)
    assert not calls  # refused before any work


def test_bad_base_attribution_shape():
    module = _cnn(1, 8, 8).float()
    with pytest.raises(ValueError, match="'base_attribution' parameter"):
        XRAI().explain(module, torch.rand(2, 1, 8, 8), 0,
                       base_attribution=torch.rand(2, 1, 8, 7))


# ------------------------------------------------------------ estimator
def test_estimator_explains_with_xrai_and_refuses_it_for_training():
    from sklearn_relevance import RelevanceNetClassifier

    rng = np.random.default_rng(0)
    X = rng.random((16, 1, 16, 16)).astype(np.float32)
    y = (X[:, 0, :8].mean((1, 2)) > X[:, 0, 8:].mean((1, 2))).astype(int)
    est = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    xrai = XRAI(explainer="gradient", segment_shape=None)
    rel = est.explain(X[:3], explainer=xrai)
    assert rel.shape == (3, 1, 16, 16)
    base = est.explain(X[:3], explainer="gradient")
    np.testing.assert_allclose(rel.sum((1, 2, 3)), base.sum((1, 2, 3)), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="differentiable"):
        RelevanceNetClassifier(relevance_explainer="xrai", relevance_penalty=1.0,
                               max_epochs=1).fit(X, y)
