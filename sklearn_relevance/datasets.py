"""Synthetic images with ground-truth masks, and loaders for medical images.

* :func:`make_lesion_images`: 2D or 3D images where class 1 holds a lesion
  (a bright disk / ball) and both classes hold ring-shaped distractors, a
  smooth background and noise; the lesion masks are the ground truth of
  localisation metrics.
* :func:`make_decoy_images`: digits whose class is also written into a
  decoy patch in the training split (random in the test split), with the
  decoy masks, for training with annotations ("right for the right
  reasons").
* :func:`load_medmnist_npz`: the MedMNIST ``.npz`` files (2D and 3D).
* :func:`load_ct_organs`: CT slices with expert organ masks (PNG folders laid
  out as SAM-Med2D's ``data_demo``).
* :func:`load_mri_volume`: an MRI volume with its lesion mask (``.npz``).
* :func:`load_atlas`: a NIfTI template with a labelled atlas on the same grid
  (MNI152 + AAL), read with nibabel (optional extra ``nifti``).
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._batching import iter_slices
from ._optional import require
from ._validation import check_int, check_real

__all__ = [
    "make_lesion_images",
    "make_decoy_images",
    "load_medmnist_npz",
    "load_ct_organs",
    "load_mri_volume",
    "load_atlas",
    "make_multimodal_cases",
    "get_data_dir",
]

_SPLITS = ("train", "val", "test")
#: Float32 elements of one distance tensor in make_lesion_images (~32 MB).
_CHUNK_ELEMENTS = 8 * 2**20


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _check_path(path, name, owner, *, is_dir=False):
    path = Path(path)
    if not (path.is_dir() if is_dir else path.is_file()):
        kind = "directory" if is_dir else "file"
        raise FileNotFoundError(
            f"The '{name}' parameter of {owner} must be an existing {kind}. "
            f"Got {str(path)!r} instead."
        )
    return path


# --------------------------------------------------------------------------
# synthetic lesions
# --------------------------------------------------------------------------
def make_lesion_images(n_samples=200, *, shape=(32, 32), lesion_radius=None,
                       n_distractors=2, contrast=1.0, noise=0.2,
                       background=0.3, class_ratio=0.5, random_state=None):
    """Make 2D or 3D images where class 1 holds a lesion, with its mask.

    Every image holds a smooth random background ("tissue"), ``n_distractors``
    bright rings (shells in 3D) and Gaussian noise. Class-1 images also hold
    one bright, filled disk (ball in 3D): the lesion. Rings and disks have the
    same contrast and size range, so a classifier must look at the lesion's
    shape, not at brightness; the lesion mask (the disk) is the ground truth
    for localisation metrics (mask ROC-AUC, Dice, relevance mass).

    Parameters
    ----------
    n_samples : int, default=200
        Number of images.
    shape : tuple of int, default=(32, 32)
        Spatial shape, 2D ``(H, W)`` or 3D ``(D, H, W)``; each side >= 8.
    lesion_radius : (float, float) or None, default=None
        Range of lesion (and distractor) radii in pixels; ``None`` means
        ``(min(shape) / 8, min(shape) / 5)``.
    n_distractors : int, default=2
        Rings per image, in both classes.
    contrast : float, default=1.0
        Peak intensity of lesions and distractors above the background.
    noise : float, default=0.2
        Standard deviation of the additive Gaussian noise.
    background : float, default=0.3
        Amplitude of the smooth random background.
    class_ratio : float, default=0.5
        Fraction of class-1 images (rounded to a whole number).
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives the same images.

    Returns
    -------
    X : ndarray of shape ``(n_samples, 1, *shape)``, float32
    y : ndarray of shape (n_samples,), int64
        1 where the image holds a lesion.
    masks : ndarray of shape ``(n_samples, 1, *shape)``, bool
        The lesion; all False for class 0.

    Examples
    --------
    >>> from sklearn_relevance.datasets import make_lesion_images
    >>> X, y, masks = make_lesion_images(10, shape=(32, 32), random_state=0)
    >>> X.shape, y.shape, masks.shape
    ((10, 1, 32, 32), (10,), (10, 1, 32, 32))
    >>> bool(masks[y == 0].any()), bool(masks[y == 1].any(axis=(1, 2, 3)).all())
    (False, True)
    """
    owner = "make_lesion_images"
    n_samples = check_int(n_samples, "n_samples", owner)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        shape = ()
    if len(shape) not in (2, 3) or min(shape) < 8:
        raise ValueError(
            f"The 'shape' parameter of {owner} must be a 2D (H, W) or 3D (D, H, W) "
            f"tuple of ints >= 8. Got {shape!r} instead."
        )
    if lesion_radius is None:
        lesion_radius = (min(shape) / 8, min(shape) / 5)
    try:
        r_lo, r_hi = (float(r) for r in lesion_radius)
    except (TypeError, ValueError):
        r_lo, r_hi = -1.0, -1.0
    if not 0.5 <= r_lo <= r_hi < min(shape) / 2 - 1:
        raise ValueError(
            f"The 'lesion_radius' parameter of {owner} must be a (low, high) pair "
            f"with 0.5 <= low <= high < {min(shape) / 2 - 1}. Got {lesion_radius!r} "
            "instead."
        )
    n_distractors = check_int(n_distractors, "n_distractors", owner, low=0)
    contrast = check_real(contrast, "contrast", owner, low=0.0)
    noise = check_real(noise, "noise", owner, low=0.0)
    background = check_real(background, "background", owner, low=0.0)
    class_ratio = check_real(class_ratio, "class_ratio", owner, low=0.0, high=1.0)
    rs = check_random_state(random_state)

    ndim = len(shape)
    sizes = np.asarray(shape, dtype=np.float32)
    n_pos = round(class_ratio * n_samples)
    y = np.zeros(n_samples, dtype=np.int64)
    y[:n_pos] = 1
    y = y[rs.permutation(n_samples)]

    # all random draws up front, so chunking never changes the result
    n_objects = n_distractors + 1  # object 0 is the (possible) lesion
    radii = rs.uniform(r_lo, r_hi, size=(n_samples, n_objects)).astype(np.float32)
    margin = radii[..., None] + 1.0
    centres = margin + rs.uniform(size=(n_samples, n_objects, ndim)).astype(np.float32) * (
        sizes - 1 - 2 * margin
    )
    n_blobs = 3
    blob_centres = rs.uniform(size=(n_samples, n_blobs, ndim)).astype(np.float32) * sizes
    blob_amps = rs.uniform(-1.0, 1.0, size=(n_samples, n_blobs)).astype(np.float32)
    blob_width = np.float32(min(shape) / 3)
    noise_field = rs.normal(size=(n_samples, *shape)).astype(np.float32) * np.float32(noise)

    grid = np.stack(
        np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"), -1
    )  # (*shape, ndim)
    X = np.empty((n_samples, 1, *shape), dtype=np.float32)
    masks = np.zeros((n_samples, 1, *shape), dtype=bool)
    chunk = max(1, _CHUNK_ELEMENTS // (n_objects * math.prod(shape)))
    for sl in iter_slices(n_samples, chunk):
        c = centres[sl][(...,) + (None,) * ndim + (slice(None),)]  # (m, k, 1.., ndim)
        dist = np.sqrt(((grid - c) ** 2).sum(-1))  # (m, k, *shape)
        r = radii[sl][(...,) + (None,) * ndim]
        disk = np.clip(r - dist + 0.5, 0.0, 1.0)  # anti-aliased filled disk
        ring = np.clip(1.0 - np.abs(dist - r) / 1.0, 0.0, 1.0)  # 2-pixel-wide ring
        img = ring[:, 1:].sum(1)
        lesion = disk[:, 0] * y[sl][(...,) + (None,) * ndim]
        img = np.minimum(img + lesion, 1.0) * np.float32(contrast)
        bc = blob_centres[sl][(...,) + (None,) * ndim + (slice(None),)]
        blobs = np.exp(-((grid - bc) ** 2).sum(-1) / (2 * blob_width**2))
        amps = blob_amps[sl][(...,) + (None,) * ndim]
        img += np.float32(background) * (amps * blobs).sum(1)
        img += noise_field[sl]
        X[sl, 0] = img
        masks[sl, 0] = (dist[:, 0] <= r[:, 0]) & (y[sl][(...,) + (None,) * ndim] == 1)
    return X, y, masks


# --------------------------------------------------------------------------
# MedMNIST
# --------------------------------------------------------------------------
# --------------------------------------------------------------------------
# decoy digits
# --------------------------------------------------------------------------
def make_decoy_images(*, canvas=12, patch=2, test_size=0.5, decoy_contrast=1.0,
                      random_state=None):
    """Digits with a class-revealing decoy patch in training, random in test.

    scikit-learn's 8 x 8 digits (1,797 images, 10 classes, values scaled to
    [0, 1]) are placed at a random offset on a ``canvas`` x ``canvas`` black
    image, and a ``patch`` x ``patch`` decoy square is written into one of the
    four corners, chosen at random per image. In the training split the
    patch's grey value encodes the class (``decoy_contrast * (1 - y / 10)``,
    Ross et al.'s decoy MNIST), so the patch alone predicts the label; in the
    test split the value is random, so a network that learnt the decoy
    fails there. The decoy masks say where the patch is, and the relevance
    masks (their complement) where relevance is allowed: the arguments of
    ``fit(X, y, relevance_mask=...)``.

    Parameters
    ----------
    canvas : int, default=12
        Side of the images (at least 8, the digits' side).
    patch : int, default=2
        Side of the decoy square (at least 1, at most ``canvas // 2``).
    test_size : float, default=0.5
        Fraction of the images in the test split, in (0, 1).
    decoy_contrast : float, default=1.0
        Largest grey value of the decoy (the digits' strokes reach 1).
    random_state : int, RandomState instance or None, default=None
        Split, offsets, corners and test decoy values.

    Returns
    -------
    data : Bunch
        ``X_train``, ``X_test`` : float32 arrays of shape (n, 1, canvas, canvas),
        with the decoy; ``X_train_clean``, ``X_test_clean``: the same images
        without it; ``y_train``, ``y_test``: int labels 0-9;
        ``decoy_mask_train``, ``decoy_mask_test``: float32 (n, 1, canvas,
        canvas), 1 on the patch; ``relevance_mask_train``,
        ``relevance_mask_test``: ``1 - decoy_mask`` (relevance allowed
        everywhere but on the decoy).

    Examples
    --------
    >>> from sklearn_relevance.datasets import make_decoy_images
    >>> data = make_decoy_images(random_state=0)
    >>> data.X_train.shape, data.relevance_mask_train.shape
    ((899, 1, 12, 12), (899, 1, 12, 12))
    >>> float(data.decoy_mask_train[0].sum())
    4.0
    """
    owner = "make_decoy_images"
    canvas = check_int(canvas, "canvas", owner, low=8)
    patch = check_int(patch, "patch", owner, low=1)
    if patch > canvas // 2:
        raise ValueError(
            f"The 'patch' parameter of {owner} must be at most canvas // 2 "
            f"({canvas // 2}). Got {patch} instead."
        )
    test_size = check_real(test_size, "test_size", owner, low=0.0, high=1.0)
    if not 0.0 < test_size < 1.0:  # the open interval, worded as (0, 1)
        raise ValueError(
            f"The 'test_size' parameter of {owner} must be a float in (0, 1). "
            f"Got {test_size!r} instead."
        )
    decoy_contrast = check_real(decoy_contrast, "decoy_contrast", owner, low=0.0)
    from sklearn.datasets import load_digits

    rng = check_random_state(random_state)
    digits, y = load_digits(return_X_y=True)
    digits = (digits / 16.0).reshape(-1, 8, 8).astype(np.float32)
    n = len(y)
    order = rng.permutation(n)
    digits, y = digits[order], y[order].astype(np.int64)
    n_test = int(round(test_size * n))
    n_train = n - n_test
    if min(n_train, n_test) < 1:
        raise ValueError(
            f"The 'test_size' parameter of {owner} leaves an empty split. "
            f"Got {test_size!r} instead."
        )
    # digits at random offsets: one fancy index for all images
    off = rng.randint(0, canvas - 8 + 1, size=(n, 2))
    clean = np.zeros((n, canvas, canvas), np.float32)
    rows = off[:, 0, None, None] + np.arange(8)[None, :, None]
    cols = off[:, 1, None, None] + np.arange(8)[None, None, :]
    clean[np.arange(n)[:, None, None], rows, cols] = digits
    # decoy patch in a random corner
    corner = rng.randint(0, 4, size=n)
    r0 = np.where(corner // 2 == 0, 0, canvas - patch)
    c0 = np.where(corner % 2 == 0, 0, canvas - patch)
    decoy = np.zeros((n, canvas, canvas), np.float32)
    prow = r0[:, None, None] + np.arange(patch)[None, :, None]
    pcol = c0[:, None, None] + np.arange(patch)[None, None, :]
    decoy[np.arange(n)[:, None, None], prow, pcol] = 1.0
    value = decoy_contrast * (1.0 - y / 10.0)
    value[n_train:] = decoy_contrast * rng.uniform(0.1, 1.0, size=n_test)
    X = np.where(decoy > 0, value[:, None, None].astype(np.float32), clean)
    X, clean, decoy = X[:, None], clean[:, None], decoy[:, None]
    tr, te = slice(0, n_train), slice(n_train, n)
    return Bunch(
        X_train=X[tr], X_test=X[te], X_train_clean=clean[tr], X_test_clean=clean[te],
        y_train=y[tr], y_test=y[te],
        decoy_mask_train=decoy[tr], decoy_mask_test=decoy[te],
        relevance_mask_train=1.0 - decoy[tr], relevance_mask_test=1.0 - decoy[te],
    )


def load_medmnist_npz(path, split="train", *, normalize=True):
    """Load one split of a MedMNIST ``.npz`` file (2D or 3D).

    Parameters
    ----------
    path : str or Path
        A MedMNIST file with keys ``{split}_images`` and ``{split}_labels``
        (e.g. ``breastmnist.npz``, ``adrenalmnist3d.npz``).
    split : {"train", "val", "test", "all"} or list of them, default="train"
        Split(s) to load; several are concatenated in the given order.
    normalize : bool, default=True
        Scale uint8 intensities to [0, 1].

    Returns
    -------
    X : ndarray of shape (n, 1, H, W) or (n, 1, D, H, W), float32
        Images with a channel axis (RGB files give (n, 3, H, W)).
    y : ndarray of shape (n,), int64
        Labels (the first label column for multi-label files).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_relevance.datasets import load_medmnist_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
    >>> np.savez(path, train_images=np.zeros((4, 28, 28), np.uint8),
    ...          train_labels=np.array([[0], [1], [0], [1]], np.uint8))
    >>> X, y = load_medmnist_npz(path)
    >>> X.shape, y.tolist()
    ((4, 1, 28, 28), [0, 1, 0, 1])
    """
    owner = "load_medmnist_npz"
    splits = [split] if isinstance(split, str) else list(split)
    if splits == ["all"]:
        splits = list(_SPLITS)
    if not splits or any(s not in _SPLITS for s in splits):
        raise ValueError(
            f"The 'split' parameter of {owner} must be one of {list(_SPLITS) + ['all']} "
            f"or a list of them. Got {split!r} instead."
        )
    path = _check_path(path, "path", owner)
    with np.load(path) as data:
        missing = [f"{s}_{k}" for s in splits for k in ("images", "labels")
                   if f"{s}_{k}" not in data.files]
        if missing:
            raise ValueError(
                f"{str(path)!r} is not a MedMNIST file with the requested split(s): "
                f"keys {missing} are missing (it holds {sorted(data.files)})."
            )
        images = [data[f"{s}_images"] for s in splits]
        labels = [data[f"{s}_labels"] for s in splits]
    X = np.concatenate(images)
    y = np.concatenate([lab.reshape(len(lab), -1)[:, 0] for lab in labels]).astype(np.int64)
    rgb = X.ndim == 4 and X.shape[-1] == 3 and X.shape[1] == X.shape[2]
    X = np.moveaxis(X, -1, 1) if rgb else X[:, None]
    X = X.astype(np.float32)
    if normalize:
        X /= 255.0
    return np.ascontiguousarray(X), y


# --------------------------------------------------------------------------
# CT slices with organ masks
# --------------------------------------------------------------------------
def _read_png(path, size, *, binary):
    from PIL import Image

    img = Image.open(path).convert("L")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BOX)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr >= 0.5 if binary else arr


def load_ct_organs(directory, *, size=(128, 128), organs=None):
    """Load CT slices with expert organ masks (SAM-Med2D ``data_demo`` layout).

    The folder holds ``images/<slice>.png`` and ``masks/<slice>_<organ>_<k>.png``
    (binary, 0/255); several masks of one organ (``_000``, ``_001``) are merged.

    Parameters
    ----------
    directory : str or Path
        Folder with ``images/`` and ``masks/``.
    size : (int, int) or None, default=(128, 128)
        Resize every slice to ``(H, W)`` (box filter; masks thresholded at 0.5
        after box filtering). ``None`` keeps the sizes, which must then agree.
    organs : list of str or None, default=None
        Organs to keep, in this order; ``None`` keeps every organ found.

    Returns
    -------
    data : Bunch
        ``images`` (n, 1, H, W) float32 in [0, 1]; ``masks`` (n, n_organs, H, W)
        bool; ``has_mask`` (n, n_organs) bool (False where a slice has no mask
        for the organ); ``organ_names`` list of str; ``image_names`` list of str.
        Slices without any mask are dropped.

    Examples
    --------
    >>> from sklearn_relevance.datasets import load_ct_organs
    >>> ct = load_ct_organs("../shared/data/ct2d", size=(64, 64))  # doctest: +SKIP
    >>> ct.images.shape, ct.masks.shape[1] == len(ct.organ_names)  # doctest: +SKIP
    ((4, 1, 64, 64), True)
    """
    owner = "load_ct_organs"
    directory = _check_path(directory, "directory", owner, is_dir=True)
    if size is not None:
        try:
            size = tuple(int(s) for s in size)
        except TypeError:
            size = ()
        if len(size) != 2 or min(size) < 1:
            raise ValueError(
                f"The 'size' parameter of {owner} must be None or (H, W) of positive "
                f"ints. Got {size!r} instead."
            )
    image_files = sorted((directory / "images").glob("*.png"))
    mask_files = sorted((directory / "masks").glob("*.png"))
    if not image_files or not mask_files:
        raise ValueError(
            f"{str(directory)!r} must hold PNG files in 'images/' and 'masks/'. Got "
            f"{len(image_files)} images and {len(mask_files)} masks instead."
        )
    found = {}  # image stem -> {organ: [mask files]}
    for image in image_files:
        pattern = re.compile(re.escape(image.stem) + r"_(.+)_(\d+)$")
        for mask in mask_files:
            m = pattern.match(mask.stem)
            if m:
                found.setdefault(image.stem, {}).setdefault(m.group(1), []).append(mask)
    all_organs = sorted({o for d in found.values() for o in d})
    if organs is None:
        organs = all_organs
    else:
        organs = list(organs)
        unknown = sorted(set(organs) - set(all_organs))
        if unknown:
            raise ValueError(
                f"The 'organs' parameter of {owner} holds organs without masks: "
                f"{unknown}. Available: {all_organs}."
            )
    stems = [im.stem for im in image_files if im.stem in found
             and any(o in found[im.stem] for o in organs)]
    images, masks, has_mask = [], [], []
    for stem in stems:
        img = _read_png(directory / "images" / f"{stem}.png", size, binary=False)
        if images and img.shape != images[0].shape:
            raise ValueError(
                f"The CT slices have different sizes ({images[0].shape} and "
                f"{img.shape} for {stem!r}); pass size=(H, W) to resize them."
            )
        m = np.zeros((len(organs), *img.shape), dtype=bool)
        for j, organ in enumerate(organs):
            for f in found[stem].get(organ, []):
                m[j] |= _read_png(f, img.shape if size is None else size, binary=True)
        images.append(img)
        masks.append(m)
        has_mask.append([organ in found[stem] for organ in organs])
    return Bunch(
        images=np.stack(images)[:, None].astype(np.float32),
        masks=np.stack(masks),
        has_mask=np.asarray(has_mask, dtype=bool),
        organ_names=list(organs),
        image_names=stems,
    )


# --------------------------------------------------------------------------
# MRI volumes
# --------------------------------------------------------------------------
def load_mri_volume(path, *, normalize=True):
    """Load an MRI volume with its lesion mask from an ``.npz`` file.

    Parameters
    ----------
    path : str or Path
        File with ``image`` (3D), ``mask`` (same shape) and optionally
        ``spacing`` (mm per voxel) arrays, as in ``../shared/data/mri3d``.
    normalize : bool, default=True
        Scale intensities to zero mean and unit variance inside the volume.

    Returns
    -------
    data : Bunch
        ``image`` ``(1, *shape)`` float32 (a channel axis, ready for a 3D CNN),
        ``mask`` ``(1, *shape)`` bool, ``spacing`` (3,) float64 (ones when the file
        has none). Axes are kept as stored.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_relevance.datasets import load_mri_volume
    >>> path = os.path.join(tempfile.mkdtemp(), "vol.npz")
    >>> np.savez(path, image=np.arange(64, dtype=np.int16).reshape(4, 4, 4),
    ...          mask=np.ones((4, 4, 4), np.uint8))
    >>> vol = load_mri_volume(path)
    >>> vol.image.shape, vol.mask.dtype, vol.spacing.tolist()
    ((1, 4, 4, 4), dtype('bool'), [1.0, 1.0, 1.0])
    """
    owner = "load_mri_volume"
    path = _check_path(path, "path", owner)
    with np.load(path) as data:
        if "image" not in data.files or "mask" not in data.files:
            raise ValueError(
                f"{str(path)!r} must hold 'image' and 'mask' arrays. Got "
                f"{sorted(data.files)} instead."
            )
        image = data["image"].astype(np.float32)
        mask = data["mask"] != 0
        spacing = (np.asarray(data["spacing"], dtype=np.float64) if "spacing" in data.files
                   else np.ones(image.ndim))
    if image.ndim != 3 or mask.shape != image.shape:
        raise ValueError(
            f"{str(path)!r} must hold a 3D 'image' and a 'mask' of the same shape. "
            f"Got {image.shape} and {mask.shape} instead."
        )
    if normalize:
        image = (image - image.mean()) / max(float(image.std()), 1e-12)
    return Bunch(image=image[None], mask=mask[None], spacing=spacing)


# --------------------------------------------------------------------------
# atlas
# --------------------------------------------------------------------------
def _require_nibabel(owner):
    return require("nibabel", owner=f"{owner} (reading NIfTI files)", extra="nifti")


def load_atlas(directory, *, template="MNI152NLin6_res-2x2x2_T1w_descr-brain.nii.gz",
               atlas="AAL_space-MNI152NLin6_res-2x2x2.nii.gz", names="AAL.csv"):
    """Load a template image with a labelled atlas on the same grid (NIfTI).

    Needs nibabel (optional extra ``nifti``).

    Parameters
    ----------
    directory : str or Path
        Folder holding the three files (``../shared/data/atlas``).
    template : str, default="MNI152NLin6_res-2x2x2_T1w_descr-brain.nii.gz"
        Template image (skull-stripped MNI152, 2 mm).
    atlas : str, default="AAL_space-MNI152NLin6_res-2x2x2.nii.gz"
        Integer label image on the template's grid (0 = background).
    names : str or None, default="AAL.csv"
        CSV whose first two columns are label id and region name; ``None``
        names regions ``"region_<id>"``.

    Returns
    -------
    data : Bunch
        ``template`` float32 (X, Y, Z); ``labels`` int32 (X, Y, Z);
        ``region_ids`` int array of the labels present (0 excluded);
        ``region_names`` list of names aligned with ``region_ids``;
        ``affine`` (4, 4) voxel-to-world matrix.

    Raises
    ------
    ImportError
        When nibabel is not installed.
    ValueError
        When the template and the atlas grids differ.

    Examples
    --------
    >>> from sklearn_relevance.datasets import load_atlas
    >>> aal = load_atlas("../shared/data/atlas")  # doctest: +SKIP
    >>> aal.labels.shape, len(aal.region_names)  # doctest: +SKIP
    ((91, 109, 91), 116)
    """
    owner = "load_atlas"
    nib = _require_nibabel(owner)
    directory = _check_path(directory, "directory", owner, is_dir=True)
    t_img = nib.load(_check_path(directory / template, "template", owner))
    a_img = nib.load(_check_path(directory / atlas, "atlas", owner))
    if t_img.shape != a_img.shape or not np.allclose(t_img.affine, a_img.affine):
        raise ValueError(
            f"The atlas {atlas!r} (shape {a_img.shape}) is not on the grid of the "
            f"template {template!r} (shape {t_img.shape}); resample one onto the other."
        )
    labels = np.rint(np.asarray(a_img.dataobj)).astype(np.int32)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    table = {}
    if names is not None:
        with open(_check_path(directory / names, "names", owner), newline="") as fh:
            for row in csv.reader(fh):
                if len(row) >= 2 and row[0].strip().lstrip("-").isdigit():
                    table[int(row[0])] = row[1].strip()
    return Bunch(
        template=np.asarray(t_img.dataobj, dtype=np.float32),
        labels=labels,
        region_ids=ids,
        region_names=[table.get(int(i), f"region_{int(i)}") for i in ids],
        affine=np.asarray(a_img.affine, dtype=np.float64),
    )

# --------------------------------------------------------------------------
# where the shared data lie
# --------------------------------------------------------------------------
def get_data_dir(data_dir=None):
    """The folder of the shared real data (MedMNIST, CT, MRI, atlas), or None.

    The one resolver of the package: ``data_dir`` when given, else
    ``$SKLEARN_RELEVANCE_DATA`` when set, else the first ``../shared/data``
    folder that exists beside the working folder or beside the project
    folder holding the package.

    Parameters
    ----------
    data_dir : str, path-like or None, default=None
        An explicit folder (returned as a Path, whether it exists or not).

    Returns
    -------
    pathlib.Path or None
        None when no folder was given, set or found.

    Examples
    --------
    >>> from sklearn_relevance.datasets import get_data_dir
    >>> str(get_data_dir("/data/shared"))
    '/data/shared'
    """
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("SKLEARN_RELEVANCE_DATA")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


# --------------------------------------------------------------------------
# multimodal cases: eight cases with known decision functions (the
# validation platform of sklearn_relevance.multimodal)
# --------------------------------------------------------------------------
#: The modalities of the cases, in the order of their ground truth.
MODALITIES = ("ct", "clinical", "lab")

#: case -> (description, {modality: (term, weight)}); weights are the ground truth.
CASES = {
    1: ("CT only, linear", {"ct": ("brightness", 1.0)}),
    2: ("clinical only, linear", {"clinical": ("linear", 1.0)}),
    3: ("CT + clinical, linear", {"ct": ("brightness", 0.5), "clinical": ("linear", 0.5)}),
    4: ("clinical + lab, linear", {"clinical": ("linear", 0.7), "lab": ("linear", 0.3)}),
    5: ("all modalities, equal", {"ct": ("brightness", 1 / 3), "clinical": ("linear", 1 / 3),
                                  "lab": ("linear", 1 / 3)}),
    6: ("all modalities, unequal", {"ct": ("brightness", 0.5), "clinical": ("linear", 0.3),
                                    "lab": ("linear", 0.2)}),
    7: ("CT + clinical, non-linear", {"ct": ("interaction", 0.6),
                                      "clinical": ("interaction", 0.4)}),
    8: ("all modalities, non-linear", {"ct": ("contrast", 0.2), "clinical": ("interaction", 0.3),
                                       "lab": ("square", 0.5)}),
}

_N_TABULAR = {"clinical": 5, "lab": 4}
_LINEAR_WEIGHTS = {"clinical": np.array([1.0, -0.8, 0.6, 0.0, 0.0]),
                   "lab": np.array([0.0, 1.0, 1.0, 0.0])}
_MEDMNIST_FILE = Path("medmnist") / "pneumoniamnist_balanced.npz"


def _standardize(v):
    v = v - v.mean()
    sd = v.std()
    return v / sd if sd > 0 else v


def _load_images(images, data_dir):
    """Real images in [0, 1] of shape (N, H, W), and where they came from."""
    if images in ("auto", "medmnist"):
        root = get_data_dir(data_dir)
        path = None if root is None else root / _MEDMNIST_FILE
        if path is not None and path.is_file():
            with np.load(path) as f:
                arr = np.concatenate([f[f"{s}_images"] for s in ("train", "val", "test")])
            return arr.astype(np.float32) / 255.0, "medmnist"
        if images == "medmnist":
            raise ValueError(
                "The 'images' parameter of make_multimodal_cases is 'medmnist' but "
                f"{_MEDMNIST_FILE} was not found under data_dir={data_dir!r}, "
                "$SKLEARN_RELEVANCE_DATA or ../shared/data."
            )
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.float32) / 16.0, "digits"


def _correlated_gaussian(rng, n, k, rho):
    """``n`` draws of a k-variate Gaussian with AR(1) correlation ``rho**|i-j|``."""
    idx = np.arange(k)
    cov = rho ** np.abs(idx[:, None] - idx[None, :])
    return rng.standard_normal((n, k)) @ np.linalg.cholesky(cov).T


def _image_terms(img):
    """Standardised image features: brightness, centre contrast, their product."""
    h, w = img.shape[1:]
    centre = img[:, h // 4: h - h // 4, w // 4: w - w // 4].mean(axis=(1, 2))
    bright = _standardize(img.mean(axis=(1, 2)))
    contrast = _standardize(centre - img.mean(axis=(1, 2)))
    return {"brightness": bright, "contrast": contrast,
            "interaction": _standardize(bright * contrast)}


def _tabular_terms(z, name):
    return {"linear": _standardize(z @ _LINEAR_WEIGHTS[name]),
            "interaction": _standardize(z[:, 0] * z[:, 1]),
            "square": _standardize(z[:, 1] ** 2)}


def _image_indices(rng, n_pool, n_samples, test_size):
    """Pool rows per sample; train and test rows from disjoint parts of the pool."""
    if test_size is None:
        return rng.choice(n_pool, n_samples, replace=n_samples > n_pool)
    n_test = int(round(n_samples * test_size))
    n_train = n_samples - n_test
    if min(n_train, n_test) < 1 or n_pool < 2:
        raise ValueError(
            f"make_multimodal_cases cannot split {n_samples} samples with "
            f"test_size={test_size} into two non-empty parts of a pool of {n_pool} images."
        )
    order = rng.permutation(n_pool)
    # pool rows shared in proportion to the parts (at least one each)
    cut = min(max(int(round(n_pool * n_train / n_samples)), 1), n_pool - 1)
    parts = []
    for rows, k in ((order[:cut], n_train), (order[cut:], n_test)):
        parts.append(rows[rng.choice(len(rows), k, replace=k > len(rows))])
    return np.concatenate(parts)


def make_multimodal_cases(case, n_samples=1000, *, random_state=None, data_dir=None,
                          images="auto", test_size=None):
    """Simulated multimodal classification cases with known modality importances.

    Every case has three modalities: ``"ct"``, real images of shape
    ``(n_samples, 1, H, W)`` (MedMNIST chest X-rays, 28 x 28, when the shared
    data are present; scikit-learn's 8 x 8 digits otherwise), ``"clinical"``
    (5 variables) and ``"lab"`` (4 variables), each a correlated Gaussian
    (AR(1) correlation 0.5 and 0.3). The label is ``y = 1`` when the decision
    score ``s = sum_m w_m t_m`` is in the upper half of the scores, where each ``t_m`` is a
    standardised term of modality ``m`` alone (image brightness, centre
    contrast, a linear combination of the variables, an interaction or a
    square) and ``w_m`` its weight. The ground-truth importance of modality
    ``m`` is ``w_m / sum(w)``: its share of the decision score.

    ====  ===========================  =====================================
    case  rule                          ground truth (ct, clinical, lab)
    ====  ===========================  =====================================
    1     CT only, linear              1, 0, 0
    2     clinical only, linear        0, 1, 0
    3     CT + clinical, linear        0.5, 0.5, 0
    4     clinical + lab, linear       0, 0.7, 0.3
    5     all modalities, equal        1/3, 1/3, 1/3
    6     all modalities, unequal      0.5, 0.3, 0.2
    7     CT + clinical, non-linear    0.6, 0.4, 0
    8     all modalities, non-linear   0.2, 0.3, 0.5
    ====  ===========================  =====================================

    Parameters
    ----------
    case : int in 1..8
    n_samples : int, default=1000
        Images are drawn from the real set without replacement (with
        replacement only when ``n_samples`` exceeds the set, or a split part
        exceeds its share of the set).
    random_state : int, RandomState instance or None, default=None
    data_dir : str or path-like, default=None
        Folder holding ``medmnist/pneumoniamnist_balanced.npz``; defaults to
        ``$SKLEARN_RELEVANCE_DATA``, else ``../shared/data`` when it exists.
    images : {"auto", "medmnist", "digits"}, default="auto"
        ``"auto"`` uses MedMNIST when found and the digits otherwise.
    test_size : float in (0, 1) or None, default=None
        The last ``round(n_samples * test_size)`` samples form a test part
        whose images come from a part of the real set disjoint from the
        training images': no image is in both parts, even when images must
        repeat (split the samples in order, as
        :func:`evaluate_importance` does). ``None``: one pool.

    Returns
    -------
    X : dict of str to ndarray of float32
        ``{"ct": (n, 1, H, W), "clinical": (n, 5), "lab": (n, 4)}``.
    y : ndarray of shape (n_samples,), int64
    importances : dict of str to float
        Ground-truth importance per modality, summing to one.

    Examples
    --------
    >>> from sklearn_relevance.datasets import make_multimodal_cases
    >>> X, y, truth = make_multimodal_cases(6, 200, random_state=0, images="digits")
    >>> {k: v.shape for k, v in X.items()}
    {'ct': (200, 1, 8, 8), 'clinical': (200, 5), 'lab': (200, 4)}
    >>> truth
    {'ct': 0.5, 'clinical': 0.3, 'lab': 0.2}
    >>> int(y.sum())
    100
    """
    if isinstance(case, bool) or not isinstance(case, numbers.Integral) or case not in CASES:
        raise ValueError(
            "The 'case' parameter of make_multimodal_cases must be an int in "
            f"[1, {len(CASES)}]. Got {case!r} instead."
        )
    n_samples = check_int(n_samples, "n_samples", "make_multimodal_cases", low=2)
    if images not in ("auto", "medmnist", "digits"):
        raise ValueError(
            "The 'images' parameter of make_multimodal_cases must be 'auto', "
            f"'medmnist' or 'digits'. Got {images!r} instead."
        )
    if test_size is not None and not (isinstance(test_size, numbers.Real)
                                      and not isinstance(test_size, bool)
                                      and 0 < test_size < 1):
        raise ValueError(
            "The 'test_size' parameter of make_multimodal_cases must be None or a "
            f"float in (0, 1). Got {test_size!r} instead."
        )
    rng = check_random_state(random_state)
    pool, _ = _load_images(images, data_dir)
    img = pool[_image_indices(rng, len(pool), n_samples, test_size)]
    clinical = _correlated_gaussian(rng, n_samples, _N_TABULAR["clinical"], 0.5)
    lab = _correlated_gaussian(rng, n_samples, _N_TABULAR["lab"], 0.3)
    terms = {"ct": _image_terms(img), "clinical": _tabular_terms(clinical, "clinical"),
             "lab": _tabular_terms(lab, "lab")}
    rule = CASES[case][1]
    score = sum(w * terms[m][term] for m, (term, w) in rule.items())
    # the upper half of the scores is class 1 (ties, e.g. repeated images, by order)
    y = np.zeros(n_samples, dtype=np.int64)
    y[np.argsort(score, kind="stable")[n_samples - n_samples // 2:]] = 1
    total = sum(w for _, w in rule.values())
    truth = {m: float(rule[m][1] / total) if m in rule else 0.0 for m in MODALITIES}
    X = {"ct": img[:, None].astype(np.float32), "clinical": clinical.astype(np.float32),
         "lab": lab.astype(np.float32)}
    return X, y, truth


