"""Synthetic images with ground-truth masks: lesions, and digits with decoys."""

from __future__ import annotations

import math

import numpy as np
from sklearn.utils import Bunch, check_random_state

from .._batching import iter_slices
from .._validation import check_int, check_real


#: Float32 elements of one distance tensor in make_lesion_images (~32 MB).
_CHUNK_ELEMENTS = 8 * 2**20


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


