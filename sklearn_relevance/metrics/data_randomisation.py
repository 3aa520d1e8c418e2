"""Data randomisation test (Adebayo et al. 2018): the map of a network
trained on permuted labels.

Verdict rules: :mod:`sklearn_relevance.metrics.randomisation`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from ._checks import to_numpy
from ._explaining import Model, check_relevance, seed_of
from ._similarity import similarity as similarity_function
from .randomisation import _prepare, _verdict

__all__ = ["data_randomisation"]


def data_randomisation(estimator, X, y, relevance=None, *, X_fit=None, y_fit=None,
                       explainer=None, target=None, similarity="spearman", absolute=True,
                       normalise=True, threshold=None, return_verdict=False,
                       random_state=None, internal_batch_size=None):
    """Data randomisation test (Adebayo et al. 2018), per sample.

    A clone of the estimator is fitted on permuted labels (``X_fit``,
    ``y_fit``, by default X and y) and explains X for the same outputs as
    the original map; the score is the similarity of the two maps. A
    network trained on noise has learnt nothing about the task, so a map
    that explains the task changes: low similarity passes.

    Parameters
    ----------
    estimator : fitted RelevanceNet estimator or Pipeline ending in one
        Needs ``fit`` (it is cloned with :func:`sklearn.base.clone`).
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
    relevance : array-like, optional
        The original maps (``None``: explained).
    X_fit, y_fit : array-like, optional
        The data the clone is fitted on, with permuted labels (default X, y).
    explainer, target, similarity, absolute, normalise, threshold, return_verdict
        As :func:`model_parameter_randomisation`.
    random_state : int, RandomState or None, default=None
        Seed of the permutation and of the clone's ``random_state`` (when
        it has one).
    internal_batch_size : int, optional

    Returns
    -------
    scores : ndarray of shape (n_samples,)
    verdict : ndarray of shape (n_samples,), only with ``return_verdict``

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance import RelevanceNetClassifier
    >>> from sklearn_relevance.metrics import data_randomisation
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6)).astype("float32"); y = (X[:, 0] > 0).astype(int)
    >>> clf = RelevanceNetClassifier(max_epochs=3, random_state=0).fit(X, y)
    >>> data_randomisation(clf, X[:5], y[:5], X_fit=X, y_fit=y, random_state=0).shape
    (5,)
    """
    owner = "data_randomisation"
    sim = similarity_function(similarity, owner)
    if not hasattr(estimator, "fit"):
        raise ValueError(
            f"The 'estimator' parameter of {owner} must be an estimator with 'fit' (it "
            f"is refitted on permuted labels). Got {type(estimator).__name__} instead.")
    if y is None:
        raise ValueError(f"The 'y' parameter of {owner} must be the labels of X. Got None.")
    X_fit = X if X_fit is None else X_fit
    y_fit = np.asarray(y if y_fit is None else y_fit)
    if len(y_fit) != len(X_fit):
        raise ValueError(f"The 'y_fit' parameter of {owner} must hold one label per row "
                         f"of X_fit ({len(X_fit)}). Got {len(y_fit)} instead.")
    model = Model(estimator, X, owner, explainer=explainer, target=target, y=y,
                  internal_batch_size=internal_batch_size)
    X_t = model.X
    with model.access():
        t = model.resolve_target()
        given = (model.explain(X_t, t) if relevance is None
                 else check_relevance(relevance, X_t, owner))
    rs = np.random.RandomState(seed_of(random_state))
    noisy = clone(estimator)
    params = noisy.get_params()
    seeds = {k: int(rs.randint(np.iinfo(np.int32).max)) for k in params
             if k == "random_state" or k.endswith("__random_state")}
    if seeds:
        noisy.set_params(**seeds)
    noisy.fit(X_fit, y_fit[rs.permutation(len(y_fit))])
    other = Model(noisy, X, owner, explainer=model.explainer, internal_batch_size=model.rows)
    with other.access():
        rel = other.explain(other.X, t)
    scores = to_numpy(sim(_prepare(given, absolute, normalise),
                          _prepare(rel, absolute, normalise)))
    if return_verdict:
        return scores, _verdict(scores, similarity, threshold, owner)
    return scores
