"""Multi-scale Felzenszwalb segments for XRAI, as boolean region masks.

The segmentation follows the PAIR ``saliency`` package's XRAI
(``saliency/core/xrai.py``, ``_get_segments_felzenszwalb``) step for step, so
that the regions are the same: the image is rescaled to [-1, 1] (one min and
max over all its values and channels), resized to 224 x 224 (bicubic), segmented
by scikit-image's Felzenszwalb algorithm at each scale (channels compared by
Euclidean distance), the label maps are resized back (nearest neighbour),
unpacked into one mask per label and dilated by a disk.

What differs is the work. The six segmentations of an image share their
smoothing, edge costs and edge sort, and merge in a small C kernel
(``_felzenszwalb.c``; scikit-image per scale where it was not compiled), with
label maps equal to scikit-image's. The bicubic resize is two matrix products
(equal to scikit-image's 3D spline zoom to about 1e-15). The unpacking and
the dilation run on all masks of an image at once in torch (one-hot, then a
disk dilation built from horizontal runs), and empty and repeated masks are
dropped, which does not change XRAI's result (see :func:`image_masks`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .._optional import require

try:  # the optional C kernel (see setup.py); scikit-image is the fallback
    from . import _felzenszwalb as _kernel
except ImportError:  # pragma: no cover - depends on the build
    _kernel = None

__all__ = [
    "PAIR_SCALES",
    "PAIR_SHAPE",
    "normalize_image",
    "felzenszwalb_multiscale",
    "felzenszwalb_labels",
    "labels_to_masks",
    "dilate_disk",
    "image_masks",
]

#: Felzenszwalb scales of the PAIR ``saliency`` package's XRAI.
PAIR_SCALES = (50, 100, 150, 250, 500, 1200)
#: Shape PAIR's XRAI resizes every image to for the segmentation.
PAIR_SHAPE = (224, 224)


def _skimage(submodule):
    """A scikit-image submodule, or an ImportError saying how to get it."""
    return require(f"skimage.{submodule}", owner="XRAI's segmentation",
                   package="scikit-image", extra="image")


def _resize_cubic(image, shape):
    """``skimage.transform.resize(image, shape + (C,), order=3, mode="constant",
    anti_aliasing=True, preserve_range=True)``, as two matrix products.

    scikit-image's resize is linear and separable: a Gaussian anti-aliasing
    filter when shrinking, then a cubic spline zoom on the pixel grid, both
    with zero padding, then clipping to the input range. The linear part is
    ``M_rows @ channel @ M_cols.T``, with each axis' matrix computed once per
    pair of sizes by running those same scipy calls on an identity matrix
    (:func:`_resize_matrix`). scikit-image zooms the (H, W, C) array in 3D
    instead, 64 spline taps per output pixel; the results agree to about
    1e-15.
    """
    rows = _resize_matrix(image.shape[0], int(shape[0]))
    cols = _resize_matrix(image.shape[1], int(shape[1]))
    # torch's matmul: its thread settings, not a second BLAS thread pool
    channels = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))
    out = np.moveaxis((rows @ channels @ cols.T).numpy(), 0, -1)
    return np.clip(out, image.min(), image.max())


@functools.lru_cache(maxsize=32)
def _resize_matrix(n_in, n_out):
    """(n_out, n_in) float64 tensor of scikit-image's cubic resize along one
    axis (cached: callers must not write to it)."""
    from scipy import ndimage as ndi

    sigma = max(0.0, (n_in / n_out - 1.0) / 2.0)
    eye = ndi.gaussian_filter(np.eye(n_in), (sigma, 0.0), cval=0.0, mode="grid-constant")
    matrix = ndi.zoom(eye, (n_out / n_in, 1.0), order=3, mode="grid-constant",
                      cval=0.0, grid_mode=True)
    return torch.from_numpy(matrix)


def normalize_image(image, value_range=(-1.0, 1.0), shape=None):
    """Rescale an image to ``value_range`` and optionally resize it (bicubic).

    A constant image maps to the middle of the range (the PAIR package would
    divide by zero there).

    Parameters
    ----------
    image : ndarray of shape (H, W, C)
    value_range : (float, float)
    shape : (int, int) or None

    Returns
    -------
    ndarray of shape (H, W, C), or ``shape + (C,)`` when resized.
    """
    image = np.asarray(image, dtype=np.float64)
    lo, hi = image.min(), image.max()
    if hi > lo:
        image = (image - lo) / (hi - lo)
    else:
        image = np.full_like(image, 0.5)
    image = image * (value_range[1] - value_range[0]) + value_range[0]
    if shape is not None and tuple(shape) != image.shape[:2]:
        image = _resize_cubic(image, tuple(shape))
    return image


def _edge_costs(image, sigma):
    """Smoothed 8-connected edge costs in scikit-image's order and arithmetic."""
    from scipy import ndimage as ndi

    im = ndi.gaussian_filter(image, [sigma, sigma, 0], mode="reflect", truncate=4.0)
    h, w = im.shape[:2]

    def cost(d):
        return np.sqrt(np.sum(d * d, axis=-1)).ravel()

    return np.hstack([cost(im[:, 1:] - im[:, :w - 1]), cost(im[1:] - im[:h - 1]),
                      cost(im[1:, 1:] - im[:h - 1, :w - 1]),
                      cost(im[1:, :w - 1] - im[:h - 1, 1:])]).astype(np.float64)


