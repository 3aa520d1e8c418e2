"""Axial, coronal and sagittal slices of 3D relevance over its scan, for one
map or a grid of explainers, drawn in world orientation from the affine.

Re-exported by :mod:`sklearn_relevance.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._common import _pyplot, _to_numpy

__all__ = ["plot_orthogonal_slices"]

_VIEWS = (("axial", "S"), ("coronal", "A"), ("sagittal", "R"))
_OPPOSITE = {"R": "L", "A": "P", "S": "I"}


def _volume3d(a, name):
    """A 3D array from a Volume, an array (I, J, K) or one with leading singleton axes."""
    affine = getattr(a, "affine", None)
    a = _to_numpy(getattr(a, "data", a))
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(
            f"The '{name}' parameter of plot_orthogonal_slices must be a 3D volume "
            f"(I, J, K), with optional leading axes of size 1. Got shape {a.shape} instead."
        )
    return a.astype(np.float64), affine


def _world_axes(affine):
    """For each view, (voxel axis fixed, flip of each displayed axis) from the affine."""
    if affine is None:
        codes = ("R", "A", "S")
    else:
        from ..volumes import orientation_codes

        codes = orientation_codes(affine)
    axis_of = {}
    for j, c in enumerate(codes):
        positive = c if c in _OPPOSITE else next(k for k, v in _OPPOSITE.items() if v == c)
        axis_of[positive] = (j, c != positive)
    return axis_of


def _view(data, axis_of, view_code, index):
    """The 2D slice of a view, rows bottom-to-top in the vertical world axis."""
    fixed = axis_of[view_code][0]
    horizontal, vertical = {"S": ("R", "A"), "A": ("R", "S"), "R": ("A", "S")}[view_code]
    (h, hflip), (v, vflip) = axis_of[horizontal], axis_of[vertical]
    sl = np.take(data, index, axis=fixed)
    # remaining axes of sl are the other two voxel axes in order
    rest = [ax for ax in range(3) if ax != fixed]
    img = sl if rest.index(h) == 0 else sl.T  # (horizontal, vertical)
    if hflip:
        img = img[::-1]
    if vflip:
        img = img[:, ::-1]
    return img.T, (h, v)  # rows = vertical axis (origin lower)


def plot_orthogonal_slices(scan, relevance, *, cut=None, affine=None, threshold=0.1,
                           shared_scale=False, cmap=None, alpha=0.8,
                           colorbar_label="relevance", figsize=None, dpi=150):
    """Axial, coronal and sagittal slices of relevance over its scan.

    One row per map (one map, or a grid of explainers as a dict), three
    columns of views through one voxel, each map over the scan in grey.
    Signed maps use a diverging colour map on a symmetric scale; maps with
    no negative value a one-sided scale from 0. Each row has a colour bar
    labelled with the map's name and ``colorbar_label``.

    Parameters
    ----------
    scan : Volume or array-like of shape (I, J, K)
        The background (leading axes of size 1 are dropped, so one sample of
        ``(n, 1, D, H, W)`` input works).
    relevance : array-like of the scan's shape, or dict of str to such arrays
        One map, or one per explainer (``{"lrp": R1, "ig": R2}``).
    cut : (int, int, int) or None, default=None
        The voxel the three slices go through; ``None`` takes the voxel of
        largest ``|relevance|`` of the first map.
    affine : array-like of shape (4, 4) or None, default=None
        Voxel-to-world affine (taken from ``scan`` when it is a Volume); it
        says which voxel axis is left-right, posterior-anterior and
        inferior-superior, and views are drawn with right, anterior and
        superior to the right and top. ``None``: voxel axes are (x, y, z).
    threshold : float, default=0.1
        Overlay voxels with ``|relevance|`` below this fraction of the map's
        scale are transparent.
    shared_scale : bool, default=False
        One scale for all maps (their largest ``|relevance|``); by default
        each map has its own.
    cmap : str or None, default=None
        Colour map of the maps; ``"RdBu_r"`` for signed maps and ``"hot"``
        for non-negative ones by default.
    alpha : float, default=0.8
        Opacity of the overlay.
    colorbar_label : str, default="relevance"
    figsize : (float, float) or None, default=None
    dpi : int, default=150

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.plotting import plot_orthogonal_slices
    >>> scan = np.random.default_rng(0).normal(size=(10, 12, 8))
    >>> fig = plot_orthogonal_slices(scan, {"gradient": scan, "lrp": np.abs(scan)},
    ...                              cut=(4, 5, 3))
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['axial (z = 3)', 'coronal (y = 5)', 'sagittal (x = 4)']
    >>> fig.axes[-1].get_ylabel()
    'lrp: relevance (one-sided, >= 0)'
    """
    owner = "plot_orthogonal_slices"
    plt = _pyplot(owner)
    background, scan_affine = _volume3d(scan, "scan")
    affine = scan_affine if affine is None else np.asarray(affine, dtype=np.float64)
    maps = dict(relevance) if isinstance(relevance, Mapping) else {"": relevance}
    if not maps:
        raise ValueError(
            f"The 'relevance' parameter of {owner} must be a map or a non-empty dict of "
            "maps. Got an empty dict instead."
        )
    maps = {str(k): _volume3d(v, "relevance")[0] for k, v in maps.items()}
    bad = {k: m.shape for k, m in maps.items() if m.shape != background.shape}
    if bad:
        raise ValueError(
            f"The 'relevance' parameter of {owner} must be on the scan's grid "
            f"{background.shape}. Got {bad} instead."
        )
    if any(not np.isfinite(m).all() for m in maps.values()):
        raise ValueError(f"The 'relevance' parameter of {owner} holds NaN or infinite values.")
    first = next(iter(maps.values()))
    if cut is None:
        cut = np.unravel_index(int(np.argmax(np.abs(first))), first.shape)
    cut = tuple(int(c) for c in cut)
    if len(cut) != 3 or any(not 0 <= c < s for c, s in zip(cut, background.shape)):
        raise ValueError(
            f"The 'cut' parameter of {owner} must be a voxel (i, j, k) inside "
            f"{background.shape}. Got {cut!r} instead."
        )
    axis_of = _world_axes(affine)
    spacing = (np.linalg.norm(affine[:3, :3], axis=0) if affine is not None
               else np.ones(3))
    scales = {k: float(np.abs(m).max()) or 1.0 for k, m in maps.items()}
    if shared_scale:
        top = max(scales.values())
        scales = dict.fromkeys(scales, top)
    rows = len(maps)
    fig, axes = plt.subplots(rows, 3, squeeze=False, dpi=dpi, constrained_layout=True,
                             figsize=figsize or (8.2, 2.7 * rows))
    names = {"R": "x", "A": "y", "S": "z"}
    for r, (label, m) in enumerate(maps.items()):
        signed = bool((m < 0).any())
        vmax = scales[label]
        cm = cmap or ("RdBu_r" if signed else "hot")
        kw = {"vmin": -vmax if signed else 0.0, "vmax": vmax}
        image = None
        for c, (view, code) in enumerate(_VIEWS):
            ax = axes[r, c]
            index = cut[axis_of[code][0]]
            bg, (h, v) = _view(background, axis_of, code, index)
            over, _ = _view(m, axis_of, code, index)
            aspect = spacing[v] / spacing[h]
            ax.imshow(bg, cmap="gray", origin="lower", aspect=aspect)
            shown = np.ma.masked_where(np.abs(over) < threshold * vmax, over)
            image = ax.imshow(shown, cmap=cm, origin="lower", aspect=aspect, alpha=alpha, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{view} ({names[code]} = {index})", fontsize=8)
            ax.set_xlabel({"S": "R \u2192", "A": "R \u2192", "R": "A \u2192"}[code], fontsize=7)
            if c == 0 and label:
                ax.set_ylabel(label.replace("_", " "), fontsize=8)
        cb = fig.colorbar(image, ax=axes[r, :], shrink=0.85, aspect=25)
        text = f"{colorbar_label} (one-sided, >= 0)" if not signed else colorbar_label
        cb.set_label(f"{label}: {text}" if label else text, fontsize=7)
        cb.ax.tick_params(labelsize=6)
    return fig
