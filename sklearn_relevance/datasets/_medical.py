"""Loaders of real medical images: MedMNIST, CT slices with organ masks, MRI
volumes, an atlas, and the folder of the shared data."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._optional import require

from ._checks import _check_path

_SPLITS = ("train", "val", "test")


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


