"""Relevance per atlas region (brain atlases, organ label maps) and fingerprints.

An atlas is an integer label image; label 0 is background and never
reported. :func:`region_relevance` reduces relevance maps to one value per
region in a single ``scatter_add`` over the whole batch;
:func:`fingerprint_similarity` compares the resulting per-region vectors
between patients.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import as_batch, check_choice, squeezed_shape, to_numpy_numeric
from ._checks import nan_where, to_numpy

__all__ = ["region_relevance", "fingerprint_similarity"]

STATISTICS = {"sum", "density", "gain"}


def check_atlas(atlas, name="atlas"):
    """Integer numpy label image (any shape) with non-negative labels."""
    arr = to_numpy_numeric(atlas, name)
    if arr.size == 0:
        raise ValueError(f"The '{name}' parameter must not be empty.")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)) or arr.min() < 0:
        raise ValueError(
            f"The '{name}' parameter must hold non-negative integer region labels "
            "(0 = background)."
        )
    return arr.astype(np.int64)


def region_labels(atlas, labels=None):
    """Sorted region labels: ``labels`` as given or the atlas' non-zero labels."""
    if labels is None:
        found = np.unique(atlas)
        found = found[found != 0]
        if found.size == 0:
            raise ValueError("The 'atlas' parameter holds no region: every label is 0.")
        return found
    if isinstance(labels, dict):
        labels = list(labels)
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(
            "The 'labels' parameter must be a non-empty sequence of int region labels "
            f"(or a dict label -> name). Got {labels!r} instead."
        )
    if (lab == 0).any():
        raise ValueError("The 'labels' parameter must not contain 0: label 0 is background.")
    if np.unique(lab).size != lab.size:
        raise ValueError("The 'labels' parameter must not repeat a label.")
    return lab.astype(np.int64)


def _columns(atlas_t, labels_t):
    """Column index of every atlas voxel; voxels outside ``labels`` -> len(labels)."""
    srt, perm = torch.sort(labels_t)
    loc = torch.searchsorted(srt, atlas_t).clamp_max(len(srt) - 1)
    hit = srt[loc] == atlas_t
    return torch.where(hit, perm[loc], len(srt))


def region_sums(relevance, atlas, labels):
    """Per-region sums and voxel counts, shapes (n, n_labels), as tensors."""
    a = relevance
    n = a.shape[0]
    atlas_t = torch.as_tensor(atlas, device=a.device)
    target = squeezed_shape(a.shape[1:])
    shared = squeezed_shape(atlas.shape) == target
    if not shared and not (atlas.shape[0] == n and squeezed_shape(atlas.shape[1:]) == target):
        raise ValueError(
            "The 'atlas' parameter must have one sample's shape or the relevance's "
            f"shape. Got atlas of shape {atlas.shape} and relevance of shape "
            f"{tuple(a.shape)} instead."
        )
    L = len(labels)
    labels_t = torch.as_tensor(labels, device=a.device)
    cols = _columns(atlas_t.reshape(1 if shared else n, -1), labels_t)
    flat = a.reshape(n, -1).to(torch.float64)
    cols = cols.expand(n, -1)
    sums = torch.zeros(n, L + 1, dtype=torch.float64, device=a.device)
    sums.scatter_add_(1, cols, flat)
    counts = torch.zeros(n, L + 1, dtype=torch.float64, device=a.device)
    counts.scatter_add_(1, cols, torch.ones_like(flat))
    return sums[:, :L], counts[:, :L]


def _density(sums, counts):
    empty = (counts == 0).cpu().numpy()
    dens = to_numpy(sums / torch.where(counts == 0, 1.0, counts))
    dens[empty] = np.nan
    return dens, empty


