"""Multi-scale Felzenszwalb segments for XRAI, as boolean region masks.

The segmentation follows the PAIR ``saliency`` package's XRAI
(``saliency/core/xrai.py``, ``_get_segments_felzenszwalb``) step for step, so
that the regions are the same: the image is rescaled to [-1, 1] (one min and
max over all its values and channels), resized to 224 x 224 (bicubic), segmented
by scikit-image's Felzenszwalb algorithm at each scale (channels compared by
Euclidean distance), the label maps are resized back (nearest neighbour),
unpacked into one mask per label and dilated by a disk.

What differs is the work around scikit-image: the unpacking and the dilation
run on all masks of an image at once in torch (one-hot, then a disk dilation
built from horizontal runs), and empty and repeated masks are dropped, which
does not change XRAI's result (see :func:`image_masks`).
"""

from __future__ import annotations

import numpy as np
import torch

from .._optional import require

__all__ = [
    "PAIR_SCALES",
    "PAIR_SHAPE",
    "normalize_image",
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
    resize = _skimage("transform").resize
    image = np.asarray(image, dtype=np.float64)
    lo, hi = image.min(), image.max()
    if hi > lo:
        image = (image - lo) / (hi - lo)
    else:
        image = np.full_like(image, 0.5)
    image = image * (value_range[1] - value_range[0]) + value_range[0]
    if shape is not None:
        image = resize(image, tuple(shape), order=3, mode="constant",
                       preserve_range=True, anti_aliasing=True)
    return image


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
    felzenszwalb = _skimage("segmentation").felzenszwalb
    resize = _skimage("transform").resize
    original = image.shape[:2]
    im = normalize_image(image, (-1.0, 1.0), segment_shape)
    labels = []
    for scale in scales:
        seg = felzenszwalb(im, scale=scale, sigma=sigma, min_size=min_size)
        if segment_shape is not None:
            seg = resize(seg, original, order=0, preserve_range=True,
                         mode="constant", anti_aliasing=False).astype(int)
        labels.append(seg)
    return labels


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
    _, first = np.unique(packed, axis=0, return_index=True)
    if first.size == masks.shape[0]:
        return masks
    keep = torch.as_tensor(np.sort(first), device=masks.device)
    return masks[keep]
