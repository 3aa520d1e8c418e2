"""Orthogonal slices of relevance over its scan: labels, scales, orientation."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sklearn_relevance.plotting import plot_orthogonal_slices  # noqa: E402
from sklearn_relevance.volumes import Volume  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _hot(shape, voxel):
    m = np.zeros(shape)
    m[voxel] = 1.0
    return m


def _overlay(ax):
    return np.asarray(ax.images[1].get_array().filled(0))


def test_titles_labels_and_colourbars_for_a_grid_of_explainers(rng):
    scan = rng.normal(size=(10, 12, 8))
    signed = rng.normal(size=scan.shape)
    fig = plot_orthogonal_slices(scan, {"integrated_gradients": signed,
                                        "lrp": np.abs(signed)}, cut=(1, 2, 3))
    views = fig.axes[:6]
    assert [ax.get_title() for ax in views] == [
        "axial (z = 3)", "coronal (y = 2)", "sagittal (x = 1)"] * 2
    assert views[0].get_ylabel() == "integrated gradients" and views[3].get_ylabel() == "lrp"
    assert all(ax.get_xlabel() for ax in views)
    bars = fig.axes[6:]
    assert [b.get_ylabel() for b in bars] == [
        "integrated_gradients: relevance", "lrp: relevance (one-sided, >= 0)"]
    # signed: symmetric scale; non-negative: from 0
    lo, hi = views[0].images[1].get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(signed).max())
    assert views[3].images[1].get_clim() == (0.0, pytest.approx(np.abs(signed).max()))


def test_one_map_and_default_cut_at_the_largest_relevance(rng):
    scan = rng.normal(size=(9, 7, 5))
    R = _hot(scan.shape, (6, 2, 3)) * -5.0
    fig = plot_orthogonal_slices(scan[None, None], R[None, None], colorbar_label="IG")
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "axial (z = 3)", "coronal (y = 2)", "sagittal (x = 6)"]
    assert fig.axes[3].get_ylabel() == "IG"


@pytest.mark.parametrize("codes_affine,expected", [
    (np.diag([1.0, 1.0, 1.0, 1.0]), None),        # RAS
    (np.diag([-1.0, 1.0, 1.0, 1.0]), "flip_x"),   # LAS, as the MNI template
])
def test_views_are_drawn_in_world_orientation(codes_affine, expected):
    shape = (10, 12, 8)
    voxel = (7, 2, 3)
    fig = plot_orthogonal_slices(np.zeros(shape), _hot(shape, voxel), affine=codes_affine)
    axial, coronal, sagittal = (_overlay(ax) for ax in fig.axes[:3])
    x = voxel[0] if expected is None else shape[0] - 1 - voxel[0]
    # rows: the vertical world axis from the bottom (origin lower); columns: horizontal
    assert np.argwhere(axial).tolist() == [[voxel[1], x]]        # (y, x)
    assert np.argwhere(coronal).tolist() == [[voxel[2], x]]      # (z, x)
    assert np.argwhere(sagittal).tolist() == [[voxel[2], voxel[1]]]  # (z, y)


def test_permuted_voxel_axes_follow_the_affine():
    # voxel axes (i, j, k) point along world (y, z, x)
    affine = np.array([[0, 0, 2.0, 0], [1.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0, 1]])
    shape = (6, 5, 4)
    voxel = (1, 3, 2)  # world y = 1, z = 3, x = 2
    vol = Volume(np.zeros(shape), affine)
    fig = plot_orthogonal_slices(vol, _hot(shape, voxel))
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "axial (z = 3)", "coronal (y = 1)", "sagittal (x = 2)"]
    axial = _overlay(fig.axes[0])
    assert axial.shape == (6, 4) and np.argwhere(axial).tolist() == [[1, 2]]


def test_refusals(rng):
    scan = rng.normal(size=(4, 4, 4))
    with pytest.raises(ValueError, match="on the scan's grid"):
        plot_orthogonal_slices(scan, np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="'cut' parameter"):
        plot_orthogonal_slices(scan, scan, cut=(0, 0, 9))
    with pytest.raises(ValueError, match="3D volume"):
        plot_orthogonal_slices(scan[0], scan[0])
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_orthogonal_slices(scan, {})
