"""Transformers: inputs to relevance maps, relevance maps to region features.

:class:`RelevanceTransformer` maps X to the relevance an estimator assigns to
it, so attributions can feed later pipeline steps (clustering patients by
what the network looks at). :class:`RegionRelevance` reduces relevance maps
to one value per atlas region (brain regions, organs), with region names as
feature names.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import (
    _check_feature_names,
    _check_feature_names_in,
    check_is_fitted,
)

from ._explain import explain
from ._validation import as_batch, check_choice, squeezed_shape, to_numpy_numeric
from .metrics.regions import (
    STATISTICS,
    check_atlas,
    reference_density,
    region_labels,
    region_relevance,
)

__all__ = ["RelevanceTransformer", "RegionRelevance"]


def _record_input(est, X, reset, *, names=True):
    """Feature names and ``n_features_in_`` for 2D array-like X (not for dicts).

    ``names=False`` when the caller checked the names of X before converting
    it to an array (which has none).
    """
    if isinstance(X, Mapping):
        return
    if names:
        _check_feature_names(est, X, reset=reset)
    shape = X.shape if hasattr(X, "shape") else np.asarray(X).shape
    if reset:
        est._sample_shape = tuple(shape[1:])
        if len(shape) == 2:
            est.n_features_in_ = shape[1]
    elif len(shape) == 2 and hasattr(est, "n_features_in_") and shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {shape[1]} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input."
        )


def _prefixed_names(est, input_features, prefix):
    check_is_fitted(est)
    if not hasattr(est, "n_features_in_"):
        raise ValueError(
            f"{type(est).__name__}.get_feature_names_out applies to 2D inputs "
            f"(n_samples, n_features) only; it was fitted on samples of shape "
            f"{getattr(est, '_sample_shape', None)}."
        )
    names = _check_feature_names_in(est, input_features)
    return np.asarray([f"{prefix}{name}" for name in names], dtype=object)


class RelevanceTransformer(TransformerMixin, BaseEstimator):
    """Map inputs to their relevance maps under a fitted estimator.

    ``transform(X)`` returns ``estimator.explain(X, explainer=explainer,
    target=target)``: an array of X's shape (a dict of arrays for dict
    inputs). For 2D inputs the output has feature names
    ``relevance_<input feature>`` and ``set_output(transform="pandas")``
    returns a DataFrame; images and volumes keep their shape (pandas output
    does not apply to them).

    Parameters
    ----------
    estimator : estimator with an ``explain`` method
        A RelevanceNet estimator, or a Pipeline ending in one (X is then
        transformed by its earlier steps and the relevance refers to the
        final step's input).
    explainer : str or explainer object, optional
        Attribution method; ``None`` uses the estimator's
        ``relevance_explainer``.
    prefit : bool, default=True
        Use ``estimator`` as already fitted (``fit`` only checks it); with
        ``False``, ``fit`` fits a clone on ``(X, y)``.
    target : None, "predicted" or int, default=None
        Output explained, by the library's one target policy
        (:ref:`target-policy`): ``None`` (or ``"predicted"``) the class
        ``predict`` returns (or the regressor's output), an int that output
        for every sample.

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator used by ``transform``.
    n_features_in_ : int
        Number of features, for 2D inputs.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame X.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance import RelevanceNetClassifier
    >>> from sklearn_relevance.transformers import RelevanceTransformer
    >>> X = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> net = RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    >>> RelevanceTransformer(net, explainer="gradient").fit(X).transform(X).shape
    (40, 3)
    """

    def __init__(self, estimator, *, explainer=None, prefit=True, target=None):
        self.estimator = estimator
        self.explainer = explainer
        self.prefit = prefit
        self.target = target

    def fit(self, X, y=None, **fit_params):
        """Check (``prefit=True``) or fit (``prefit=False``) the estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or dict of arrays
        y : array-like of shape (n_samples,), optional
            Labels, for ``prefit=False``.
        **fit_params
            Passed to the estimator's ``fit``.

        Returns
        -------
        self
        """
        if not isinstance(self.prefit, (bool, np.bool_)):
            raise ValueError(
                "The 'prefit' parameter of RelevanceTransformer must be a bool. Got "
                f"{self.prefit!r} instead."
            )
        if self.target is not None and not (isinstance(self.target, str)
                                            and self.target == "predicted") and (
            isinstance(self.target, (bool, str)) or not isinstance(self.target, (int, np.integer))
        ):
            raise ValueError(
                "The 'target' parameter of RelevanceTransformer must be None, 'predicted' "
                f"or an int output index. Got {self.target!r} instead."
            )
        if not callable(getattr(self.estimator, "explain", None)) and not hasattr(
            self.estimator, "steps"
        ):
            raise ValueError(
                "The 'estimator' parameter of RelevanceTransformer must have an 'explain' "
                f"method. Got {type(self.estimator).__name__} instead."
            )
        if self.prefit:
            check_is_fitted(self.estimator)
            self.estimator_ = self.estimator
            if not isinstance(X, Mapping):  # names the estimator would refuse later
                _check_feature_names(self.estimator_, X, reset=False)
        else:
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        _record_input(self, X, reset=True)
        return self

    def transform(self, X):
        """Relevance maps of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or dict of arrays

        Returns
        -------
        ndarray of X's shape, or a dict of arrays for dict X
        """
        check_is_fitted(self, "estimator_")
        _record_input(self, X, reset=False)
        rel = explain(self.estimator_, X, explainer=self.explainer, target=self.target)
        dtype = getattr(X, "dtype", None)
        if isinstance(rel, np.ndarray) and dtype == np.float64:
            rel = rel.astype(np.float64)  # preserve the input's precision
        return rel

    def get_feature_names_out(self, input_features=None):
        """``relevance_<feature>`` for each input feature (2D inputs only).

        Parameters
        ----------
        input_features : array-like of str, optional

        Returns
        -------
        ndarray of str objects
        """
        return _prefixed_names(self, input_features, "relevance_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        return tags


class RegionRelevance(TransformerMixin, BaseEstimator):
    """Reduce relevance maps to one value per atlas region.

    See :func:`sklearn_relevance.metrics.region_relevance` for the
    statistics. For ``statistic="gain"`` the reference group is ``reference``
    when given, else the maps passed to ``fit`` (fit on controls, transform
    patients).

    Parameters
    ----------
    atlas : array-like of int or None
        Label image of one sample's shape (0 = background). ``None`` makes
        every feature (voxel) its own region: voxel-wise sums, densities and
        gains, with the sample shape taken from ``fit``.
    statistic : {"sum", "density", "gain"}, default="sum"
    labels : sequence of int or dict, optional
        Regions reported, in order; a dict maps label to region name
        (e.g. read from an atlas' CSV). Default: the atlas' non-zero labels.
    reference : array-like, optional
        Reference relevance maps (m_samples, ...) for ``"gain"``.

    Attributes
    ----------
    labels_ : ndarray of int
        The region labels, one per output column.
    region_names_ : ndarray of str
        Names of the regions (``region_<label>`` without a dict).
    atlas_ : ndarray of int
        The validated atlas (the per-feature labels when ``atlas=None``).
    reference_ : ndarray of shape (n_regions,)
        Mean density per region of the reference group (``"gain"`` only).
    n_features_in_ : int
        Number of features, for 2D (flattened) maps.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.transformers import RegionRelevance
    >>> atlas = np.array([[1, 1], [2, 0]])
    >>> maps = np.arange(8.0).reshape(2, 2, 2)
    >>> rr = RegionRelevance(atlas, labels={1: "left", 2: "right"}).fit(maps)
    >>> rr.transform(maps)
    array([[1., 2.],
           [9., 6.]])
    >>> rr.get_feature_names_out()
    array(['left', 'right'], dtype=object)
    """

    def __init__(self, atlas=None, *, statistic="sum", labels=None, reference=None):
        self.atlas = atlas
        self.statistic = statistic
        self.labels = labels
        self.reference = reference

    def fit(self, X, y=None):
        """Resolve the regions (and the reference densities for ``"gain"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Relevance maps.
        y : ignored

        Returns
        -------
        self
        """
        check_choice(self.statistic, "statistic", "RegionRelevance", STATISTICS)
        _check_feature_names(self, X, reset=True)  # a DataFrame's names, before numpy
        X = to_numpy_numeric(X, "X")
        as_batch(X, "X", min_ndim=2)
        if self.atlas is None:
            shape = X.shape[1:]
            self.atlas_ = np.arange(1, int(np.prod(shape)) + 1).reshape(shape)
        else:
            self.atlas_ = check_atlas(self.atlas)
        atlas = self.atlas_
        self.labels_ = region_labels(atlas, self.labels)
        names = self.labels if isinstance(self.labels, Mapping) else {}
        self.region_names_ = np.asarray(
            [str(names.get(int(lab), f"region_{lab}")) for lab in self.labels_], dtype=object)
        _record_input(self, X, reset=True, names=False)
        if self.statistic == "gain":
            ref = X if self.reference is None else self.reference
            self.reference_ = reference_density(ref, atlas, self.labels_)
        region_relevance(X[:1], atlas, labels=self.labels_)  # shape check before use
        return self

    def transform(self, X):
        """Per-region statistic of each relevance map.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples, n_regions)
        """
        check_is_fitted(self, "labels_")
        _check_feature_names(self, X, reset=False)  # names first, as scikit-learn
        X = to_numpy_numeric(X, "X")
        as_batch(X, "X", min_ndim=2)
        _record_input(self, X, reset=False, names=False)
        # a relevance map with singleton axes (the (n, 1, D, H, W) of explain)
        # pairs with its atlas as in fit and region_relevance
        if squeezed_shape(X.shape[1:]) != squeezed_shape(self.atlas_.shape):
            raise ValueError(
                f"X has samples of shape {tuple(X.shape[1:])}, but RegionRelevance was "
                f"fitted on samples of shape {tuple(self.atlas_.shape)}."
            )
        return region_relevance(X, self.atlas_, statistic=self.statistic,
                                reference=getattr(self, "reference_", None),
                                labels=self.labels_)

    def get_feature_names_out(self, input_features=None):
        """Region names, one per output column.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self, "labels_")
        return self.region_names_.copy()
