"""Figures of the studies: intervals over seeds, chance levels, labelled maps.

Every function returns the matplotlib figure it builds (the studies save it
with :func:`~sklearn_relevance.studies._common.save_figure`, which crops to
the drawn content), so a test can open it: :func:`figure_problems` lists
what a figure lacks (axis labels, a legend for its marks, colourbar labels).

Conventions: every axis says what it measures and its unit ("unitless" for
scores in [0, 1]); means carry their 95% interval over the replicates named
in the legend; chance levels are dashed lines with a legend entry; a map
that cannot be negative gets a one-sided colour scale from 0.
"""

from __future__ import annotations

import numpy as np

from ._common import DPI


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def interval_panels(panels, *, names, replicates, figsize=None):
    """One panel per quantity: a mean and its 95% interval per row, the
    replicates as grey points, the chance level as a dashed line.

    Parameters
    ----------
    panels : list of dict
        Each with ``values`` (replicates, rows) array, ``mean``, ``low``,
        ``high`` (rows,), ``xlabel`` (with the unit) and optionally
        ``chance`` (a float), ``chance_label``, ``ylabel`` and ``range``
        (the quantity's possible values: the intervals are clipped to it).
    names : list of str
        Row labels (same order in every panel).
    replicates : str
        What a grey point is, e.g. ``"one network (data seed, training seed)"``.
    """
    plt = _pyplot()
    n = len(panels)
    ncols = min(n, 2)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, dpi=DPI, constrained_layout=True,
                             figsize=figsize or (4.2 * ncols, 0.28 * len(names) * nrows + 1.6))
    ypos = np.arange(len(names))
    for ax, p in zip(axes.ravel(), panels):
        values = np.asarray(p["values"], float)
        for k in range(values.shape[0]):
            jitter = (k - (values.shape[0] - 1) / 2) * 0.25 / max(values.shape[0], 1)
            ax.scatter(values[k], ypos + jitter, s=5, color="0.65", zorder=2,
                       label=f"{replicates}" if k == 0 else None)
        mean, low, high = (np.asarray(p[k], float) for k in ("mean", "low", "high"))
        if p.get("range") is not None:  # an interval never leaves the quantity's range
            low, high = np.maximum(low, p["range"][0]), np.minimum(high, p["range"][1])
        err = np.vstack([mean - low, high - mean])
        ax.errorbar(mean, ypos, xerr=np.nan_to_num(err), fmt="o", ms=4, color="C0",
                    capsize=2.5, zorder=3, label="mean, 95% interval")
        if p.get("chance") is not None and np.isfinite(p["chance"]):
            ax.axvline(p["chance"], color="C3", ls="--", lw=1,
                       label=p.get("chance_label", "chance level"))
        ax.set_yticks(ypos, names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(p["xlabel"], fontsize=8)
        ax.set_ylabel(p.get("ylabel", "explainer"), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=7,
               frameon=False)
    return fig


def map_grid(images, maps, *, masks=None, col_titles=None, mask_label="mask (truth)",
             image_label="input (a.u.)", relevance_unit="a.u.", slice_index=None):
    """Images in the first row and one row of relevance maps per method.

    A method whose maps are all non-negative gets a one-sided scale from 0
    (``"magma"``); a signed one a symmetric diverging scale. Every row has
    its own labelled colourbar; the mask is outlined and named in a legend.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    def take(a):
        a = np.asarray(a, float)
        a = a.reshape((a.shape[0], -1) + a.shape[-2:]) if a.ndim > 3 else a
        if a.ndim == 4:  # channels or depth: the given slice, else the middle one
            idx = a.shape[1] // 2 if slice_index is None else slice_index
            a = a[:, idx] if a.shape[1] > 1 else a[:, 0]
        return a

    images = take(images)
    n = images.shape[0]
    rows = [("input", images)] + [(name, take(m)) for name, m in maps.items()]
    fig, axes = plt.subplots(len(rows), n, squeeze=False, dpi=DPI, constrained_layout=True,
                             figsize=(1.5 * n + 1.3, 1.45 * len(rows) + 0.4))
    outline = None if masks is None else take(masks)
    for r, (name, arr) in enumerate(rows):
        if r == 0:
            kw, cmap, label = {}, "gray", image_label
        elif np.nanmin(arr) >= 0:
            kw = {"vmin": 0.0, "vmax": float(np.nanmax(arr)) or 1.0}
            cmap, label = "magma", f"relevance ({relevance_unit}, non-negative)"
        else:
            v = float(np.nanmax(np.abs(arr))) or 1.0
            kw = {"vmin": -v, "vmax": v}
            cmap, label = "RdBu_r", f"relevance ({relevance_unit}, signed)"
        for c in range(n):
            ax = axes[r, c]
            im = ax.imshow(arr[c], cmap=cmap, **kw)
            if outline is not None and outline[c].any():
                ax.contour(outline[c] > 0.5, levels=[0.5], colors="C2", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
        cb = fig.colorbar(im, ax=axes[r, :], shrink=0.9, aspect=15)
        cb.set_label(label, fontsize=6)
        cb.ax.tick_params(labelsize=6)
    if outline is not None:
        fig.legend([Line2D([], [], color="C2", lw=0.8)], [mask_label], fontsize=7,
                   loc="outside lower center", frameon=False)
    return fig


def figure_problems(fig):
    """What a figure lacks: unlabelled axes or colourbars, marks without a legend.

    Axes that show an image (no ticks) need a row label instead of axis
    labels; colourbars need a label; a figure with lines, points or error
    bars needs a legend (on an axes or the figure).
    """
    problems = []
    colorbar_axes = {id(getattr(im, "colorbar", None) and im.colorbar.ax)
                     for ax in fig.axes for im in ax.images if im.colorbar is not None}
    marks = False
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        if id(ax) in colorbar_axes:
            label = ax.get_ylabel() or ax.get_xlabel()
            if not label:
                problems.append(f"colourbar {k} has no label")
            continue
        if ax.images:
            continue  # image panels: their rows are labelled, their colourbar checked
        if not ax.get_xlabel():
            problems.append(f"axes {k} has no x label")
        if not ax.get_ylabel():
            problems.append(f"axes {k} has no y label")
        marks = marks or bool(ax.lines or ax.collections or ax.patches)
    has_image = any(ax.images for ax in fig.axes)
    if has_image and not colorbar_axes:
        problems.append("image panels without a colourbar")
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    if marks and not legends:
        problems.append("marks without a legend")
    return problems
