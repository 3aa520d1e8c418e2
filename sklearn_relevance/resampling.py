"""Volumes and label atlases onto another voxel grid, and relevance back.

* :func:`resample_to_grid`: one image (or a batch) from its grid onto a
  target grid given by an affine and a shape: trilinear for intensities,
  nearest neighbour for label atlases; the exact input when the grids match.
* :class:`ResampleToGrid`: the same as a scikit-learn transformer, so a
  Pipeline brings scans of the source grid onto the network's grid, and
  ``inverse_transform`` brings relevance maps back onto the source grid
  (where :func:`~sklearn_relevance.relevance_io.write_relevance_nifti`
  writes them with the source affine).

A grid is an affine (voxel indices to world millimetres, as in
:class:`~sklearn_relevance.volumes.Volume`) and a shape. A target voxel
takes the value of the source image at its world position (points outside
the source get ``fill_value``). Relevance is interpolated as a density, not
redistributed: its sum over the volume is not kept when the voxel size
changes. Nothing here imports torch.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["resample_to_grid", "ResampleToGrid"]

_ORDERS = {"linear": 1, "nearest": 0}
#: Output elements resampled per call (bounds the temporary memory, ~256 MB float32).
_CHUNK_ELEMENTS = 64 * 2**20
#: Voxel mappings within this many voxels of the identity are the same grid.
IDENTITY_TOLERANCE = 1e-6


def _check_affine(affine, k, name, owner):
    a = np.asarray(affine, dtype=np.float64) if affine is not None else None
    if a is None or a.shape != (k + 1, k + 1) or not np.isfinite(a).all() \
            or abs(np.linalg.det(a[:k, :k])) < 1e-12 \
            or not np.array_equal(a[k], np.eye(k + 1)[k]):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a finite, invertible "
            f"({k + 1}, {k + 1}) affine with last row {np.eye(k + 1)[k].tolist()} for "
            f"{k}D grids. Got {affine!r} instead."
        )
    return a


def _check_shape(shape, name, owner):
    try:
        out = tuple(int(s) for s in shape)
        ok = len(out) >= 1 and all(s >= 1 and s == t for s, t in zip(out, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a tuple of positive ints. "
            f"Got {shape!r} instead."
        )
    return out


def _check_interpolation(interpolation, owner):
    if interpolation not in _ORDERS:
        raise ValueError(
            f"The 'interpolation' parameter of {owner} must be one of "
            f"{sorted(_ORDERS)}. Got {interpolation!r} instead."
        )
    return _ORDERS[interpolation]


def _check_fill(fill_value, owner):
    if isinstance(fill_value, bool) or not isinstance(fill_value, numbers.Real) \
            or not np.isfinite(fill_value):
        raise ValueError(
            f"The 'fill_value' parameter of {owner} must be a finite number. "
            f"Got {fill_value!r} instead."
        )
    return float(fill_value)


def fov_affine(source_affine, source_shape, target_shape):
    """The affine of ``target_shape`` voxels covering the source's field of view.

    Voxel edges align (as ``torch.nn.functional.interpolate`` with
    ``align_corners=False``): target voxel ``t`` lies at source index
    ``(t + 0.5) * source / target - 0.5``.
    """
    scale = np.asarray(source_shape, float) / np.asarray(target_shape, float)
    k = len(scale)
    step = np.eye(k + 1)
    step[:k, :k] = np.diag(scale)
    step[:k, k] = 0.5 * scale - 0.5
    return np.asarray(source_affine, float) @ step


def _outside(matrix, source_shape, target_shape):
    """Target voxels whose centre lies outside the source voxels' extent."""
    k = len(target_shape)
    outside = np.zeros(target_shape, dtype=bool)
    grids = np.indices(target_shape, dtype=np.float64).reshape(k, -1)
    coords = matrix[:k, :k] @ grids + matrix[:k, k:]
    for axis in range(k):
        c = coords[axis].reshape(target_shape)
        outside |= (c < -0.5) | (c > source_shape[axis] - 0.5)
    return outside


