"""skorch callbacks: attribution quality logged per epoch."""

from __future__ import annotations

import numpy as np
from skorch.callbacks import Callback
from skorch.utils import data_from_dataset

from ._masks import split_masks
from .metrics import available_relevance_scorers, get_relevance_scorer, make_relevance_scorer

__all__ = ["RelevanceScoring"]


class RelevanceScoring(Callback):
    """Log an attribution-quality metric per epoch into the net's history.

    Like skorch's ``EpochScoring``: at the end of every epoch the relevance
    of the validation split (or of the training data, or of ``X_valid``) is
    computed with ``net.explain`` and scored with a relevance scorer; the
    score goes to ``net.history`` under ``name``, with ``<name>_best``
    marking improvements (usable by ``EarlyStopping(monitor=name)`` or
    ``Checkpoint``).

    Parameters
    ----------
    metric : str or callable
        A name of :func:`~sklearn_relevance.metrics.available_relevance_scorers`
        (``neg_*`` names log negated values) or a metric function, as in
        :func:`~sklearn_relevance.metrics.make_relevance_scorer`.
    explainer : str or explainer object, optional
        Attribution method; ``None`` uses the net's ``relevance_explainer``.
    on_train : bool, default=False
        Score the training data instead of the validation split.
    name : str, optional
        History key; default ``"valid_<metric>"`` (``"train_<metric>"`` with
        ``on_train=True``).
    lower_is_better : bool, default=False
        Direction used for ``<name>_best``.
    X_valid, y_valid : array-like, optional
        Fixed data to score instead of the net's own split (pass their masks
        in ``metric_params``, aligned with ``X_valid``).
    metric_params : dict, optional
        Keyword arguments of the metric, e.g. ``{"masks": masks_valid}`` or
        ``{"steps": 10}``. A metric that takes ``masks`` and is not given
        them here scores the net's own split with the ``relevance_mask``
        passed to ``fit`` (the validation masks for the validation split);
        unannotated (NaN) samples are left out of the mean.

    Attributes
    ----------
    name_ : str
        The history key in use.
    best_score_ : float
        Best score so far.

    Examples
    --------
    >>> import numpy as np
    >>> from skorch.dataset import ValidSplit
    >>> from sklearn_relevance import RelevanceNetClassifier
    >>> from sklearn_relevance.callbacks import RelevanceScoring
    >>> X = np.random.default_rng(0).normal(size=(60, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> net = RelevanceNetClassifier(
    ...     max_epochs=2, random_state=0, train_split=ValidSplit(3),
    ...     callbacks=[RelevanceScoring("sparseness")]).fit(X, y)
    >>> len(net.history[:, "valid_sparseness"])
    2
    """

    def __init__(self, metric, explainer=None, on_train=False, name=None,
                 lower_is_better=False, X_valid=None, y_valid=None, metric_params=None):
        self.metric = metric
        self.explainer = explainer
        self.on_train = on_train
        self.name = name
        self.lower_is_better = lower_is_better
        self.X_valid = X_valid
        self.y_valid = y_valid
        self.metric_params = metric_params

    def initialize(self):
        """Resolve the scorer and the history key; reset the best score."""
        params = dict(self.metric_params or {})
        scorer_kwargs = {k: params.pop(k) for k in ("masks", "importances") if k in params}
        if isinstance(self.metric, str):
            if self.metric not in available_relevance_scorers():
                raise ValueError(
                    "The 'metric' parameter of RelevanceScoring must be a callable or a "
                    f"str among {available_relevance_scorers()}. Got {self.metric!r} instead."
                )
            self.scorer_ = get_relevance_scorer(self.metric, explainer=self.explainer, **params)
            label = self.metric
        elif callable(self.metric):
            self.scorer_ = make_relevance_scorer(self.metric, explainer=self.explainer, **params)
            label = getattr(self.metric, "__name__", "relevance_score")
        else:
            raise ValueError(
                "The 'metric' parameter of RelevanceScoring must be a callable or a str. "
                f"Got {type(self.metric).__name__} instead."
            )
        self._metadata = scorer_kwargs
        self.name_ = self.name or f"{'train' if self.on_train else 'valid'}_{label}"
        self.best_score_ = np.inf if self.lower_is_better else -np.inf
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Refuse, before epoch 1, training masks the metric cannot score.

        The localisation metrics compare relevance with binary regions;
        training masks may weight the penalty with values between 0 and 1,
        which such a metric cannot take.
        """
        if X is None or "masks" in self._metadata or "masks" not in getattr(
                self.scorer_, "_params", ()):
            return
        _, masks = split_masks(X)
        if masks is None:
            return
        for m in (masks.values() if isinstance(masks, dict) else [masks]):
            m = m.cpu().numpy() if hasattr(m, "cpu") else np.asarray(m)
            values = m[~np.isnan(m)] if m.dtype.kind == "f" else m
            if values.size and not np.isin(values, (0, 1)).all():
                raise ValueError(
                    f"RelevanceScoring({self.metric!r}) scores relevance against the "
                    "training masks, which must then be binary (0 or 1, NaN for an "
                    "unannotated sample). Got the relevance_mask values "
                    f"{np.unique(values)[:5].tolist()} (fractional weights) instead. "
                    "Pass binary masks as metric_params={'masks': ...} with X_valid, "
                    "or binarise the relevance_mask."
                )

    def _data(self, net, dataset_train, dataset_valid):
        if self.X_valid is not None:
            return self.X_valid, self.y_valid, {}
        dataset = dataset_train if self.on_train else dataset_valid
        if dataset is None:
            return None, None, {}
        X, y = data_from_dataset(dataset)
        X, masks = split_masks(X)
        extra = {}
        if masks is not None and "masks" not in self._metadata and "masks" in getattr(
                self.scorer_, "_params", ()):
            extra["masks"] = _masks_like(masks, X)
        classes = getattr(net, "classes_", None)
        if classes is not None and y is not None:
            y = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
            if np.issubdtype(y.dtype, np.integer) and y.size and y.max() < len(classes):
                y = np.asarray(classes)[y]  # the net stores encoded labels
        return X, y, extra

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Score the epoch's relevance and record it in ``net.history``."""
        X, y, extra = self._data(net, dataset_train, dataset_valid)
        if X is None:
            return
        score = float(self.scorer_(net, X, y, **self._metadata, **extra))
        net.history.record(self.name_, score)
        better = score < self.best_score_ if self.lower_is_better else score > self.best_score_
        net.history.record(self.name_ + "_best", bool(better))
        if better:
            self.best_score_ = score


def _masks_like(masks, X):
    """Training masks (stored broadcastable) at the full shape of X, as numpy."""
    if isinstance(masks, dict):
        return {k: _masks_like(m, X[k]) for k, m in masks.items()}
    m = masks.cpu().numpy() if hasattr(masks, "cpu") else np.asarray(masks)
    # an unannotated (NaN) sample becomes an empty mask, which the metrics
    # score as NaN and the scorer leaves out of the mean
    return np.nan_to_num(np.broadcast_to(m, tuple(X.shape)), nan=0.0)
