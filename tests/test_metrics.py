"""Localisation, complexity, agreement and region metrics against references.

References: scikit-learn's roc_auc_score, quantus 0.6's metrics on the same
inputs, literal re-implementations of Webber et al.'s RBO and of per-label
region loops.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics.pairwise import cosine_similarity

from sklearn_relevance.metrics import (
    fingerprint_similarity,
    importance_ranking,
    importance_rmse,
    mask_dice,
    mask_roc_auc,
    pointing_game,
    rank_biased_overlap,
    region_relevance,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    sparseness,
)

quantus = pytest.importorskip("quantus")


@pytest.fixture
def maps(rng):
    n = 12
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    a = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    s = (rng.random((n, 1, 8, 8)) < 0.3).astype(np.float32)
    s[:, 0, 0, 0] = 1  # never empty
    s[:, 0, 0, 1] = 0  # never full
    return x, a, s


def _quantus(metric_cls, x, a, s=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = metric_cls(disable_warnings=True)
        out = metric(model=None, x_batch=x, y_batch=np.zeros(len(x), int),
                     a_batch=a.copy(), s_batch=s)
    return np.asarray(out, dtype=np.float64)


# ---------------------------------------------------------------- mask ROC-AUC
@pytest.mark.parametrize("levels", [None, 4, 1])
def test_mask_roc_auc_equals_sklearn_per_sample_with_ties(rng, levels):
    a = rng.normal(size=(20, 10, 10))
    if levels is not None:  # heavy ties; levels=1 is a constant map
        a = np.floor(rng.random((20, 10, 10)) * levels)
    m = rng.random((20, 10, 10)) < 0.2
    m[:, 0, 0], m[:, 0, 1] = True, False
    ours = mask_roc_auc(a, m)
    ref = [roc_auc_score(mi.ravel(), ai.ravel()) for ai, mi in zip(a, m)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    # torch input, singleton channel axis on the relevance
    ours_t = mask_roc_auc(torch.as_tensor(a)[:, None], torch.as_tensor(m))
    np.testing.assert_allclose(ours_t, ref, atol=1e-12)


def test_mask_roc_auc_equals_quantus_auc(maps):
    x, a, s = maps
    np.testing.assert_allclose(mask_roc_auc(a, s), _quantus(quantus.AUC, x, a, s), atol=1e-12)


# ---------------------------------------------------------------- quantus parity
@pytest.mark.parametrize("ours, theirs, atol", [
    (pointing_game, "PointingGame", 0),
    (relevance_mass_accuracy, "RelevanceMassAccuracy", 1e-5),
    (relevance_rank_accuracy, "RelevanceRankAccuracy", 0),
])
def test_localisation_equals_quantus(maps, ours, theirs, atol):
    x, a, s = maps
    ref = _quantus(getattr(quantus, theirs), x, a, s)
    np.testing.assert_allclose(ours(a, s), ref, atol=atol)


def test_pointing_game_hits_and_misses(rng):
    a = rng.random((30, 16))
    m = np.zeros((30, 16), bool)
    top = a.argmax(1)
    m[np.arange(30), top] = True
    first = np.arange(15)
    m[first, top[:15]] = False
    m[first, (top[:15] + 1) % 16] = True
    np.testing.assert_array_equal(pointing_game(a, m), np.r_[np.zeros(15), np.ones(15)])


def test_sparseness_equals_quantus(maps):
    x, a, _ = maps
    np.testing.assert_allclose(sparseness(a), _quantus(quantus.Sparseness, x, a), atol=1e-6)
    # Gini axioms: one-hot -> 1 - 1/F, constant -> 0
    onehot = np.zeros((1, 50))
    onehot[0, 3] = -2.0
    np.testing.assert_allclose(sparseness(onehot), [1 - 1 / 50])
    np.testing.assert_allclose(sparseness(np.full((1, 50), 0.3)), [0.0], atol=1e-12)


def test_mask_dice_literal(rng):
    a = rng.normal(size=(10, 40))
    m = rng.random((10, 40)) < 0.25
    m[:, 0] = True
    for frac in (None, 0.1, 0.5):
        out = mask_dice(a, m, fraction=frac)
        for i in range(10):
            k = m[i].sum() if frac is None else int(np.ceil(frac * 40))
            sel = np.zeros(40, bool)
            sel[np.argsort(-a[i])[:k]] = True
            ref = 2 * (sel & m[i]).sum() / (sel.sum() + m[i].sum())
            assert out[i] == pytest.approx(ref)


def test_mask_dice_selects_whole_tied_regions():
    # an XRAI-like map: region 1 (4 pixels) above region 2 (4 pixels)
    a = np.array([[2, 2, 2, 2, 1, 1, 1, 1, 0, 0]], float)
    m = np.array([[1, 1, 1, 1, 1, 1, 0, 0, 0, 0]])
    # fraction 0.3 -> k = 3 falls inside region 1: all 4 of its pixels are selected
    assert mask_dice(a, m, fraction=0.3)[0] == pytest.approx(2 * 4 / (4 + 6))


# ---------------------------------------------------------------- bad input
def test_shape_mismatch_and_nan_raise(rng):
    a = rng.normal(size=(4, 8, 8))
    with pytest.raises(ValueError, match="same per-sample shape"):
        mask_roc_auc(a, np.ones((4, 8, 7)))
    with pytest.raises(ValueError, match="same number of samples"):
        pointing_game(a, np.ones((3, 8, 8)))
    bad = a.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="'relevance' parameter contains NaN"):
        sparseness(bad)
    with pytest.raises(ValueError, match="must be binary"):
        mask_dice(a, np.full((4, 8, 8), 0.5))
    with pytest.raises(ValueError, match="'fraction' parameter of mask_dice"):
        mask_dice(a, np.ones((4, 8, 8)), fraction=1.5)


@pytest.mark.parametrize("metric", [mask_roc_auc, mask_dice, pointing_game,
                                    relevance_mass_accuracy, relevance_rank_accuracy])
def test_empty_and_full_masks_give_nan_with_warning(rng, metric):
    a = rng.normal(size=(3, 16))
    m = rng.random((3, 16)) < 0.5
    m[1] = False
    m[2] = True
    m[0, :2] = [True, False]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = metric(a, m)
    messages = " ".join(str(w.message) for w in caught)
    assert "empty mask" in messages and "mask covers every feature" in messages
    assert np.isnan(out[1]) and np.isnan(out[2]) and np.isfinite(out[0])


@pytest.mark.parametrize("metric", [pointing_game, relevance_rank_accuracy, mask_dice])
def test_constant_relevance_is_nan_for_order_metrics(metric):
    m = np.zeros((2, 8))
    m[:, :3] = 1
    a = np.vstack([np.full(8, 0.2), np.arange(8.0)[::-1]])
    with pytest.warns(UserWarning, match="constant relevance"):
        out = metric(a, m)
    assert np.isnan(out[0]) and out[1] == 1.0


def test_zero_relevance_nan():
    with pytest.warns(UserWarning, match="zero everywhere"):
        assert np.isnan(sparseness(np.zeros((1, 5))))[0]
    with pytest.warns(UserWarning, match="total relevance is zero"):
        assert np.isnan(relevance_mass_accuracy(np.zeros((1, 4)), [[1, 0, 0, 0]]))[0]


# ---------------------------------------------------------------- RBO
def _rbo_literal(S, T, p, extrapolated):
    """Webber, Moffat & Zobel (2010), eqs. 11 and 32, with Python sets."""
    k = len(S)
    A = [len(set(S[:d]) & set(T[:d])) / d for d in range(1, k + 1)]
    rbo = (1 - p) * sum(p ** (d - 1) * A[d - 1] for d in range(1, k + 1))
    if extrapolated:  # eq. 32 with s = l = k: X_k/k * p^k + (1-p)/p * sum X_d/d p^d
        ext = A[-1] * p**k + (1 - p) / p * sum(A[d - 1] * p**d for d in range(1, k + 1))
        assert abs(ext - (rbo + A[-1] * p**k)) < 1e-12
        return ext
    return rbo


@pytest.mark.parametrize("extrapolated", [True, False])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.98])
def test_rbo_equals_literal_webber(rng, p, extrapolated):
    # top-10 lists drawn from 25 items: partial overlap, items missing from one list
    a = np.stack([rng.permutation(25)[:10] for _ in range(15)])
    b = np.stack([rng.permutation(25)[:10] for _ in range(15)])
    b[:3] = a[:3]
    ours = rank_biased_overlap(a, b, p=p, extrapolated=extrapolated)
    ref = [_rbo_literal(list(s), list(t), p, extrapolated) for s, t in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    if extrapolated:
        np.testing.assert_allclose(ours[:3], 1.0)
    assert rank_biased_overlap(a[3], b[3], p=p, extrapolated=extrapolated) == pytest.approx(
        ref[3])


def test_rbo_bad_input():
    with pytest.raises(ValueError, match="repeats an item"):
        rank_biased_overlap([0, 1, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="same shape"):
        rank_biased_overlap([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="'p' parameter of rank_biased_overlap"):
        rank_biased_overlap([0, 1], [0, 1], p=1.0)


def test_importance_ranking_and_rmse(rng):
    s = rng.normal(size=(5, 7))
    np.testing.assert_array_equal(importance_ranking(s), np.argsort(-s, axis=1, kind="stable"))
    np.testing.assert_array_equal(importance_ranking(s, absolute=True, top_k=3),
                                  np.argsort(-np.abs(s), axis=1, kind="stable")[:, :3])
    t = rng.normal(size=(5, 7))
    np.testing.assert_allclose(importance_rmse(s, t), np.sqrt(((s - t) ** 2).mean(1)))
    l1 = importance_rmse(s, t, normalize="l1")
    sn = s / np.abs(s).sum(1, keepdims=True)
    tn = t / np.abs(t).sum(1, keepdims=True)
    np.testing.assert_allclose(l1, np.sqrt(((sn - tn) ** 2).mean(1)))


# ---------------------------------------------------------------- regions
def _regions_literal(rel, atlas, labels, statistic, ref_maps=None):
    n = rel.shape[0]
    out = np.zeros((n, len(labels)))
    for i in range(n):
        at = atlas if atlas.ndim == rel.ndim - 1 else atlas[i]
        for j, lab in enumerate(labels):
            vox = rel[i][at == lab]
            out[i, j] = vox.sum() if statistic == "sum" else vox.mean()
    if statistic == "gain":
        ref = _regions_literal(ref_maps, atlas, labels, "density")
        out = out / ref.mean(0)
    return out


@pytest.mark.parametrize("statistic", ["sum", "density", "gain"])
def test_region_relevance_equals_literal_loop(rng, statistic):
    rel = rng.normal(size=(6, 5, 6, 7))
    atlas = rng.integers(0, 5, size=(5, 6, 7))
    ref_maps = rng.random((4, 5, 6, 7)) + 0.5
    labels = np.unique(atlas[atlas > 0])
    ours = region_relevance(rel, atlas, statistic=statistic, reference=ref_maps)
    np.testing.assert_allclose(
        ours, _regions_literal(rel, atlas, labels, statistic, ref_maps), rtol=1e-10)


def test_region_relevance_per_sample_atlas_and_labels(rng):
    rel = rng.normal(size=(4, 30))
    atlas = rng.integers(0, 6, size=(4, 30))
    atlas[:, :5] = np.arange(1, 6)  # every label present in every sample
    labels = [5, 2, 3]
    ours = region_relevance(rel, atlas, statistic="density", labels=labels)
    np.testing.assert_allclose(ours, _regions_literal(rel, atlas, labels, "density"))
    with pytest.raises(ValueError, match="must not contain 0"):
        region_relevance(rel, atlas, labels=[0, 1])
    with pytest.raises(ValueError, match="'reference' parameter of region_relevance"):
        region_relevance(rel, atlas, statistic="gain")
    with pytest.raises(ValueError, match="'atlas' parameter must have one sample's shape"):
        region_relevance(rel, atlas[:, :20])


def test_fingerprint_similarity_equals_sklearn_cosine(rng):
    a, b = rng.normal(size=(5, 9)), rng.normal(size=(3, 9))
    np.testing.assert_allclose(fingerprint_similarity(a, b), cosine_similarity(a, b))
    np.testing.assert_allclose(fingerprint_similarity(a), cosine_similarity(a))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_follow_the_device(maps):
    from torch import nn

    from sklearn_relevance.metrics import perturbation_curve

    x, a, s = maps
    for metric in (mask_roc_auc, pointing_game, relevance_rank_accuracy, mask_dice):
        np.testing.assert_allclose(metric(torch.as_tensor(a).cuda(), torch.as_tensor(s).cuda()),
                                   metric(a, s), atol=1e-6)
    np.testing.assert_allclose(sparseness(torch.as_tensor(a).cuda()), sparseness(a), atol=1e-6)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    cpu = perturbation_curve(net, x, a, steps=8, target=0)[1]
    gpu = perturbation_curve(net.cuda(), x, a, steps=8, target=0)[1]
    np.testing.assert_allclose(gpu, cpu, atol=1e-5)


def test_localisation_on_real_ct_masks(shared_data):
    """Real CT slices and expert organ masks: image intensity as the 'relevance'."""
    datasets = pytest.importorskip("sklearn_relevance.datasets")
    pytest.importorskip("skimage")
    data = datasets.load_ct_organs(shared_data / "ct2d", size=(64, 64))
    img, masks, has = data.images, data.masks, data.has_mask
    slice_idx, organ_idx = np.nonzero(has)
    rel = np.round(img[slice_idx, 0] * 32)  # quantised: many ties
    m = masks[slice_idx, organ_idx]
    keep = m.reshape(len(m), -1).any(1) & ~m.reshape(len(m), -1).all(1)
    rel, m = rel[keep], m[keep]
    ref = [roc_auc_score(mi.ravel(), ri.ravel()) for ri, mi in zip(rel, m)]
    np.testing.assert_allclose(mask_roc_auc(rel, m), ref, atol=1e-12)
    x = img[slice_idx][keep]
    # break the ties below the quantisation step so the top-K is unambiguous
    distinct = rel + 0.5 * np.arange(rel[0].size).reshape(rel.shape[1:]) / rel[0].size
    q = _quantus(quantus.RelevanceRankAccuracy, x, distinct[:, None],
                 m[:, None].astype(np.float32))
    np.testing.assert_allclose(relevance_rank_accuracy(distinct, m), q, atol=1e-12)