def _resample(image, matrix, target_shape, order, fill_value):
    """``image`` (m, *source) at source indices ``matrix @ target index``.

    A voxel is a box: target voxels within half a voxel of the source's outer
    centres take the edge values, beyond that ``fill_value``.
    """
    from scipy import ndimage

    k = len(target_shape)
    full = np.eye(k + 1)
    full[1:, 1:] = matrix[:k, :k]
    offset = np.concatenate([[0.0], matrix[:k, k]])
    m = image.shape[0]
    out_dtype = image.dtype if order == 0 else (
        image.dtype if image.dtype in (np.float32, np.float64) else np.float32)
    out = np.empty((m, *target_shape), dtype=out_dtype)
    outside = _outside(matrix, image.shape[1:], target_shape)
    per = max(1, _CHUNK_ELEMENTS // max(1, int(np.prod(target_shape))))
    for start in range(0, m, per):
        part = image[start:start + per]
        if order == 1 and part.dtype != out_dtype:
            part = part.astype(out_dtype)
        # the batch axis maps onto itself at integer coordinates: no mixing
        res = ndimage.affine_transform(
            part, full, offset=offset, output_shape=(len(part), *target_shape),
            order=order, mode="nearest", prefilter=False)
        res[:, outside] = fill_value
        out[start:start + per] = res
    return out


def _same_grid(matrix, source_shape, target_shape):
    k = len(target_shape)
    return tuple(source_shape) == tuple(target_shape) and bool(
        np.abs(matrix - np.eye(k + 1)).max() <= IDENTITY_TOLERANCE)


def resample_to_grid(image, source_affine, target_affine, target_shape, *,
                     interpolation="linear", fill_value=0.0):
    """Resample an image (or a batch of images) onto another voxel grid.

    Parameters
    ----------
    image : array-like of shape ``(..., *source_shape)``
        Values on the source grid; the last ``len(target_shape)`` axes are
        spatial, leading axes (samples, channels) are resampled alike.
    source_affine, target_affine : array-like of shape (k + 1, k + 1)
        Voxel indices to world coordinates of each grid (``Volume.affine``).
    target_shape : tuple of int of length k
    interpolation : {"linear", "nearest"}, default="linear"
        Trilinear (bilinear in 2D) for intensities and relevance; nearest
        neighbour for label atlases (labels and dtype kept).
    fill_value : float, default=0.0
        Value of target voxels whose centre lies outside the source voxels
        (more than half a voxel beyond the source's outer voxel centres;
        nearer ones take the edge values).

    Returns
    -------
    ndarray of shape ``(..., *target_shape)``
        A new array (never a view of ``image``): ``image``'s values exactly
        when the grids are the same (voxel mappings within 1e-6 voxel of
        the identity), float32 for linear resampling of integers.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.resampling import resample_to_grid
    >>> labels = np.arange(8).reshape(2, 2, 2)
    >>> fine = np.diag([0.5, 0.5, 0.5, 1.0])   # half-size voxels, same extent
    >>> fine[:3, 3] = -0.25
    >>> resample_to_grid(labels, np.eye(4), fine, (4, 4, 4),
    ...                  interpolation="nearest")[:, :, 0]
    array([[0, 0, 2, 2],
           [0, 0, 2, 2],
           [4, 4, 6, 6],
           [4, 4, 6, 6]])
    """
    owner = "resample_to_grid"
    target_shape = _check_shape(target_shape, "target_shape", owner)
    k = len(target_shape)
    order = _check_interpolation(interpolation, owner)
    fill_value = _check_fill(fill_value, owner)
    src = _check_affine(source_affine, k, "source_affine", owner)
    tgt = _check_affine(target_affine, k, "target_affine", owner)
    image = np.asarray(image)
    if image.ndim < k or image.dtype.kind not in "biuf":
        raise ValueError(
            f"The 'image' parameter of {owner} must be a numeric array with at least "
            f"{k} axes (the grid's). Got {image.dtype} of shape {image.shape} instead."
        )
    if order == 1 and image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError(
            f"The 'image' parameter of {owner} holds NaN or infinite values, which "
            "linear interpolation would spread; replace them first (np.nan_to_num)."
        )
    matrix = np.linalg.solve(src, tgt)
    return _apply(image, matrix, target_shape, order, fill_value)


def _apply(image, matrix, target_shape, order, fill_value):
    k = len(target_shape)
    lead, source_shape = image.shape[:-k], image.shape[-k:]
    if _same_grid(matrix, source_shape, target_shape):
        out = np.array(image, copy=True)
        return out.astype(np.float32) if order == 1 and out.dtype.kind != "f" else out
    flat = image.reshape(-1, *source_shape) if image.ndim > k else image[None]
    out = _resample(flat, matrix, target_shape, order, fill_value)
    return out.reshape(*lead, *target_shape)


class ResampleToGrid(TransformerMixin, BaseEstimator):
    """Resample volumes of one source grid onto the network's grid, and back.

    ``X`` has shape ``(n_samples, ..., *source_shape)``: the last
    ``len(target_shape)`` axes are the grid, axes between (channels) are
    resampled alike, and every sample shares ``source_affine``.
    ``transform`` resamples onto the target grid, ``inverse_transform``
    (relevance maps of the network's input) back onto the source grid, so
    they can be written with the source affine.

    Parameters
    ----------
    target_shape : tuple of int or None, default=None
        The network's grid. ``None`` keeps the input grid (an identity
        step, e.g. a grid-search option).
    target_affine : array-like of shape (k + 1, k + 1) or None, default=None
        The network grid's affine; ``None`` spans the source's field of view
        with ``target_shape`` voxels (voxel edges aligned).
    source_affine : array-like of shape (k + 1, k + 1) or None, default=None
        The affine of the scans (``Volume.affine``); ``None`` is the
        identity (voxel indices as coordinates).
    interpolation : {"linear", "nearest"}, default="linear"
        Trilinear for intensities; nearest neighbour for label images.
    fill_value : float, default=0.0
        Value outside the other grid (both directions).

    Attributes
    ----------
    source_shape_ : tuple of int
        The grid of the fitted samples.
    source_affine_, target_affine_ : ndarray
        The two grids' affines as used.
    target_shape_ : tuple of int
    n_features_in_ : int
        ``X.shape[1]`` (scikit-learn's convention).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.resampling import ResampleToGrid
    >>> X = np.random.default_rng(0).normal(size=(2, 1, 8, 8, 8)).astype(np.float32)
    >>> step = ResampleToGrid((4, 4, 4), source_affine=np.diag([2., 2., 2., 1.])).fit(X)
    >>> step.transform(X).shape, step.target_affine_.diagonal().tolist()
    ((2, 1, 4, 4, 4), [4.0, 4.0, 4.0, 1.0])
    >>> step.inverse_transform(step.transform(X)).shape
    (2, 1, 8, 8, 8)
    """

    def __init__(self, target_shape=None, *, target_affine=None, source_affine=None,
                 interpolation="linear", fill_value=0.0):
        self.target_shape = target_shape
        self.target_affine = target_affine
        self.source_affine = source_affine
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _validate(self, X, reset, *, inverse=False):
        dtype = ("numeric" if self.interpolation == "nearest"
                 else [np.float64, np.float32])
        if inverse:  # the target grid's shape: X.shape[1] may differ from the fit's
            return check_array(X, allow_nd=True, dtype=dtype)
        return validate_data(self, X, reset=reset, allow_nd=True, dtype=dtype,
                             ensure_min_features=1)

    def fit(self, X, y=None):
        """Check the parameters and record the source grid of ``X``."""
        owner = type(self).__name__
        self._order = _check_interpolation(self.interpolation, owner)
        _check_fill(self.fill_value, owner)
        X = self._validate(X, reset=True)
        if self.target_shape is None:
            k = X.ndim - 1
            target_shape = None
        else:
            target_shape = _check_shape(self.target_shape, "target_shape", owner)
            k = len(target_shape)
            if X.ndim < k + 1:
                raise ValueError(
                    f"{owner} with a {k}D target_shape needs X of shape (n_samples, ..., "
                    f"{k} grid axes). Got shape {X.shape} instead."
                )
        source_shape = tuple(X.shape[-k:])
        src = np.eye(k + 1) if self.source_affine is None else _check_affine(
            self.source_affine, k, "source_affine", owner)
        if target_shape is None:
            if self.target_affine is not None:
                raise ValueError(
                    f"The 'target_shape' parameter of {owner} must be given with "
                    f"target_affine. Got None instead."
                )
            tgt, target_shape = src, source_shape
        elif self.target_affine is None:
            tgt = fov_affine(src, source_shape, target_shape)
        else:
            tgt = _check_affine(self.target_affine, k, "target_affine", owner)
        self.source_shape_, self.target_shape_ = source_shape, target_shape
        self.source_affine_, self.target_affine_ = src, tgt
        return self

    def _map(self, X, matrix, from_shape, to_shape, method):
        check_is_fitted(self)
        X = self._validate(X, reset=False, inverse=method == "inverse_transform")
        k = len(to_shape)
        if X.ndim < k + 1 or tuple(X.shape[-k:]) != tuple(from_shape):
            raise ValueError(
                f"X of {type(self).__name__}.{method} must have the grid shape "
                f"{tuple(from_shape)} in its last {k} axes. Got shape {X.shape} instead."
            )
        return _apply(X, matrix, to_shape, self._order, float(self.fill_value))

    def transform(self, X):
        """Resample ``X`` (source grid) onto the target grid.

        Parameters
        ----------
        X : array-like of shape (n_samples, ..., *source_shape_)

        Returns
        -------
        ndarray of shape (n_samples, ..., *target_shape_)
        """
        check_is_fitted(self)
        matrix = np.linalg.solve(self.source_affine_, self.target_affine_)
        return self._map(X, matrix, self.source_shape_, self.target_shape_, "transform")

    def inverse_transform(self, X):
        """Resample ``X`` (target grid, e.g. relevance maps) back onto the source grid.

        Parameters
        ----------
        X : array-like of shape (n_samples, ..., *target_shape_)

        Returns
        -------
        ndarray of shape (n_samples, ..., *source_shape_)
        """
        check_is_fitted(self)
        matrix = np.linalg.solve(self.target_affine_, self.source_affine_)
        return self._map(X, matrix, self.target_shape_, self.source_shape_,
                         "inverse_transform")