def region_relevance(relevance, atlas, *, statistic="sum", reference=None, labels=None):
    r"""Relevance per atlas region, per sample.

    With :math:`\Omega_l` the voxels of region :math:`l` and :math:`R` one
    relevance map:

    - ``"sum"``: :math:`\sum_{i \in \Omega_l} R_i`, the relevance mass of the
      region;
    - ``"density"``: :math:`\frac{1}{|\Omega_l|}\sum_{i \in \Omega_l} R_i`,
      so large regions do not dominate;
    - ``"gain"``: the density over the mean density of a reference group
      (Böhle et al. 2019's *relevance gain*, e.g. patients over controls).
      The mean of a group's gains is the group's mean density over the
      reference's mean density.

    Parameters
    ----------
    relevance : array-like or Tensor of shape (n_samples, ...)
        Relevance maps (a singleton channel axis is allowed).
    atlas : array-like of int
        Label image of one sample's shape (shared by all samples) or of the
        relevance's shape (one atlas per sample, e.g. in subject space).
        Label 0 is background and is excluded.
    statistic : {"sum", "density", "gain"}, default="sum"
    reference : array-like, optional
        Required for ``"gain"``: relevance maps of the reference group
        (m_samples, ...) on a shared atlas, or the reference's mean density
        per region, shape (n_regions,).
    labels : sequence of int or dict, optional
        Regions to report, in this order (a dict maps label to name). By
        default every non-zero label of the atlas, sorted.

    Returns
    -------
    ndarray of shape (n_samples, n_regions)
        NaN (with a warning) for densities of regions absent from an atlas
        and for gains over a zero reference.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.metrics import region_relevance
    >>> relevance = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> atlas = np.array([1, 1, 2, 0])
    >>> region_relevance(relevance, atlas)
    array([[3., 3.]])
    >>> region_relevance(relevance, atlas, statistic="density")
    array([[1.5, 3. ]])
    """
    check_choice(statistic, "statistic", "region_relevance", STATISTICS)
    a = as_batch(relevance, "relevance", min_ndim=1)
    atlas = check_atlas(atlas)
    labels = region_labels(atlas, labels)
    if statistic == "gain" and reference is None:
        raise ValueError(
            "The 'reference' parameter of region_relevance is required for "
            "statistic='gain' (relevance maps of the reference group)."
        )
    sums, counts = region_sums(a, atlas, labels)
    if statistic == "sum":
        return to_numpy(sums)
    dens, empty = _density(sums, counts)
    if statistic == "density":
        return nan_where(dens, empty, "region density", "region absent from the atlas")
    ref = reference_density(reference, atlas, labels)
    zero = np.broadcast_to(ref == 0, dens.shape) | empty
    gain = dens / np.where(ref == 0, 1.0, ref)
    return nan_where(gain, zero, "relevance gain", "zero reference density or absent region")


def reference_density(reference, atlas, labels):
    """Mean density per region of a reference group (or a given vector)."""
    ref = to_numpy_numeric(reference, "reference").astype(np.float64)
    if ref.ndim == 1:
        if ref.shape[0] != len(labels):
            raise ValueError(
                "The 'reference' parameter, given as one mean density per region, must "
                f"have {len(labels)} values. Got {ref.shape[0]} instead."
            )
        return ref
    if squeezed_shape(atlas.shape) != squeezed_shape(ref.shape[1:]):
        raise ValueError(
            "The 'reference' parameter must be relevance maps (m_samples, ...) on a "
            f"shared atlas of shape {atlas.shape}. Got shape {ref.shape} instead."
        )
    ref_t = as_batch(ref, "reference", min_ndim=1)
    sums, counts = region_sums(ref_t, atlas, labels)
    dens, _ = _density(sums, counts)
    return dens.mean(0)


def fingerprint_similarity(regions_a, regions_b=None):
    """Cosine similarity between per-region relevance vectors ("fingerprints").

    Parameters
    ----------
    regions_a : array-like of shape (n_a, n_regions)
        One vector per patient, e.g. from :func:`region_relevance`.
    regions_b : array-like of shape (n_b, n_regions), optional
        Defaults to ``regions_a`` (the patients' similarity matrix).

    Returns
    -------
    ndarray of shape (n_a, n_b)
        Cosine similarities in [-1, 1]; NaN (with a warning) for rows that
        are zero everywhere.

    Examples
    --------
    >>> from sklearn_relevance.metrics import fingerprint_similarity
    >>> fingerprint_similarity([[1.0, 0.0], [1.0, 1.0]]).round(3)
    array([[1.   , 0.707],
           [0.707, 1.   ]])
    """
    a = as_batch(regions_a, "regions_a", dtype=torch.float64)
    b = a if regions_b is None else as_batch(
        regions_b, "regions_b", device=a.device, dtype=torch.float64
    )
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            "Fingerprints must be 2D (n_samples, n_regions) with the same number of "
            f"regions. Got shapes {tuple(a.shape)} and {tuple(b.shape)} instead."
        )
    na, nb = a.norm(dim=1), b.norm(dim=1)
    sim = (a @ b.T) / torch.outer(torch.where(na == 0, 1.0, na), torch.where(nb == 0, 1.0, nb))
    zero = (na == 0).cpu().numpy()[:, None] | (nb == 0).cpu().numpy()[None, :]
    return nan_where(to_numpy(sim), zero, "fingerprint_similarity", "zero fingerprint")
