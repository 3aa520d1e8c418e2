"""``explain(estimator, X)``: explain a fitted estimator, Pipeline or search
from raw ``X``."""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._nets import final_input

__all__ = ["explain"]


def _is_search(estimator):
    # GridSearchCV, RandomizedSearchCV, HalvingGridSearchCV and friends
    return hasattr(estimator, "estimator") and hasattr(estimator, "refit")


def final_estimator(estimator, X):
    """``(explainable estimator, X in its input space)`` for a fitted
    estimator, Pipeline (possibly nested) or search.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        For an unfitted Pipeline step or search.
    ValueError
        When the final step has no ``explain`` method, or a search was
        fitted with ``refit=False``.
    """
    path = []
    while True:
        if isinstance(estimator, Pipeline):
            path.append(f"step {estimator.steps[-1][0]!r}")
            estimator, X = final_input(estimator, X)
        elif callable(getattr(estimator, "explain", None)):
            return estimator, X
        elif _is_search(estimator):
            check_is_fitted(estimator, "cv_results_")
            if not hasattr(estimator, "best_estimator_"):
                raise ValueError(
                    f"The 'estimator' parameter of explain is a "
                    f"{type(estimator).__name__} fitted with refit=False, which has no "
                    "best_estimator_ to explain. Fit it with refit=True."
                )
            path.append("best_estimator_")
            estimator = estimator.best_estimator_
        else:
            where = f" (reached through {' -> '.join(path)})" if path else ""
            raise ValueError(
                "The 'estimator' parameter of explain must be an estimator with an "
                "explain method (RelevanceNetClassifier, RelevanceNetRegressor), a "
                "Pipeline ending in one, or a fitted search over one. Got "
                f"{type(estimator).__name__}{where} instead."
            )


def explain(estimator, X, y=None, **options):
    """Explain a fitted estimator, Pipeline or search from raw ``X``.

    The one way to explain what a fitted model looks at, whatever wraps it:
    ``X`` goes through the ``transform`` of every Pipeline step before the
    final one (nested Pipelines and a search's ``best_estimator_`` included),
    and the final estimator's :meth:`~sklearn_relevance.RelevanceNetClassifier.explain`
    explains the result.

    The relevance is that of the **final step's input**: the features the
    network sees after scaling, selection or projection, which is what it
    can attribute to. For element-wise steps (``MinMaxScaler``,
    ``StandardScaler``, ``TICNormalizer``) that is one relevance per raw
    feature; after steps that change the features (``PCA``,
    ``SelectKBest``, ``MzResampler``) the relevance has the transformed
    shape (``pipe[:-1].get_feature_names_out()`` names the columns where
    the steps support it).

    Parameters
    ----------
    estimator : estimator, Pipeline or search
        A fitted :class:`~sklearn_relevance.RelevanceNetClassifier` or
        :class:`~sklearn_relevance.RelevanceNetRegressor` (or any estimator
        with an ``explain(X, y, **options)`` method), a fitted Pipeline ending
        in one, or a fitted ``GridSearchCV`` / ``RandomizedSearchCV`` (with
        ``refit=True``) over either.
    X : array-like of shape (n_samples, ...) or dict of such arrays
        Raw input, as passed to the estimator's ``predict``.
    y : array-like of shape (n_samples,), default=None
        True labels, needed for ``target="true"``.
    **options
        Passed to the final estimator's ``explain``: ``explainer``,
        ``target``, ``batch_size``, ``explainer_params`` and explainer
        parameters by name (``n_steps=64``).

    Returns
    -------
    ndarray or dict of ndarray
        Relevance of the final step's input, one row per sample.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When the estimator (or a step) is not fitted.
    ValueError
        When no step can explain, or a search was fitted with ``refit=False``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sklearn_relevance import RelevanceNetClassifier, explain
    >>> X, y = load_digits(return_X_y=True)
    >>> pipe = make_pipeline(MinMaxScaler(),
    ...                      RelevanceNetClassifier(max_epochs=2, random_state=0))
    >>> pipe = pipe.fit(X, y)
    >>> explain(pipe, X[:5]).shape
    (5, 64)
    >>> explain(pipe, X[:5], explainer="integrated_gradients", n_steps=16).shape
    (5, 64)
    """
    final, Xt = final_estimator(estimator, X)
    return final.explain(Xt, y, **options)
