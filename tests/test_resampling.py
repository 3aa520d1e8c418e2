"""Resampling onto the network's grid and back: references, properties, Pipeline."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from sklearn_relevance.resampling import ResampleToGrid, resample_to_grid


def _oblique_affine(spacing=(1.7, 2.1, 1.3), origin=(3.0, -4.0, 2.0)):
    a = np.deg2rad(17)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def _world(affine, shape):
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:]).reshape(3, *shape)


def test_identity_when_grids_match_is_exact_and_a_copy(rng):
    X = rng.normal(size=(2, 1, 5, 6, 7))
    aff = _oblique_affine()
    out = resample_to_grid(X, aff, aff.copy(), (5, 6, 7))
    np.testing.assert_array_equal(out, X)
    assert not np.shares_memory(out, X)
    step = ResampleToGrid((5, 6, 7), target_affine=aff, source_affine=aff).fit(X)
    np.testing.assert_array_equal(step.transform(X), X)
    np.testing.assert_array_equal(step.inverse_transform(X), X)


def test_linear_reproduces_a_linear_field_on_an_oblique_grid():
    """Trilinear interpolation is exact on linear functions of world position."""
    src_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    src_shape = (12, 12, 12)
    coef = np.array([0.3, -1.2, 0.7])
    field = np.tensordot(coef, _world(src_aff, src_shape), axes=1) + 5.0
    tgt_aff = _oblique_affine(origin=(6.0, 4.0, 5.0))
    tgt_shape = (6, 5, 7)
    out = resample_to_grid(field, src_aff, tgt_aff, tgt_shape)
    expected = np.tensordot(coef, _world(tgt_aff, tgt_shape), axes=1) + 5.0
    inside = np.all((np.linalg.solve(src_aff, np.vstack([
        _world(tgt_aff, tgt_shape).reshape(3, -1), np.ones((1, np.prod(tgt_shape)))]))[:3]
        <= 22.0 / 2) & (np.linalg.solve(src_aff, np.vstack([
            _world(tgt_aff, tgt_shape).reshape(3, -1),
            np.ones((1, np.prod(tgt_shape)))]))[:3] >= 0), axis=0).reshape(tgt_shape)
    assert inside.sum() > 50
    np.testing.assert_allclose(out[inside], expected[inside], rtol=0, atol=1e-10)


@pytest.mark.parametrize("interpolation,order", [("linear", 1), ("nearest", 0)])
def test_matches_nibabel_resample_from_to_inside_the_source(rng, interpolation, order):
    nib = pytest.importorskip("nibabel")
    from nibabel.processing import resample_from_to

    src_aff = _oblique_affine()
    data = rng.normal(size=(9, 8, 10)) if order else rng.integers(0, 9, size=(9, 8, 10))
    tgt_aff = np.diag([2.5, 2.5, 2.5, 1.0])
    tgt_aff[:3, 3] = [-5.0, 0.0, 1.0]
    tgt_shape = (8, 9, 6)
    ref = np.asarray(resample_from_to(nib.Nifti1Image(data.astype(np.float64), src_aff),
                                      (tgt_shape, tgt_aff), order=order, cval=-7).dataobj)
    out = resample_to_grid(data, src_aff, tgt_aff, tgt_shape, interpolation=interpolation,
                           fill_value=-7)
    coords = np.linalg.solve(src_aff, np.vstack([_world(tgt_aff, tgt_shape).reshape(3, -1),
                                                 np.ones((1, np.prod(tgt_shape)))]))[:3]
    inner = np.all((coords >= 0) & (coords <= np.array(data.shape)[:, None] - 1), axis=0)
    inner = inner.reshape(tgt_shape)
    assert inner.sum() > 20 and (~inner).sum() > 20
    np.testing.assert_allclose(out[inner], ref[inner], rtol=0, atol=1e-12)
    far = np.any((coords < -0.5) | (coords > np.array(data.shape)[:, None] - 0.5),
                 axis=0).reshape(tgt_shape)
    assert np.all(out[far] == -7)
    if order == 0:
        assert out.dtype == data.dtype
        assert set(np.unique(out)) <= set(np.unique(data)) | {-7}


def test_batch_and_channels_do_not_mix(rng):
    X = rng.normal(size=(3, 2, 6, 6, 6)).astype(np.float32)
    aff = _oblique_affine()
    out = resample_to_grid(X, np.eye(4), aff, (4, 4, 4))
    for i in range(3):
        for c in range(2):
            np.testing.assert_array_equal(out[i, c], resample_to_grid(X[i, c], np.eye(4), aff,
                                                                      (4, 4, 4)))
    assert out.dtype == np.float32


def test_nearest_round_trip_of_block_labels_is_exact(rng):
    coarse = rng.integers(0, 117, size=(4, 5, 3)).astype(np.int32)
    fine = np.repeat(np.repeat(np.repeat(coarse, 2, 0), 2, 1), 2, 2)
    step = ResampleToGrid((4, 5, 3), interpolation="nearest").fit(fine[None])
    np.testing.assert_array_equal(step.transform(fine[None])[0], coarse)
    np.testing.assert_array_equal(step.inverse_transform(coarse[None])[0], fine)
    assert step.transform(fine[None]).dtype == np.int32


def test_default_target_affine_keeps_the_field_of_view():
    step = ResampleToGrid((4, 4, 4), source_affine=np.diag([1.0, 1.0, 1.0, 1.0]))
    step.fit(np.zeros((1, 8, 8, 8)))
    # outer voxel edges coincide: -0.5 .. 7.5 in source voxels
    corner = step.target_affine_ @ [-0.5, -0.5, -0.5, 1]
    np.testing.assert_allclose(corner[:3], -0.5)
    far = step.target_affine_ @ [3.5, 3.5, 3.5, 1]
    np.testing.assert_allclose(far[:3], 7.5)


class Tiny(torch.nn.Module):
    """A linear network on the (1, 4, 4, 4) grid (picklable: module level)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 2)

    def forward(self, X):
        return self.lin(X.flatten(1))


