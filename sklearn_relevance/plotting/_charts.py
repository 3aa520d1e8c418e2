"""Charts of attribution studies: the metric table as bar panels, images
beside their relevance maps, per-region relevance as bars.

Re-exported by :mod:`sklearn_relevance.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._common import _pyplot, _to_numpy

__all__ = ["plot_comparison", "plot_attributions", "plot_region_relevance"]


def plot_comparison(table, *, metrics=None, ncols=None, figsize=None, color="C0",
                    highlight="C3", dpi=150):
    """Point-and-interval chart of a :func:`~sklearn_relevance.evaluation.compare_explainers` table.

    One panel per metric; a marker per explainer at its mean with its
    interval (``<metric>_ci_low`` / ``<metric>_ci_high``) as a horizontal
    line. The best explainer of a panel (highest mean) is highlighted only
    when its interval does not overlap any other explainer's interval: a
    "winner" inside overlapping intervals is not one. Each panel's axis spans
    the intervals (with a margin), not 0 to the maximum, so ROC-AUCs of
    0.90-0.99 stay apart; a line marks 0 when the range crosses it.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of ``compare_explainers``.
    metrics : list of str or None, default=None
        Metrics to draw (the table's metric columns by default).
    ncols : int or None, default=None
        Panels per row (all in one row by default).
    figsize : (float, float) or None, default=None
    color, highlight : matplotlib colours, default="C0", "C3"
        Markers, and the best one of a panel (only when its interval is
        apart from every other interval).
    dpi : int, default=150
        Resolution of the figure (print quality is 150 or more).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_relevance.plotting import plot_comparison
    >>> table = pd.DataFrame({"auc": [0.8, 0.6], "auc_ci_low": [0.7, 0.5],
    ...                       "auc_ci_high": [0.9, 0.7]}, index=["ig", "gradient"])
    >>> fig = plot_comparison(table)
    >>> len(fig.axes)
    1
    """
    plt = _pyplot("plot_comparison")
    columns = list(getattr(table, "columns", []))
    found = [c for c in columns if not c.endswith(("_ci_low", "_ci_high"))]
    metrics = found if metrics is None else list(metrics)
    missing = [m for m in metrics if m not in columns]
    if not metrics or missing:
        raise ValueError(
            "The 'metrics' parameter of plot_comparison must name metric columns of "
            f"the table {found}. Got {missing or metrics!r} instead."
        )
    ncols = len(metrics) if ncols is None else int(ncols)
    nrows = -(-len(metrics) // ncols)
    labels = [str(i) for i in table.index]
    height = 0.35 * len(labels) + 1.2
    figsize = figsize or (3.2 * ncols, height * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False,
                             sharey=True, constrained_layout=True, dpi=dpi)
    ypos = np.arange(len(labels))
    for ax, metric in zip(axes.ravel(), metrics):
        mean = table[metric].to_numpy(dtype=float)
        low = table.get(f"{metric}_ci_low", table[metric]).to_numpy(dtype=float)
        high = table.get(f"{metric}_ci_high", table[metric]).to_numpy(dtype=float)
        colors = [color] * len(labels)
        best = _separate_best(mean, low, high)
        if best is not None:
            colors[best] = highlight
        err = np.vstack([np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)])
        ax.errorbar(mean, ypos, xerr=np.nan_to_num(err), fmt="none", ecolor="0.3",
                    elinewidth=1.0, capsize=2)
        ax.scatter(mean, ypos, c=colors, s=18, zorder=3)
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_yticks(ypos, labels, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        lo_hi = np.concatenate([low[np.isfinite(low)], high[np.isfinite(high)],
                                mean[np.isfinite(mean)]])
        if lo_hi.size:
            a, b = float(lo_hi.min()), float(lo_hi.max())
            pad = 0.08 * (b - a) if b > a else max(abs(a) * 0.05, 1e-3)
            ax.set_xlim(a - pad, b + pad)
            if a - pad < 0 < b + pad:
                ax.axvline(0, color="k", lw=0.5)
        ax.grid(axis="x", lw=0.3, alpha=0.5)
    axes.ravel()[0].invert_yaxis()  # shared y axis: first explainer on top
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    return fig


def _separate_best(mean, low, high):
    """Index of the highest mean if its interval overlaps no other one, else None."""
    finite = np.isfinite(mean)
    if not finite.any():
        return None
    best = int(np.nanargmax(mean))
    others = finite.copy()
    others[best] = False
    if not others.any():
        return best
    lo_best = low[best] if np.isfinite(low[best]) else mean[best]
    hi_others = np.where(np.isfinite(high), high, mean)[others]
    return best if bool((hi_others < lo_best).all()) else None


def _slice(a, slice_index):
    """2D view of one image (c, H, W) or volume (c, D, H, W): channel max, mid slice."""
    a = a.max(0) if a.shape[0] > 1 else a[0]
    if a.ndim == 3:
        idx = a.shape[0] // 2 if slice_index is None else int(slice_index)
        a = a[idx]
    return a


def plot_attributions(X, relevances, *, masks=None, n_images=4, indices=None,
                      slice_index=None, cmap="RdBu_r", figsize=None, shared_scale=False,
                      colorbar=True, dpi=150):
    """Images beside their relevance maps, one column per explainer.

    Parameters
    ----------
    X : array-like of shape (n, c, H, W) or (n, c, D, H, W)
        Images (3D volumes are shown at one slice of the first spatial axis).
    relevances : dict of str to array-like of X's shape
        Relevance per explainer label (e.g. ``estimator.explain(X, explainer=...)``).
    masks : array-like of bool or None, default=None
        Ground truth of X's shape (or without the channel axis), outlined.
    n_images : int, default=4
        Rows, taken from the start (ignored when ``indices`` is given).
    indices : sequence of int or None, default=None
        Which samples to show.
    slice_index : int or None, default=None
        Slice of 3D volumes (the middle one by default).
    cmap : str, default="RdBu_r"
        Colour map of the relevance, symmetric around 0.
    figsize : (float, float) or None, default=None
    shared_scale : bool, default=False
        One colour scale for every map of an explainer (its largest
        ``|relevance|`` over the rows shown), so rows can be compared; by
        default each map is scaled to its own largest ``|relevance|``.
    colorbar : bool, default=True
        A colour bar per explainer column (its shared scale, or the scale
        of the last row's map with ``shared_scale=False``, then labelled
        "per-map scale").
    dpi : int, default=150
        Resolution of the figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.plotting import plot_attributions
    >>> X = np.random.default_rng(0).normal(size=(2, 1, 8, 8))
    >>> fig = plot_attributions(X, {"input": X}, masks=X > 1, colorbar=False)
    >>> len(fig.axes)
    4
    >>> fig = plot_attributions(X, {"input": X}, shared_scale=True)
    >>> len(fig.axes)  # four panels and one colour bar
    5
    """
    plt = _pyplot("plot_attributions")
    X = _to_numpy(X)
    if not isinstance(relevances, Mapping) or not relevances:
        raise ValueError(
            "The 'relevances' parameter of plot_attributions must be a non-empty dict "
            f"{{label: relevance}}. Got {type(relevances).__name__} instead."
        )
    rel = {k: _to_numpy(v) for k, v in relevances.items()}
    bad = {k: v.shape for k, v in rel.items() if v.shape != X.shape}
    if X.ndim not in (4, 5) or bad:
        raise ValueError(
            "plot_attributions needs X of shape (n, c, H, W) or (n, c, D, H, W) and "
            f"relevances of X's shape {X.shape}. Got {bad or X.shape} instead."
        )
    if masks is not None:
        masks = _to_numpy(masks).astype(bool)
        if masks.ndim == X.ndim - 1:
            masks = masks[:, None]
        if masks.shape[0] != X.shape[0] or masks.shape[2:] != X.shape[2:]:
            raise ValueError(
                f"The 'masks' parameter of plot_attributions must have X's shape "
                f"{X.shape}. Got {masks.shape} instead."
            )
    idx = list(range(min(int(n_images), len(X)))) if indices is None else list(indices)
    ncols = 1 + len(rel)
    fig, axes = plt.subplots(len(idx), ncols, squeeze=False,
                             figsize=figsize or (1.6 * ncols + 0.4 * bool(colorbar),
                                                 1.6 * len(idx)),
                             constrained_layout=True, dpi=dpi)
    shared = {label: float(np.nanmax(np.abs(np.stack([_slice(r[i], slice_index)
                                                       for i in idx])))) or 1.0
              for label, r in rel.items()} if shared_scale else {}
    images = {}
    for row, i in enumerate(idx):
        panels = [("image", _slice(X[i], slice_index), "gray", None)]
        for label, r in rel.items():
            m = _slice(r[i], slice_index)
            vmax = shared.get(label) or float(np.abs(m).max()) or 1.0
            panels.append((label, m, cmap, vmax))
        for col, (label, img, cm, vmax) in enumerate(panels):
            ax = axes[row, col]
            kw = {} if vmax is None else {"vmin": -vmax, "vmax": vmax}
            im = ax.imshow(img, cmap=cm, **kw)
            if vmax is not None:
                images[col] = im
            if masks is not None:
                mk = _slice(masks[i].astype(float), slice_index)
                if mk.any() and not mk.all():
                    ax.contour(mk, levels=[0.5], colors="lime", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label.replace("_", " "), fontsize=8)
    if colorbar:
        for col, im in images.items():
            cb = fig.colorbar(im, ax=axes[:, col], shrink=0.8, aspect=30)
            cb.ax.tick_params(labelsize=6)
            if not shared_scale:
                cb.set_label("per-map scale (last row)", fontsize=6)
    return fig


def plot_region_relevance(values, names, *, top=15, ax=None, xlabel="relevance",
                          reference=None):
    """Horizontal bars of per-region relevance, largest first.

    Parameters
    ----------
    values : array-like of shape (n_regions,)
        One value per region (e.g. the gain of
        :func:`~sklearn_relevance.metrics.region_relevance`).
    names : sequence of str of length n_regions
        Region names.
    top : int, default=15
        Number of regions shown.
    ax : matplotlib Axes or None, default=None
    xlabel : str, default="relevance"
    reference : float or None, default=None
        Draw a vertical line there (e.g. 1 for a gain).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from sklearn_relevance.plotting import plot_region_relevance
    >>> ax = plot_region_relevance([0.1, 2.0, 0.5], ["a", "b", "c"], top=2)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['b', 'c']
    """
    plt = _pyplot("plot_region_relevance")
    values = _to_numpy(values).astype(float).ravel()
    names = [str(n) for n in names]
    if len(names) != values.shape[0]:
        raise ValueError(
            "The 'names' parameter of plot_region_relevance must hold one name per "
            f"value ({values.shape[0]}). Got {len(names)} instead."
        )
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[: int(top)]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 0.22 * len(order) + 0.9), constrained_layout=True)
    ypos = np.arange(len(order))
    ax.barh(ypos, values[order], color="C1")
    ax.set_yticks(ypos, [names[i].replace("_", " ") for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=8)
    if reference is not None:
        ax.axvline(reference, color="k", lw=0.6, ls="--")
    return ax