def felzenszwalb_multiscale(image, scales, sigma=0.8, min_size=20, pick=None):
    """scikit-image's ``felzenszwalb`` at several scales, sharing the work.

    Equal, label for label, to ``[skimage.segmentation.felzenszwalb(image,
    scale=s, sigma=sigma, min_size=min_size, channel_axis=-1) for s in
    scales]``. The smoothing, the edge costs and their sort (the same
    ``numpy.argsort``, hence the same order of tied edges) are done once for
    all scales, and the merging runs in a small C kernel with path
    compression, which releases the GIL. Without the compiled kernel
    (no C compiler at install time) scikit-image is called per scale.

    Parameters
    ----------
    image : ndarray of shape (H, W, C) or (H, W)
    scales : sequence of float
    sigma : float
    min_size : int
    pick : int ndarray or None
        Flat pixel indices: return only their labels (the kernel then skips
        labelling the other pixels).

    Returns
    -------
    int ndarray of shape (len(scales), H, W), or ``(len(scales),) +
    pick.shape`` with ``pick``
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    h, w = image.shape[:2]
    if _kernel is None or h < 2 or w < 2:
        felzenszwalb = _skimage("segmentation").felzenszwalb
        labels = np.stack([felzenszwalb(image, scale=s, sigma=sigma, min_size=min_size,
                                        channel_axis=-1) for s in scales])
        return labels if pick is None else labels.reshape(len(scales), -1)[:, pick]
    costs = _edge_costs(image, sigma)
    order = np.argsort(costs).astype(np.intp, copy=False)
    scales = np.asarray(scales, dtype=np.float64)
    if pick is None:
        out = np.empty((len(scales), h, w), dtype=np.intp)
        _kernel.multiscale(order, costs, h, w, scales, int(min_size), out)
        return out
    pick = np.ascontiguousarray(pick, dtype=np.intp)
    out = np.empty((len(scales),) + pick.shape, dtype=np.intp)
    _kernel.multiscale(order, costs, h, w, scales, int(min_size), out, pick)
    return out


def felzenszwalb_labels(image, *, scales=PAIR_SCALES, sigma=0.8, min_size=150,
                        segment_shape=PAIR_SHAPE):
    """One Felzenszwalb label map per scale, at the image's own size.

    Parameters
    ----------
    image : ndarray of shape (H, W, C)
        One image, channels last.
    scales : sequence of float
        Felzenszwalb ``scale`` values (larger: larger segments).
    sigma : float
        Width of the Gaussian smoothing before segmentation.
    min_size : int
        Minimum segment size, in pixels of the segmented image.
    segment_shape : (int, int) or None
        Size the image is resized to for the segmentation (PAIR: 224 x 224,
        so that ``scales`` and ``min_size`` mean the same at any image size);
        ``None`` segments at the image's own size.

    Returns
    -------
    list of int ndarrays of shape (H, W)
    """
    original = image.shape[:2]
    im = normalize_image(image, (-1.0, 1.0), segment_shape)
    pick = None  # the nearest-neighbour resize back: labels of these pixels only
    if segment_shape is not None and tuple(segment_shape) != tuple(original):
        pick = _nearest_pixels(tuple(segment_shape), tuple(original))
    return list(felzenszwalb_multiscale(im, scales, sigma=sigma, min_size=min_size,
                                        pick=pick))


@functools.lru_cache(maxsize=16)
def _nearest_pixels(shape, original):
    """Flat source pixel of every pixel of ``original`` in a nearest-neighbour
    resize from ``shape``: ``skimage.transform.resize(..., order=0)`` of the
    pixel indices (exact in float64), so that indexing a label map with it
    equals resizing the map (PAIR's step), for all scales at once."""
    resize = _skimage("transform").resize
    index = np.arange(shape[0] * shape[1], dtype=np.float64).reshape(shape)
    pick = resize(index, original, order=0, preserve_range=True, mode="constant",
                  anti_aliasing=False)
    pick = pick.astype(np.intp)
    pick.setflags(write=False)
    return pick


def labels_to_masks(labels, device=None):
    """Unpack label maps into boolean masks, one per label, in PAIR's order.

    Masks come scale by scale and, within a scale, by increasing label (as
    PAIR's ``_unpack_segs_to_masks``); labels absent from a map give no mask.

    Parameters
    ----------
    labels : list of int ndarrays of shape (H, W)
    device : torch.device or None

    Returns
    -------
    BoolTensor of shape (n_masks, H, W)
    """
    parts = []
    for seg in labels:
        seg = torch.as_tensor(np.asarray(seg), device=device)
        present = torch.unique(seg)  # sorted, only labels that occur
        parts.append(seg.unsqueeze(0) == present.view(-1, 1, 1))
    return torch.cat(parts)


def _shift(masks, offset, axis):
    """``masks`` moved by ``offset`` pixels along ``axis`` with zero fill."""
    if offset == 0:
        return masks
    out = torch.zeros_like(masks)
    size = masks.shape[axis]
    if abs(offset) >= size:
        return out
    src = masks.narrow(axis, max(-offset, 0), size - abs(offset))
    out.narrow(axis, max(offset, 0), size - abs(offset)).copy_(src)
    return out


def dilate_disk(masks, radius):
    """Binary dilation of every mask by ``skimage.morphology.disk(radius)``.

    The disk is split into horizontal runs: row ``dy`` of the disk spans
    ``|dx| <= floor(sqrt(radius**2 - dy**2))``. Horizontal dilations by each
    half-width are built incrementally, then shifted vertically and combined,
    so the cost is about ``4 * radius`` boolean operations on the mask stack.
    Pixels outside the image count as background, which for a symmetric
    convex footprint equals scikit-image's default (reflected) border.

    Parameters
    ----------
    masks : BoolTensor of shape (n, H, W)
    radius : int

    Returns
    -------
    BoolTensor of shape (n, H, W)
    """
    radius = int(radius)
    if radius <= 0:
        return masks.clone()
    widths = [int(np.floor(np.sqrt(radius**2 - dy**2))) for dy in range(radius + 1)]
    horizontal = [masks]
    current = masks
    for w in range(1, radius + 1):
        current = current | _shift(masks, w, 2) | _shift(masks, -w, 2)
        horizontal.append(current)
    out = horizontal[widths[0]].clone()
    for dy in range(1, radius + 1):
        row = horizontal[widths[dy]]
        out |= _shift(row, dy, 1)
        out |= _shift(row, -dy, 1)
    return out


def image_masks(image, *, scales=PAIR_SCALES, sigma=0.8, min_size=150,
                segment_shape=PAIR_SHAPE, dilation_radius=5, min_pixels=1,
                device=None):
    """XRAI's candidate regions of one image, as a boolean mask stack.

    Equal to the PAIR package's ``_get_segments_felzenszwalb`` (same
    parameters), in the same order, except that masks with fewer than
    ``min_pixels`` pixels and repeats of an earlier mask are dropped. Neither
    changes XRAI's greedy selection: a mask smaller than ``min_pixel_diff`` is
    discarded in its first round anyway, and a repeated mask always ties with
    its first copy, which wins the tie and covers it.

    Parameters
    ----------
    image : ndarray of shape (H, W, C)
    scales, sigma, min_size, segment_shape
        See :func:`felzenszwalb_labels`.
    dilation_radius : int
        Radius of the disk each mask is dilated by (0: none).
    min_pixels : int
        Masks with fewer pixels (after dilation) are dropped.
    device : torch.device or None

    Returns
    -------
    BoolTensor of shape (n_masks, H, W)
    """
    labels = felzenszwalb_labels(image, scales=scales, sigma=sigma,
                                 min_size=min_size, segment_shape=segment_shape)
    masks = dilate_disk(labels_to_masks(labels, device=device), dilation_radius)
    masks = masks[masks.flatten(1).sum(1) >= max(int(min_pixels), 1)]
    return _drop_repeats(masks)


def _drop_repeats(masks):
    """Keep the first of identical masks (order otherwise unchanged)."""
    if masks.shape[0] < 2:
        return masks
    packed = np.packbits(masks.flatten(1).cpu().numpy(), axis=1)
    first = {}
    for i, row in enumerate(packed):  # a few hundred rows: hashing beats sorting
        first.setdefault(row.tobytes(), i)
    if len(first) == masks.shape[0]:
        return masks
    keep = torch.as_tensor(sorted(first.values()), device=masks.device)
    return masks[keep]
