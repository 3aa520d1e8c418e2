"""Synthetic lesion images and the loaders of medical images."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score

from sklearn_relevance.datasets import (
    load_atlas,
    load_ct_organs,
    load_medmnist_npz,
    load_mri_volume,
    make_lesion_images,
)


# --------------------------------------------------------------------------
# make_lesion_images
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(32, 32), (16, 20, 24)])
def test_lesion_images_shapes_and_masks(shape):
    X, y, masks = make_lesion_images(40, shape=shape, random_state=0)
    assert X.shape == (40, 1, *shape) and X.dtype == np.float32
    assert y.shape == (40,) and y.dtype == np.int64 and y.sum() == 20
    assert masks.shape == X.shape and masks.dtype == bool
    per_sample = masks.reshape(40, -1).sum(1)
    assert (per_sample[y == 0] == 0).all()
    assert (per_sample[y == 1] > 0).all()
    # the lesion stays inside the image: no mask pixel on the border
    border = np.ones(shape, bool)
    border[tuple(slice(1, -1) for _ in shape)] = False
    assert not masks[:, 0][:, border].any()


def test_lesion_pixels_are_bright_and_mask_is_the_disk():
    X, _, masks = make_lesion_images(200, noise=0.0, background=0.0, random_state=1)
    # without noise and background, a lesion pixel is (up to anti-aliasing) at
    # the contrast, and everything outside lesions and rings is exactly zero
    assert X[masks].min() >= 0.5
    assert X[masks].mean() > 0.9
    X0, y0, _ = make_lesion_images(200, noise=0.0, background=0.0, n_distractors=0,
                                   random_state=1)
    assert np.array_equal(X0[y0 == 0], np.zeros_like(X0[y0 == 0]))


def test_lesion_task_is_not_trivial_but_learnable_signal_exists():
    X, y, _ = make_lesion_images(600, random_state=0)
    # brightness alone does not give the class away (rings and background)
    assert 0.5 < roc_auc_score(y, X.sum(axis=(1, 2, 3))) < 0.8
    acc = cross_val_score(LogisticRegression(max_iter=300), X.reshape(600, -1), y, cv=3)
    assert acc.mean() < 0.9


def test_lesion_images_deterministic(monkeypatch):
    a = make_lesion_images(20, random_state=3)
    b = make_lesion_images(20, random_state=3)
    c = make_lesion_images(20, random_state=4)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    # chunking (a memory bound) never changes an image
    import sklearn_relevance.datasets._synthetic as ds

    monkeypatch.setattr(ds, "_CHUNK_ELEMENTS", 3 * 32 * 32 * 3)  # 3 images a chunk
    for u, v in zip(a, make_lesion_images(20, random_state=3)):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"shape": (4, 4)}, "shape"),
        ({"shape": (32,)}, "shape"),
        ({"lesion_radius": (5, 2)}, "lesion_radius"),
        ({"noise": -1.0}, "noise"),
        ({"class_ratio": 1.5}, "class_ratio"),
        ({"n_distractors": 1.5}, "n_distractors"),
    ],
)
def test_lesion_images_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_lesion_images(**{"n_samples": 10, **kwargs})


# --------------------------------------------------------------------------
# MedMNIST
# --------------------------------------------------------------------------
@pytest.fixture
def tiny_medmnist(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        data[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        data[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, **data)
    return path, data


def test_load_medmnist_splits(tiny_medmnist):
    path, data = tiny_medmnist
    X, y = load_medmnist_npz(path, split="val")
    assert X.shape == (2, 1, 28, 28) and X.dtype == np.float32
    np.testing.assert_allclose(X[:, 0], data["val_images"] / 255.0, rtol=1e-6)
    assert y.tolist() == data["val_labels"][:, 0].tolist()
    X_all, _ = load_medmnist_npz(path, split="all", normalize=False)
    assert X_all.shape[0] == 10 and X_all.max() > 1
    np.testing.assert_array_equal(X_all[5:7, 0], data["val_images"])
    X_two, _ = load_medmnist_npz(path, split=["test", "train"])
    np.testing.assert_array_equal(X_two[:3], load_medmnist_npz(path, "test")[0])


def test_load_medmnist_bad_input(tiny_medmnist, tmp_path):
    path, _ = tiny_medmnist
    with pytest.raises(ValueError, match="split"):
        load_medmnist_npz(path, split="validation")
    other = tmp_path / "other.npz"
    np.savez(other, images=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="train_images"):
        load_medmnist_npz(other)
    with pytest.raises(FileNotFoundError, match="path"):
        load_medmnist_npz(tmp_path / "missing.npz")


def test_load_medmnist_real(shared_data):
    X, y = load_medmnist_npz(shared_data / "medmnist" / "breastmnist.npz", split="test")
    assert X.shape == (156, 1, 28, 28) and set(np.unique(y)) == {0, 1}
    assert 0.0 <= X.min() and X.max() <= 1.0
    X3, y3 = load_medmnist_npz(shared_data / "medmnist" / "adrenalmnist3d.npz", "val")
    assert X3.shape == (98, 1, 28, 28, 28) and y3.shape == (98,)


# --------------------------------------------------------------------------
# CT organs
# --------------------------------------------------------------------------
def _png(path, array):
    from PIL import Image

    Image.fromarray(array.astype(np.uint8)).save(path)


def test_load_ct_organs_synthetic(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    img = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    _png(tmp_path / "images" / "a_1.png", img)
    _png(tmp_path / "images" / "b_2.png", 255 - img)
    _png(tmp_path / "images" / "c_3.png", img)  # no mask: dropped
    liver = np.zeros((8, 8), np.uint8)
    liver[2:4, 2:5] = 255
    hip0, hip1 = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    hip0[0, :] = 255
    hip1[-1, :] = 255
    _png(tmp_path / "masks" / "a_1_liver_000.png", liver)
    _png(tmp_path / "masks" / "a_1_hip_left_000.png", hip0)
    _png(tmp_path / "masks" / "a_1_hip_left_001.png", hip1)
    _png(tmp_path / "masks" / "b_2_liver_000.png", liver.T)
    ct = load_ct_organs(tmp_path, size=None)
    assert ct.image_names == ["a_1", "b_2"]
    assert ct.organ_names == ["hip_left", "liver"]
    np.testing.assert_allclose(ct.images[0, 0], img / 255.0, rtol=1e-6)
    # two hip masks merged; b_2 has no hip mask
    np.testing.assert_array_equal(ct.masks[0, 0], (hip0 | hip1) > 0)
    np.testing.assert_array_equal(ct.masks[1, 1], liver.T > 0)
    assert ct.has_mask.tolist() == [[True, True], [False, True]]
    assert not ct.masks[1, 0].any()
    ct4 = load_ct_organs(tmp_path, size=(4, 4), organs=["liver"])
    assert ct4.images.shape == (2, 1, 4, 4) and ct4.masks.shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="organs"):
        load_ct_organs(tmp_path, organs=["spleen"])
    with pytest.raises(ValueError, match="size"):
        load_ct_organs(tmp_path, size=(4,))


def test_load_ct_organs_real(shared_data):
    ct = load_ct_organs(shared_data / "ct2d", size=(64, 64))
    assert ct.images.shape == (4, 1, 64, 64)
    assert ct.masks.shape == (4, len(ct.organ_names), 64, 64)
    assert "liver" in ct.organ_names and "aorta" in ct.organ_names
    # every mask that exists is non-empty; missing ones are empty
    present = ct.masks.reshape(4, len(ct.organ_names), -1).any(-1)
    np.testing.assert_array_equal(present, ct.has_mask)
    with pytest.raises(ValueError, match="different sizes"):
        load_ct_organs(shared_data / "ct2d", size=None)


# --------------------------------------------------------------------------
# MRI volumes and atlas
# --------------------------------------------------------------------------
def test_load_mri_volume(tmp_path):
    image = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    mask = (image % 7 == 0).astype(np.uint8)
    np.savez(tmp_path / "v.npz", image=image, mask=mask, spacing=np.array([1.0, 1.0, 2.5]))
    vol = load_mri_volume(tmp_path / "v.npz")
    assert vol.image.shape == (1, 3, 4, 5)
    np.testing.assert_allclose(vol.image[0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(vol.image[0].std(), 1, atol=1e-5)
    np.testing.assert_array_equal(vol.mask[0], mask > 0)
    raw = load_mri_volume(tmp_path / "v.npz", normalize=False)
    np.testing.assert_array_equal(raw.image[0], image)
    np.savez(tmp_path / "bad.npz", image=image, mask=mask[:2])
    with pytest.raises(ValueError, match="same shape"):
        load_mri_volume(tmp_path / "bad.npz")


def test_load_mri_volume_real(shared_data):
    vol = load_mri_volume(shared_data / "mri3d" / "brain1.npz")
    assert vol.image.shape == (1, 256, 256, 25) and vol.mask.sum() == 4137


def test_load_atlas_real(shared_data):
    aal = load_atlas(shared_data / "atlas")
    assert aal.labels.shape == aal.template.shape == (91, 109, 91)
    assert len(aal.region_ids) == len(aal.region_names) == 116
    names = dict(zip(aal.region_ids.tolist(), aal.region_names))
    assert names[41] == "L_Hippocampus"
    # background is excluded and the brain template is zero outside the brain
    assert 0 not in aal.region_ids
    assert (aal.template[aal.labels > 0] > 0).mean() > 0.95


def test_load_atlas_grid_mismatch(tmp_path):
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / "t.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 5), np.int16), np.eye(4)), tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match="not on the grid"):
        load_atlas(tmp_path, template="t.nii.gz", atlas="a.nii.gz", names=None)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4)), tmp_path / "a.nii.gz")
    aal = load_atlas(tmp_path, template="t.nii.gz", atlas="a.nii.gz", names=None)
    assert aal.region_names == ["region_1"]


def test_load_atlas_without_nibabel(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(ImportError, match="nifti"):
        load_atlas(tmp_path)
