"""Matplotlib figures of attribution studies (optional extra ``plot``).

* :func:`plot_comparison`: the table of :func:`~sklearn_relevance.evaluation.compare_explainers`
  as one bar panel per metric, with its intervals.
* :func:`plot_attributions`: images beside their relevance maps, with mask
  outlines (2D, or a slice of 3D volumes).
* :func:`plot_region_relevance`: per-region relevance (atlas regions) as bars.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._optional import require

__all__ = ["plot_comparison", "plot_attributions", "plot_region_relevance"]


def _pyplot(owner):
    return require("matplotlib.pyplot", owner=owner, package="matplotlib", extra="plot")


def _to_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def plot_comparison(table, *, metrics=None, ncols=None, figsize=None, color="C0",
                    highlight="C3"):
    """Bar chart of a :func:`~sklearn_relevance.evaluation.compare_explainers` table.

    One panel per metric; a bar per explainer with its interval
    (``<metric>_ci_low`` / ``<metric>_ci_high``) as an error bar; the best
    explainer of each panel is highlighted (highest value).

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
        Bars, and the best bar of each panel.

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
                             sharey=True, constrained_layout=True)
    ypos = np.arange(len(labels))
    for ax, metric in zip(axes.ravel(), metrics):
        mean = table[metric].to_numpy(dtype=float)
        low = table.get(f"{metric}_ci_low", table[metric]).to_numpy(dtype=float)
        high = table.get(f"{metric}_ci_high", table[metric]).to_numpy(dtype=float)
        colors = [color] * len(labels)
        if np.isfinite(mean).any():
            colors[int(np.nanargmax(mean))] = highlight
        err = np.vstack([np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)])
        ax.barh(ypos, np.nan_to_num(mean), xerr=np.nan_to_num(err), color=colors,
                capsize=2, error_kw={"elinewidth": 0.8})
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_yticks(ypos, labels, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.axvline(0, color="k", lw=0.5)
    axes.ravel()[0].invert_yaxis()  # shared y axis: first explainer on top
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    return fig


def _slice(a, slice_index):
    """2D view of one image (c, H, W) or volume (c, D, H, W): channel max, mid slice."""
    a = a.max(0) if a.shape[0] > 1 else a[0]
    if a.ndim == 3:
        idx = a.shape[0] // 2 if slice_index is None else int(slice_index)
        a = a[idx]
    return a


def plot_attributions(X, relevances, *, masks=None, n_images=4, indices=None,
                      slice_index=None, cmap="RdBu_r", figsize=None):
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
        Colour map of the relevance, symmetric around 0 per map.
    figsize : (float, float) or None, default=None

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.plotting import plot_attributions
    >>> X = np.random.default_rng(0).normal(size=(2, 1, 8, 8))
    >>> fig = plot_attributions(X, {"input": X}, masks=X > 1)
    >>> len(fig.axes)
    4
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
                             figsize=figsize or (1.6 * ncols, 1.6 * len(idx)),
                             constrained_layout=True)
    for row, i in enumerate(idx):
        panels = [("image", _slice(X[i], slice_index), "gray", None)]
        for label, r in rel.items():
            m = _slice(r[i], slice_index)
            vmax = float(np.abs(m).max()) or 1.0
            panels.append((label, m, cmap, vmax))
        for col, (label, img, cm, vmax) in enumerate(panels):
            ax = axes[row, col]
            kw = {} if vmax is None else {"vmin": -vmax, "vmax": vmax}
            ax.imshow(img, cmap=cm, **kw)
            if masks is not None:
                mk = _slice(masks[i].astype(float), slice_index)
                if mk.any() and not mk.all():
                    ax.contour(mk, levels=[0.5], colors="lime", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label.replace("_", " "), fontsize=8)
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
