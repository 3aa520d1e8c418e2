"""Masks that cannot line up with the features they annotate.

A relevance mask annotates the input of the network: the features of the
``X`` that the estimator's ``fit`` receives. Two ways of getting that wrong
are caught here, before any work:

- :func:`check_mask_names`: a mask DataFrame's column names must be X's
  feature names, in X's order (columns in another order would annotate the
  wrong features);
- :func:`check_pipeline_space`: in a :class:`~sklearn.pipeline.Pipeline`,
  the masks reach the final step, whose input is what the steps before it
  made of X. Every step before it must keep X's features, in order: a step
  whose ``get_feature_names_out`` gives other names than it was given (PCA
  components, a ``ColumnTransformer`` that reorders or prefixes columns
  other than by its transformers' names, a selector) is refused. A step
  that cannot name its features (a ``FunctionTransformer`` without
  ``feature_names_out``) cannot be checked by name; the mask's shape is
  still checked against the final step's input. Masks given as a
  DataFrame are matched by name with the final step's input instead.

The Pipeline is found on the call stack (scikit-learn gives the final step
no handle on its Pipeline): the innermost ``Pipeline.fit`` (or
``fit_transform`` / ``fit_predict``) frame whose final step is the
estimator being fitted.
"""

from __future__ import annotations

import sys

__all__ = ["check_mask_names", "check_pipeline_space"]

_PIPELINE_METHODS = {"fit", "fit_transform", "fit_predict", "partial_fit"}


def _names_of(mask):
    """String column names of a DataFrame mask, else None."""
    if not hasattr(mask, "columns") or not hasattr(mask, "iloc"):
        return None
    from sklearn.utils.validation import _get_feature_names

    names = _get_feature_names(mask)
    return None if names is None else [str(n) for n in names]


def check_mask_names(mask, feature_names, owner, *, name="relevance_mask"):
    """Raise unless a DataFrame mask's columns are ``feature_names``, in order."""
    got = _names_of(mask)
    if got is None:
        return
    if feature_names is None:
        raise ValueError(
            f"The '{name}' parameter of {owner} is a DataFrame with column names, but "
            "X has no feature names to match them with. Pass X as a DataFrame with "
            "the same columns, or the masks as an array."
        )
    want = [str(n) for n in feature_names]
    if got == want:
        return
    if sorted(got) == sorted(want):
        why = "the same names in another order"
    else:
        missing = [n for n in want if n not in got][:5]
        extra = [n for n in got if n not in want][:5]
        why = f"missing {missing}, unexpected {extra}"
    raise ValueError(
        f"The '{name}' parameter of {owner} must have X's feature names as columns, "
        f"in X's order ({want[:8]}{'...' if len(want) > 8 else ''}). Got {why}."
    )


def _enclosing_pipeline(estimator, depth=40):
    from sklearn.pipeline import Pipeline

    frame = sys._getframe(2)
    while frame is not None and depth:
        if frame.f_code.co_name in _PIPELINE_METHODS:
            owner = frame.f_locals.get("self")
            if isinstance(owner, Pipeline) and owner.steps \
                    and owner.steps[-1][1] is estimator:
                return owner
        frame, depth = frame.f_back, depth - 1
    return None


def _strip_prefixes(step, names):
    """A ColumnTransformer's ``name__feature`` names without the prefix."""
    from sklearn.compose import ColumnTransformer

    if not isinstance(step, ColumnTransformer) or not step.verbose_feature_names_out:
        return names
    prefixes = {f"{t[0]}__" for t in step.transformers_}
    out = []
    for n in names:
        p = next((p for p in prefixes if n.startswith(p)), None)
        out.append(n[len(p):] if p else n)
    return out


def _feature_names(step):
    """(names in, names out) of a fitted step, or None when it cannot say."""
    n_in = getattr(step, "n_features_in_", None)
    names_in = getattr(step, "feature_names_in_", None)
    if names_in is None and n_in is not None:
        names_in = [f"x{i}" for i in range(int(n_in))]
    if names_in is None:
        return None
    try:
        names_out = step.get_feature_names_out()
    except Exception:  # no names for this step (or not fitted as expected)
        return None
    return [str(n) for n in names_in], _strip_prefixes(step, [str(n) for n in names_out])


def check_pipeline_space(estimator, mask, *, name="relevance_mask"):
    """Raise when ``estimator`` is the final step of a Pipeline whose earlier
    steps change X's features (masks would annotate the wrong features)."""
    if mask is None or _names_of(mask) is not None:
        return  # named masks: matched with the final step's X by check_mask_names
    pipe = _enclosing_pipeline(estimator)
    if pipe is None:
        return
    owner = type(estimator).__name__
    for step_name, step in pipe.steps[:-1]:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        names = _feature_names(step)
        if names is None:
            continue
        names_in, names_out = names
        if names_out == names_in:
            continue
        if len(names_out) != len(names_in):
            what = f"turns {len(names_in)} features into {len(names_out)}"
        elif sorted(names_out) == sorted(names_in):
            what = "reorders the features"
        else:
            what = (f"makes other features ({names_out[:4]}"
                    f"{'...' if len(names_out) > 4 else ''} from {names_in[:4]}"
                    f"{'...' if len(names_in) > 4 else ''})")
        raise ValueError(
            f"The '{name}' parameter of {owner} annotates the input of the Pipeline's "
            f"final step, but step {step_name!r} ({type(step).__name__}) {what}: masks "
            "given in X's space would mark the wrong features. Masks live in the final "
            "step's input space: use steps that keep X's features in order before it, "
            "or pass the masks as a DataFrame whose columns name the final step's input "
            "features (with set_output(transform='pandas'))."
        )

