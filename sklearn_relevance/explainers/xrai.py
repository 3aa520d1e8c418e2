"""XRAI: attributions through regions (Kapishnikov et al. 2019).

XRAI over-segments the image at several scales, then adds regions greedily,
each time the one whose not-yet-covered pixels hold the highest mean base
attribution (integrated gradients by default). Every pixel of the result
holds the gain of the region that covered it, so thresholding the map at
its top ``k`` percent gives the ``k`` percent of the image XRAI ranks first.

The regions and the greedy rule are those of the PAIR ``saliency`` package's
``XRAI`` (``saliency.core.XRAI``, "full" algorithm), whose result this
implementation reproduces; the work is vectorised instead of looped: the
base attribution of a whole batch is one call of the base explainer (both
baselines at once), the candidate masks of an image are unpacked and dilated
as one tensor, and the greedy selection runs on all regions of all images of
a chunk together, with incremental gain updates (see :func:`greedy_regions`).
Only the Felzenszwalb segmentation itself (CPU) runs per image, in a compiled
kernel shared by the six scales (see ``_segmentation.py``), on ``n_jobs``
threads.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, StrOptions

from .._targets import check_target, repeat_target
from .._tensors import check_module_input, module_errors
from ._base import (
    BaseExplainer,
    get_explainer,
    wrapped_shares_module,
    wrapped_uses_layers,
)
from ._greedy_regions import _WORK_BUDGET, greedy_regions
from ._segmentation import PAIR_SCALES, PAIR_SHAPE, image_masks

__all__ = ["XRAI", "greedy_regions"]


class XRAI(BaseExplainer):
    """XRAI region attributions for 2D images (Kapishnikov et al. 2019).

    Parameters
    ----------
    explainer : str or explainer object, default="ig"
        Base attribution method (any name of
        :func:`~sklearn_relevance.explainers.get_explainer` or an object with
        ``explain``). Its attribution is merged over channels by the maximum,
        as in the PAIR package.
    n_steps : int or None, default=None
        Sets the base explainer's ``n_steps`` (PAIR uses 100); ``None``
        keeps the base explainer's own setting (50 for integrated gradients).
    baselines : {"auto", "min_max"} or None, default="auto"
        ``"min_max"`` runs the base explainer with two baselines, the
        constant images at each image's minimum ("black") and maximum
        ("white"), and averages the two attributions (PAIR's default); both
        run in one call on the doubled batch. It needs a base explainer with
        a ``baselines`` parameter. ``"auto"`` means ``"min_max"`` when
        ``explainer`` is the name of such an explainer (``"ig"``) and
        ``None`` otherwise; ``None`` uses the base explainer as configured
        (an explainer object keeps its own baselines under ``"auto"``).
    scales : sequence of float, default=(50, 100, 150, 250, 500, 1200)
        Felzenszwalb scales, one segmentation each (PAIR's values).
    sigma : float, default=0.8
        Gaussian smoothing of the Felzenszwalb segmentation.
    min_size : int, default=150
        Minimum segment size, in pixels of the segmented (resized) image.
    segment_shape : (int, int) or None, default=(224, 224)
        The image is resized to this shape for the segmentation and the
        segments back to the image (PAIR, so that ``scales`` and ``min_size``
        keep their meaning at any image size). ``None`` segments at the
        image's own size, with ``scales`` and ``min_size`` multiplied by the
        image's area over 224 x 224 and ``sigma`` by the square root of that
        ratio, so that regions have about the sizes PAIR's would: much faster
        for images smaller than 224 x 224, but not PAIR's exact regions.
    dilation_radius : int, default=5
        Each segment is dilated by a disk of this radius, so that regions
        overlap across edges.
    min_pixel_diff : int, default=50
        A region that would add fewer new pixels is dropped.
    area_threshold : float, default=1.0
        The selection stops once the covered fraction of the image exceeds
        this; the rest of the image is one last region valued by its mean
        attribution. Lower values only save time.
    batch_size : int or None, default=None
        Images per chunk of the region selection; ``None`` picks chunks
        within a 64 MiB budget for each of the two region-membership tensors.
    n_jobs : int or None, default=None
        Threads for the per-image segmentation (its compiled kernel, the
        edge sort and the resize release the GIL); ``None`` means 1, ``-1``
        all cores (joblib's convention).

    Notes
    -----
    Images are ``(n, channels, H, W)``. For the segmentation each image is
    rescaled as a whole (one minimum and maximum over all channels) to
    ``[-1, 1]``, and Felzenszwalb's algorithm compares pixels by the
    Euclidean distance between their channel vectors; a constant image gives
    one segment per scale.

    The result of :meth:`explain` has ``X``'s shape, the same map repeated
    over the channels. It equals PAIR's ``attribution_mask``: each pixel holds
    the gain of its region (the mean base attribution over the pixels the
    region added), so it sums to the base attribution's total (merged over
    channels). :meth:`explain_regions` returns the regions themselves, in
    rank order. XRAI is not differentiable (refused with ``create_graph=True``,
    i.e. for training penalties).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import XRAI
    >>> module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 2))
    >>> X = torch.rand(2, 1, 32, 32)
    >>> xrai = XRAI(explainer="gradient_x_input", segment_shape=None)
    >>> xrai.explain(module, X, target=1).shape
    torch.Size([2, 1, 32, 32])
    >>> regions = xrai.explain_regions(module, X, target=1)
    >>> bool(regions[0].sum(0).eq(1).all())  # the regions partition the image
    True
    """

    differentiable = False
    supports_dict = False
    input_ndims = (2,)

    _parameter_constraints = {
        "explainer": "no_validation",  # resolved by get_explainer
        "n_steps": [Interval(Integral, 1, None, closed="left"), None],
        "baselines": [StrOptions({"auto", "min_max"}), None],
        "scales": ["array-like"],
        "sigma": [Interval(Real, 0, None, closed="left")],
        "min_size": [Interval(Integral, 0, None, closed="left")],
        "segment_shape": [tuple, list, None],
        "dilation_radius": [Interval(Integral, 0, None, closed="left")],
        "min_pixel_diff": [Interval(Integral, 1, None, closed="left")],
        "area_threshold": [Interval(Real, 0, 1, closed="both")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
    }

    @property
    def uses_layers(self):
        """As the base explainer's (see :class:`BaseExplainer`)."""
        return wrapped_uses_layers(self.explainer)

    @property
    def shares_module(self):
        """As the base explainer's (see :class:`BaseExplainer`)."""
        return wrapped_shares_module(self.explainer)

    def __init__(self, *, explainer="ig", n_steps=None, baselines="auto",
                 scales=PAIR_SCALES, sigma=0.8, min_size=150, segment_shape=PAIR_SHAPE,
                 dilation_radius=5, min_pixel_diff=50, area_threshold=1.0,
                 batch_size=None, n_jobs=None):
        self.explainer = explainer
        self.n_steps = n_steps
        self.baselines = baselines
        self.scales = scales
        self.sigma = sigma
        self.min_size = min_size
        self.segment_shape = segment_shape
        self.dilation_radius = dilation_radius
        self.min_pixel_diff = min_pixel_diff
        self.area_threshold = area_threshold
        self.batch_size = batch_size
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ API
    def explain(self, module, X, target=None, *, create_graph=False,
                base_attribution=None):
        """XRAI map of ``module``'s ``target`` output at the images ``X``.

        Parameters
        ----------
        module : torch.nn.Module
        X : Tensor of shape (n, channels, H, W)
        target : None, int or LongTensor of shape (n,)
        create_graph : bool, default=False
            Must be False: XRAI is not differentiable.
        base_attribution : Tensor of X's shape or None, default=None
            A precomputed base attribution (skips the base explainer), as the
            PAIR package's ``base_attribution`` argument.

        Returns
        -------
        Tensor of X's shape
            Per-pixel region gains (PAIR's ``attribution_mask``), the same
            in every channel, in ``X``'s dtype.
        """
        values, _ = self._run(module, X, target, create_graph, base_attribution)
        return _as_input(values, X)

    def explain_regions(self, module, X, target=None, *, base_attribution=None,
                        return_attributions=False):
        """The regions XRAI selected, per image, most important first.

        The masks of an image are disjoint and cover it; mask ``k`` holds the
        pixels PAIR's flattened ``segments`` label ``k + 1`` (regions sorted
        by decreasing gain, the never-covered rest last). The union of the
        first ``k`` masks is the region-level top of the image, ready for a
        Dice score against an annotation mask.

        Parameters
        ----------
        module : torch.nn.Module
        X : Tensor of shape (n, channels, H, W)
        target : None, int or LongTensor of shape (n,)
        base_attribution : Tensor of X's shape or None, default=None
        return_attributions : bool, default=False
            Also return the result of :meth:`explain` (computed once for both).

        Returns
        -------
        regions : list of BoolTensor of shape (n_regions_i, H, W)
        attributions : Tensor of X's shape
            Only with ``return_attributions=True``.

        Examples
        --------
        >>> import torch
        >>> from sklearn_relevance.explainers import XRAI
        >>> module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> X = torch.rand(1, 1, 8, 8)
        >>> regions = XRAI(explainer="gradient", segment_shape=None,
        ...                min_pixel_diff=4).explain_regions(module, X, target=0)
        >>> top = regions[0][:2].any(0)  # the two best regions, for a Dice score
        >>> top.shape
        torch.Size([8, 8])
        """
        values, ranks = self._run(module, X, target, False, base_attribution)
        regions = []
        for rank in ranks:
            labels = torch.arange(1, int(rank.max()) + 1, device=rank.device)
            regions.append(rank.unsqueeze(0) == labels.view(-1, 1, 1))
        if return_attributions:
            return regions, _as_input(values, X)
        return regions

    def _explain(self, module, X, target, *, create_graph):
        return self.explain(module, X, target, create_graph=create_graph)

    # ------------------------------------------------------------ internals
    def _run(self, module, X, target, create_graph, base_attribution):
        """Validate, then return ``(values, ranks)`` of shape (n, H, W)."""
        base = self._check_call(module, X, target, create_graph, base_attribution)
        if base_attribution is None:
            with module_errors(X):
                base_attribution = self._base_attribution(base, module, X, target)
        attr = base_attribution.detach().to(X.device).amax(dim=1)
        masks = self._segment(X)
        n, height, width = attr.shape
        values = torch.empty(n, height, width, dtype=torch.float64, device=X.device)
        ranks = torch.empty(n, height, width, dtype=torch.long, device=X.device)
        for chunk in self._chunks(masks, height * width):
            values[chunk], ranks[chunk] = greedy_regions(
                masks[chunk], attr[chunk], min_pixel_diff=self.min_pixel_diff,
                area_threshold=self.area_threshold)
        return values, ranks

    def _check_call(self, module, X, target, create_graph, base_attribution):
        """Check parameters and inputs before any work; return the base explainer."""
        self._validate_params()
        self._check_explain(X, create_graph)
        check_module_input(module, X)
        check_target(target, X.shape[0])
        try:
            scales = np.asarray(self.scales, dtype=float).ravel()
        except (TypeError, ValueError):
            scales = np.zeros(0)
        if scales.size == 0 or not np.all(scales > 0):
            raise ValueError(
                "The 'scales' parameter of XRAI must be a non-empty sequence of "
                f"positive numbers. Got {self.scales!r} instead."
            )
        shape = self.segment_shape
        if shape is not None and not (
            len(shape) == 2 and all(isinstance(s, Integral) and s > 0 for s in shape)
        ):
            raise ValueError(
                "The 'segment_shape' parameter of XRAI must be None or a pair of "
                f"positive ints. Got {shape!r} instead."
            )
        if base_attribution is not None:
            if not torch.is_tensor(base_attribution) or tuple(
                    base_attribution.shape) != tuple(X.shape):
                got = (f"shape {tuple(base_attribution.shape)}"
                       if torch.is_tensor(base_attribution)
                       else type(base_attribution).__name__)
                raise ValueError(
                    "The 'base_attribution' parameter must be a tensor of X's shape "
                    f"{tuple(X.shape)}. Got {got} instead."
                )
            return None
        return self._base_explainer()

    def _base_explainer(self):
        """The configured base explainer (a copy when parameters are set)."""
        base = get_explainer(self.explainer, param_name="explainer")
        params = base.get_params() if hasattr(base, "get_params") else {}
        changes = {}
        if self.n_steps is not None:
            if "n_steps" not in params:
                raise ValueError(
                    "The 'n_steps' parameter of XRAI must be None for a base "
                    f"explainer without 'n_steps'. Got n_steps={self.n_steps!r} with "
                    f"explainer={self.explainer!r} instead."
                )
            changes["n_steps"] = self.n_steps
        if self.baselines == "min_max" and "baselines" not in params:
            raise ValueError(
                "The 'baselines' parameter of XRAI must be 'auto' or None for a base "
                f"explainer without 'baselines'. Got 'min_max' with "
                f"explainer={self.explainer!r} instead."
            )
        return clone(base).set_params(**changes) if changes else base

    def _min_max(self, base):
        """Whether the black and white baselines apply to ``base``."""
        has = "baselines" in (base.get_params() if hasattr(base, "get_params") else {})
        if self.baselines == "auto":
            return has and isinstance(self.explainer, str)
        return self.baselines == "min_max"

    def _base_attribution(self, base, module, X, target):
        """Base attribution of the batch, averaged over the min/max baselines."""
        if not self._min_max(base):
            return base.explain(module, X, target)
        n = X.shape[0]
        flat = X.detach().reshape(n, -1)
        low = flat.amin(1).view(n, 1, 1, 1).expand_as(X)
        high = flat.amax(1).view(n, 1, 1, 1).expand_as(X)
        both = clone(base).set_params(baselines=torch.cat([low, high]))
        attr = both.explain(module, torch.cat([X, X]), repeat_target(target, 2))
        return (attr[:n] + attr[n:]) / 2

    def _segment(self, X):
        """Candidate region masks of every image (list of BoolTensors)."""
        images = X.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
        shape = None if self.segment_shape is None else tuple(self.segment_shape)
        # at the image's own size, scales / min_size / sigma keep their meaning
        # for a 224 x 224 image: scaled by the area (length) ratio
        area = 1.0 if shape else X.shape[2] * X.shape[3] / float(np.prod(PAIR_SHAPE))
        kwargs = dict(
            scales=tuple(float(s) * area for s in np.ravel(self.scales)),
            sigma=float(self.sigma) * area**0.5,
            min_size=int(round(self.min_size * area)), segment_shape=shape,
            dilation_radius=int(self.dilation_radius), min_pixels=int(self.min_pixel_diff),
        )
        if self.n_jobs is None or len(images) < 2:
            masks = [image_masks(im, **kwargs) for im in images]
        else:
            from joblib import Parallel, delayed

            masks = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                delayed(image_masks)(im, **kwargs) for im in images)
        return [m.to(X.device) for m in masks]

    def _chunks(self, masks, n_pixels):
        """Slices of images whose region tensor (n, P, R) fits the budget."""
        limit = self.batch_size or len(masks)
        budget = _WORK_BUDGET
        start = 0
        while start < len(masks):
            stop, widest = start, 1
            while stop < len(masks) and stop - start < limit:
                widest_next = max(widest, masks[stop].shape[0])
                if stop > start and (stop - start + 1) * n_pixels * widest_next > budget:
                    break
                widest = widest_next
                stop += 1
            yield slice(start, stop)
            start = stop


def _as_input(values, X):
    """Per-pixel values (n, H, W) as a tensor of X's shape and dtype."""
    return values.to(X.dtype).unsqueeze(1).expand_as(X).contiguous()
