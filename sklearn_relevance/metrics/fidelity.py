"""Faithfulness: does removing what the relevance marks change the output?

:func:`perturbation_curve` replaces features by a baseline in order of
relevance and records the network's response after each step (pixel flipping,
Bach et al. 2015; deletion and insertion, Petsiuk et al. 2018).
:func:`fidelity_score`, :func:`deletion_auc` and :func:`insertion_auc` reduce
the curves to one number per sample.

All perturbation steps of a chunk of samples go through the network in one
batched forward on the estimator's device; chunks are sized by a memory
budget (or ``internal_batch_size`` rows per forward), never one sample at a
time.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch

from .._batching import budget_bytes, chunk_size_for, iter_slices, sample_nbytes
from .._inference import cpu_pass_budget
from .._module_access import eval_mode
from .._nets import final_input, input_dtype, module_and_device
from .._target_policy import predicted_indices
from .._targets import encode_labels
from .._tensors import forward
from .._baselines import resolve_baselines
from .._validation import as_batch, check_choice, check_int, squeezed_shape
from ._checks import constant_rows, nan_where, to_numpy
from ._perturb import feature_ranks

__all__ = ["perturbation_curve", "fidelity_score", "deletion_auc", "insertion_auc"]

# Input bytes of one batched forward on a CPU when ``internal_batch_size`` is
# None: ``MEMORY_BUDGETS["curve_pass_input_cpu"]`` (1 MiB), small enough that
# the activations of a few hundred small images stay in cache (measured in
# benchmarks/bench_metrics.py: 0.25-1 MiB is fastest, 16 MiB is 2-3x
# slower). Accelerators use the library's default, ``"array_work"``.

ORDERS = {"mif", "lif", "random"}
RESPONSES = {"logit", "proba", "accuracy"}
KINDS = {"deletion", "insertion"}


def _relevance_like(relevance, X):
    """Relevance reshaped to broadcast against X (same ndim)."""
    if relevance.shape[0] != X.shape[0]:
        raise ValueError(
            "'relevance' and 'X' must hold the same number of samples. Got "
            f"{relevance.shape[0]} and {X.shape[0]} instead."
        )
    rs, xs = tuple(relevance.shape[1:]), tuple(X.shape[1:])
    if len(rs) == len(xs) and all(r in (1, x) for r, x in zip(rs, xs)):
        return relevance
    if squeezed_shape(rs) == squeezed_shape(xs):
        return relevance.reshape(X.shape)
    raise ValueError(
        "'relevance' must have X's per-sample shape or broadcast to it (e.g. one "
        f"channel for all). Got relevance of shape {tuple(relevance.shape)} and X of "
        f"shape {tuple(X.shape)} instead."
    )


def _positions(rel_flat, order, random_state):
    """Perturbation position of each feature (0 = perturbed first)."""
    n, F = rel_flat.shape
    if order == "random":
        gen = torch.Generator().manual_seed(
            int(np.random.default_rng(random_state).integers(2**31 - 1))
        )
        keys = torch.rand(n, F, generator=gen).to(rel_flat.device)
    else:
        keys = rel_flat if order == "mif" else -rel_flat
    return feature_ranks(keys, descending=True)


def _target_spec(estimator, target, y, n, device, X_raw, X):
    """A LongTensor of one output column per sample (the library's one
    target policy: ``None`` is the class ``predict`` returns)."""
    if target is None:
        target = "predicted"
    if isinstance(target, str):
        check_choice(target, "target", "perturbation_curve", {"true", "predicted"})
        if target == "predicted":
            model = estimator if callable(getattr(estimator, "_predicted_indices", None)) \
                else None
            idx = (predicted_indices(model, X_raw) if model is not None
                   else predicted_indices(module_and_device(estimator)[0], X))
            return torch.as_tensor(idx, device=device)
        if y is None:
            raise ValueError("target='true' needs the true labels: pass y.")
        return torch.as_tensor(encode_labels(getattr(estimator, "classes_", None), y, n), device=device)
    arr = np.asarray(target)
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1 or (
        arr.ndim == 1 and arr.shape[0] != n
    ):
        raise ValueError(
            "The 'target' parameter of perturbation_curve must be None, 'true', "
            f"'predicted', an int or {n} ints. Got {target!r} instead."
        )
    return torch.as_tensor(np.broadcast_to(arr, (n,)).astype(np.int64), device=device)


def _response(out, target, response):
    """Response per row of ``out`` (c, steps, k) for a target (c,) or 'predicted'."""
    k = out.shape[-1]
    if target == "predicted":
        target = out[:, 0].argmax(-1)
    if k == 1:
        if response == "accuracy":
            raise ValueError(
                "response='accuracy' needs a classifier (a module with several outputs)."
            )
        return out[..., 0]
    if response == "accuracy":
        return (out.argmax(-1) == target[:, None]).to(out.dtype)
    if response == "proba":
        out = out.softmax(-1)
    idx = target[:, None, None].expand(out.shape[0], out.shape[1], 1)
    return out.gather(-1, idx)[..., 0]


def _internal_batch_size(internal_batch_size, batch_size):
    """Resolve ``internal_batch_size`` and its deprecated alias ``batch_size``."""
    if batch_size is not None:
        if internal_batch_size is not None:
            raise ValueError(
                "The 'batch_size' parameter of perturbation_curve is a deprecated "
                "alias of 'internal_batch_size'; pass only 'internal_batch_size'. "
                f"Got both (batch_size={batch_size!r}, "
                f"internal_batch_size={internal_batch_size!r}) instead."
            )
        warnings.warn(
            "The 'batch_size' parameter of perturbation_curve counts rows (samples "
            "x steps) and is renamed 'internal_batch_size'; 'batch_size' will be "
            "removed in the next release.", FutureWarning, stacklevel=3)
        internal_batch_size = batch_size
    if internal_batch_size is None:
        return None
    return check_int(internal_batch_size, "internal_batch_size", "perturbation_curve")


def perturbation_curve(estimator, X, relevance, *, y=None, order="mif", steps=20,
                       baseline=0.0, response="logit", target=None, kind="deletion",
                       internal_batch_size=None, random_state=None, batch_size=None):
    r"""Network response while features are replaced in order of relevance.

    At step :math:`j = 0, \dots, S` the :math:`\lfloor jF/S \rfloor` first
    features in the chosen order (of :math:`F` relevance features) are set
    to the baseline (``kind="deletion"``, pixel flipping), or every feature
    but them is (``kind="insertion"``), and the response for the target is
    recorded. Step 0 of a deletion curve is the unperturbed input. With
    ``F`` divisible by ``steps``, ``curves[:, 1:]`` equals
    ``quantus.PixelFlipping(features_in_step=F // steps)`` on the same
    inputs.

    Parameters
    ----------
    estimator : fitted RelevanceNet estimator, Pipeline ending in one, or torch.nn.Module
        The network; its device is used throughout. For a Pipeline, X is
        transformed by all steps but the last and the relevance must refer
        to the transformed input.
    X : array-like or Tensor of shape (n_samples, ...)
        Inputs.
    relevance : array-like or Tensor
        Relevance of X's shape, or broadcastable to it (e.g. (n, 1, H, W)
        for (n, 3, H, W) images: every channel of a pixel goes together).
    y : array-like of shape (n_samples,), optional
        True labels (the estimator's labels, or class indices for a module).
    order : {"mif", "lif", "random"}, default="mif"
        Most important first, least important first (ties in feature order),
        or a random order drawn from ``random_state``.
    steps : int, default=20
        Number of perturbation steps :math:`S` (20 = 5% steps).
    baseline : float, array-like, {"mean", "blur"} or callable, default=0.0
        Replacement values, resolved by
        :func:`sklearn_relevance._baselines.resolve_baselines`
        ("mean": per sample and channel; "blur": Gaussian blur).
    response : {"logit", "proba", "accuracy"}, default="logit"
        Logit or softmax probability of the target, or whether the arg-max
        equals the target (1.0 / 0.0). Single-output modules (regressors)
        report their output for "logit" and "proba".
    target : None, "true", "predicted", int or array-like of int, default=None
        Output column followed, by the library's one target policy
        (:ref:`target-policy`): ``None`` and ``"predicted"`` the class
        ``predict`` returns (for a torch module, the arg-max of its output on
        the unperturbed input), whether or not ``y`` is given; ``"true"`` the
        label ``y``; an int or one int per sample.
    kind : {"deletion", "insertion"}, default="deletion"
    internal_batch_size : int, optional
        Rows (samples x (steps + 1)) per forward pass; default from a memory
        budget (``MEMORY_BUDGETS["curve_pass_input_cpu"]`` bytes of input).
    random_state : int, RandomState or None
        Seed of ``order="random"``.
    batch_size : int, optional
        Deprecated alias of ``internal_batch_size`` (it counts rows, not
        samples); it warns with a ``FutureWarning`` and will be removed in
        the next release.

    Returns
    -------
    fractions : ndarray of shape (steps + 1,)
        Fraction of features perturbed (deletion) or kept (insertion).
    curves : ndarray of shape (n_samples, steps + 1)
        Responses; rows of constant relevance are NaN (with a warning) for
        ``order`` "mif" and "lif", whose order is then arbitrary.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import perturbation_curve
    >>> module = torch.nn.Linear(4, 1)
    >>> with torch.no_grad():
    ...     _ = module.weight.copy_(torch.tensor([[4., 3., 2., 1.]])), module.bias.zero_()
    >>> X = torch.ones(1, 4)
    >>> fractions, curves = perturbation_curve(module, X, X * module.weight, steps=4)
    >>> fractions
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    >>> curves
    array([[10.,  6.,  3.,  1.,  0.]])
    """
    check_choice(order, "order", "perturbation_curve", ORDERS)
    check_choice(response, "response", "perturbation_curve", RESPONSES)
    check_choice(kind, "kind", "perturbation_curve", KINDS)
    steps = check_int(steps, "steps", "perturbation_curve")
    internal_batch_size = _internal_batch_size(internal_batch_size, batch_size)
    final, X = final_input(estimator, X)
    if isinstance(X, Mapping) or isinstance(relevance, Mapping):
        raise ValueError(
            "perturbation_curve applies to array inputs; for dict (multimodal) inputs "
            "perturb one modality at a time with a module that closes over the others."
        )
    module, device = module_and_device(final)
    X_raw = X
    X = as_batch(X, "X", device=device, dtype=input_dtype(module))
    rel = _relevance_like(as_batch(relevance, "relevance", device=device), X)
    n = X.shape[0]
    rel_flat = rel.reshape(n, -1)
    F = rel_flat.shape[1]
    if steps > F:
        raise ValueError(
            f"The 'steps' parameter of perturbation_curve must be at most the number "
            f"of relevance features ({F}). Got {steps} instead."
        )
    tgt = _target_spec(final, target, y, n, device, X_raw, X)
    base = resolve_baselines(baseline, X, name="baseline", owner="perturbation_curve")
    pos = _positions(rel_flat, order, random_state)
    counts = (torch.arange(steps + 1, device=device) * F) // steps
    rel_shape, x_shape = tuple(rel.shape[1:]), tuple(X.shape[1:])
    budget = (cpu_pass_budget(module, budget_bytes("curve_pass_input_cpu"))
              if device.type == "cpu" else "array_work")
    chunk = chunk_size_for(sample_nbytes(X), steps + 1, batch_size=internal_batch_size,
                           budget=budget)
    parts = []
    with eval_mode(module):
        for sl in iter_slices(n, chunk):
            c = sl.stop - sl.start
            off = pos[sl][:, None, :] < counts[None, :, None]
            if kind == "insertion":
                off = ~off
            off = off.reshape(c, steps + 1, *rel_shape).expand(c, steps + 1, *x_shape)
            Xp = torch.where(off, base[sl][:, None], X[sl][:, None])
            out = forward(module, Xp.reshape(c * (steps + 1), *x_shape))
            if isinstance(out, tuple):
                out = out[0]
            out = out.reshape(c, steps + 1, -1)
            t = tgt if isinstance(tgt, str) else tgt[sl]
            parts.append(_response(out, t, response))
    curves = to_numpy(torch.cat(parts))
    if order != "random":
        curves = nan_where(curves, constant_rows(rel_flat), "perturbation_curve",
                           "constant relevance: no ordering")
    return to_numpy(counts) / F, curves


def _area(fractions, curves):
    return np.trapezoid(curves, fractions, axis=1)


def fidelity_score(estimator, X, y, relevance, *, response="proba", target=None,
                   **curve_options):
    r"""Area under the LIF curve minus area under the MIF curve, per sample.

    Removing the least important features first should keep the response;
    removing the most important first should destroy it:

    .. math:: \mathrm{fidelity} = \frac{\mathrm{AUC}_{\mathrm{LIF}} -
              \mathrm{AUC}_{\mathrm{MIF}}}{f(x)}

    with areas over the fraction of features removed (trapezoid rule) and
    :math:`f(x)` the unperturbed response. The default protocol zeroes
    features in 5% steps (``steps=20, baseline=0.0``) and follows the class
    probability. With ``response="accuracy"`` the curves are 0/1 hits and
    the difference is not normalised (the accuracy-drop variant; average over
    samples for a dataset score). Higher is more faithful; a random map
    scores about 0.

    The normalisation divides by the unperturbed response, so a sample whose
    followed class has a tiny probability (a misclassified sample when the
    curves follow the true class, ``target="true"``) gets a huge value of
    either sign. The default, ``target=None``, follows the predicted class:
    the class ``explain(target=None)`` explains.

    Parameters
    ----------
    estimator : fitted estimator, Pipeline or torch.nn.Module
        See :func:`perturbation_curve`.
    X : array-like or Tensor of shape (n_samples, ...)
    y : array-like of shape (n_samples,) or None
        True labels, followed with ``target="true"``. ``target=None``
        follows the predicted class, as ``explain(target=None)`` explains it,
        so ``fidelity_score(est, X, y, est.explain(X))`` scores the map of
        the class it explains.
    relevance : array-like or Tensor
        Relevance of X's shape (or broadcastable to it).
    response : {"proba", "logit", "accuracy"}, default="proba"
    target : None, "true", "predicted", int or array-like of int, default=None
        Output followed, see :func:`perturbation_curve`.
    **curve_options
        ``steps``, ``baseline``, ``internal_batch_size`` of
        :func:`perturbation_curve`.

    Returns
    -------
    ndarray of shape (n_samples,)
        NaN (with a warning) for constant relevance or a zero unperturbed
        response.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import fidelity_score
    >>> module = torch.nn.Linear(4, 1)
    >>> with torch.no_grad():
    ...     _ = module.weight.copy_(torch.tensor([[4., 3., 2., 1.]])), module.bias.zero_()
    >>> X = torch.ones(1, 4)
    >>> fidelity_score(module, X, None, X * module.weight, steps=4, response="logit")
    array([0.25])
    """
    check_choice(response, "response", "fidelity_score", RESPONSES)
    opts = dict(curve_options, y=y, response=response, target=target)
    for key in ("order", "kind"):
        if key in opts:
            raise TypeError(f"fidelity_score() got an unexpected keyword argument {key!r}")
    fr, mif = perturbation_curve(estimator, X, relevance, order="mif", **opts)
    _, lif = perturbation_curve(estimator, X, relevance, order="lif", **opts)
    diff = _area(fr, lif) - _area(fr, mif)
    if response == "accuracy":
        return diff
    f0 = mif[:, 0]
    zero = f0 == 0
    return nan_where(diff / np.where(zero, 1.0, f0), zero & ~np.isnan(f0), "fidelity_score",
                     "unperturbed response is zero")


def _auc_of(kind, estimator, X, relevance, y, curve_options):
    fr, curves = perturbation_curve(estimator, X, relevance, y=y, order="mif", kind=kind,
                                    **curve_options)
    return _area(fr, curves)


_AUC_DOC = """Area under the most-important-first {kind} curve ({better} is better).

    Petsiuk, Das and Saenko (2018), "RISE": {what}

    Parameters
    ----------
    estimator, X, relevance, y
        See :func:`perturbation_curve`.
    response : {{"proba", "logit", "accuracy"}}, default="proba"
    target : None, "true", "predicted", int or array-like of int, default=None
        Output followed, see :func:`perturbation_curve`.
    **curve_options
        ``steps``, ``baseline``, ``internal_batch_size`` of
        :func:`perturbation_curve`.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import {kind}_auc
    >>> module = torch.nn.Linear(4, 1)
    >>> with torch.no_grad():
    ...     _ = module.weight.copy_(torch.tensor([[4., 3., 2., 1.]])), module.bias.zero_()
    >>> X = torch.ones(1, 4)
    >>> {kind}_auc(module, X, X * module.weight, steps=4)
    array([{value}])
    """


def deletion_auc(estimator, X, relevance, *, y=None, response="proba", target=None,
                 **curve_options):
    return _auc_of("deletion", estimator, X, relevance, y,
                   dict(curve_options, response=response, target=target))


def insertion_auc(estimator, X, relevance, *, y=None, response="proba", target=None,
                  **curve_options):
    return _auc_of("insertion", estimator, X, relevance, y,
                   dict(curve_options, response=response, target=target))


deletion_auc.__doc__ = _AUC_DOC.format(
    kind="deletion", better="lower", value="3.75",
    what="""the response as the most
    relevant features are replaced by the baseline, integrated over the
    fraction removed. A faithful map makes the response drop fast.""")
insertion_auc.__doc__ = _AUC_DOC.format(
    kind="insertion", better="higher", value="6.25",
    what="""start from the baseline and
    restore the most relevant features first, integrated over the fraction
    restored. A faithful map makes the response rise fast.""")