def test_pipeline_with_network_and_relevance_back_on_the_source_grid(rng):
    from sklearn_relevance import RelevanceNetClassifier, explain

    X = rng.normal(size=(12, 1, 8, 8, 8)).astype(np.float32)
    y = np.arange(12) % 2
    aff = np.diag([1.5, 1.5, 1.5, 1.0])
    pipe = make_pipeline(ResampleToGrid((4, 4, 4), source_affine=aff),
                         RelevanceNetClassifier(Tiny, max_epochs=1, random_state=0))
    pipe.fit(X, y)
    R = explain(pipe, X[:3], explainer="gradient")
    assert R.shape == (3, 1, 4, 4, 4)
    back = pipe[0].inverse_transform(R)
    assert back.shape == (3, 1, 8, 8, 8)
    assert np.isfinite(back).all() and np.abs(back).sum() > 0
    clone(pipe)
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again[0].transform(X), pipe[0].transform(X))


def test_errors_name_the_parameter(rng):
    X = rng.normal(size=(2, 1, 4, 4, 4))
    with pytest.raises(ValueError, match="'interpolation' parameter of ResampleToGrid"):
        ResampleToGrid((2, 2, 2), interpolation="cubic").fit(X)
    with pytest.raises(ValueError, match="'target_affine' parameter of ResampleToGrid"):
        ResampleToGrid((2, 2, 2), target_affine=np.eye(3)).fit(X)
    with pytest.raises(ValueError, match="'target_shape' parameter of ResampleToGrid"):
        ResampleToGrid((2, -2, 2)).fit(X)
    step = ResampleToGrid((2, 2, 2)).fit(X)
    with pytest.raises(ValueError, match=r"grid shape \(4, 4, 4\)"):
        step.transform(rng.normal(size=(2, 1, 5, 4, 4)))
    with pytest.raises(ValueError, match=r"grid shape \(2, 2, 2\)"):
        step.inverse_transform(X)
    with pytest.raises(ValueError, match="NaN"):
        resample_to_grid(np.full((3, 3, 3), np.nan), np.eye(4), np.diag([2.0, 2, 2, 1]), (2, 2, 2))
    with pytest.raises(ValueError, match="'fill_value' parameter of resample_to_grid"):
        resample_to_grid(np.zeros((3, 3, 3)), np.eye(4), np.eye(4), (3, 3, 3),
                         fill_value=np.nan)
