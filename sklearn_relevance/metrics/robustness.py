"""Robustness: does the map stay put when the input barely moves?

Every metric explains ``n_samples`` noisy copies of each input (all copies
of a chunk in one explanation pass, chunks sized by the memory budget) and
compares the maps with the original one, as quantus 0.6 defines them:

- :func:`max_sensitivity` / :func:`avg_sensitivity` (Yeh et al. 2019):
  max / mean over copies of ``||a(x) - a(x')|| / ||a(x)||`` with uniform
  noise in ``[-lower_bound, lower_bound]``;
- :func:`local_lipschitz_estimate` (Alvarez-Melis and Jaakkola 2018): max
  of ``||a(x) - a(x')|| / ||x - x'||`` with Gaussian noise;
- :func:`relative_input_stability`, :func:`relative_output_stability`,
  :func:`relative_representation_stability` (Agarwal et al. 2022): max of
  the relative change of the map over the relative change of the input,
  of the logits or of the hidden representations.

Lower is more robust for all of them. The noise of copy ``s`` depends on
``(random_state, s)`` only (:func:`noise_draws`), never on how copies are
chunked into passes.
"""

from __future__ import annotations

import copy

import torch

from .._validation import check_choice, check_int, check_real
from ._checks import to_numpy
from ._explaining import Model, check_relevance, seed_of, step_draws

__all__ = [
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
    "noise_draws",
]

NORMS = {"fro", "l2", "linf"}


def noise_draws(kind, shape, seed, steps, device, *, low=0.0, high=1.0, mean=0.0, std=1.0):
    """The noise of copies ``steps`` (k, *shape), float32: ``"uniform"`` in
    ``[low, high)`` or ``"gaussian"`` (``mean``, ``std``)."""
    if kind == "uniform":
        def draw(g):
            return torch.rand(shape, generator=g, device=device) * (high - low) + low
    else:
        def draw(g):
            return torch.randn(shape, generator=g, device=device) * std + mean
    return step_draws(draw, seed, steps, device)


def _norm(v, norm):
    v = v.double()
    if norm == "linf":
        return v.abs().amax(-1)
    return v.norm(dim=-1)


def _prepared(rel, absolute, normalise):
    r = rel
    if normalise:
        m = r.abs().amax(-1, keepdim=True)
        r = r / torch.where(m == 0, torch.ones_like(m), m)
    return r.abs() if absolute else r


def _run(owner, estimator, X, relevance, *, y, explainer, target, n_samples, noise,
         objective, reduce, nan_on_change, absolute, normalise, random_state,
         internal_batch_size, need_logits=False, represent=None):
    """Per-sample ``reduce`` over copies of ``objective(x, xs, a, as, extra)``."""
    n_samples = check_int(n_samples, "n_samples", owner)
    model = Model(estimator, X, owner, explainer=explainer, target=target, y=y,
                  internal_batch_size=internal_batch_size)
    X = model.X
    n = model.n
    seed = seed_of(random_state)
    with model.access():
        t = model.resolve_target()
        a = (model.explain(X, t) if relevance is None
             else check_relevance(relevance, X, owner))
        logits = model.forward(X) if (nan_on_change or need_logits) else None
    a = _prepared(a.reshape(n, -1), absolute, normalise)
    rep0 = None if represent is None else represent(X)
    values = torch.empty(n_samples, n, dtype=torch.float64, device=X.device)
    for sl in model.step_chunks(n_samples):
        k = sl.stop - sl.start
        eps = noise(X.shape, seed, range(sl.start, sl.stop), X.device)
        Xs = (X[None] + eps).reshape(k * n, *X.shape[1:])
        ts = None if t is None else t.repeat(k)
        with model.access():
            a_s = model.explain(Xs, ts)
            out_s = model.forward(Xs) if (nan_on_change or need_logits) else None
        a_s = _prepared(a_s.reshape(k, n, -1), absolute, normalise)
        extra = {}
        if need_logits:
            extra = {"h": logits, "hs": out_s.reshape(k, n, -1)}
        if represent is not None:
            extra = {"h": rep0, "hs": represent(Xs).reshape(k, n, -1)}
        v = objective(X.reshape(n, -1), Xs.reshape(k, n, -1), a, a_s, **extra)
        if nan_on_change and logits.shape[1] > 1:
            changed = out_s.reshape(k, n, -1).argmax(-1) != logits.argmax(-1)
            v = torch.where(changed, torch.full_like(v, float("nan")), v)
        values[sl] = v
    return to_numpy(reduce(values))


def _nanmax(v):
    return torch.where(torch.isnan(v), torch.full_like(v, -float("inf")), v).amax(0).where(
        ~torch.isnan(v).all(0), torch.full_like(v[0], float("nan")))


def _maxnan(v):  # NaN wins, as numpy.max
    return v.amax(0)


def _sensitivity(owner, reduce, estimator, X, relevance, y, explainer, target, n_samples,
                 lower_bound, upper_bound, norm, absolute, normalise, nan_on_change,
                 random_state, internal_batch_size):
    check_choice(norm, "norm", owner, NORMS)
    lower_bound = check_real(lower_bound, "lower_bound", owner, low=0)
    low, high = ((-lower_bound, lower_bound) if upper_bound is None
                 else (lower_bound, check_real(upper_bound, "upper_bound", owner,
                                               low=lower_bound, closed="neither")))

    def noise(shape, seed, steps, device):
        return noise_draws("uniform", shape, seed, steps, device, low=low, high=high)

    def objective(x, xs, a, a_s):
        return _norm(a - a_s, norm) / _norm(a, norm)

    red = reduce if nan_on_change else (_nanmax if reduce is _maxnan else reduce)
    return _run(owner, estimator, X, relevance, y=y, explainer=explainer, target=target,
                n_samples=n_samples, noise=noise, objective=objective, reduce=red,
                nan_on_change=nan_on_change, absolute=absolute, normalise=normalise,
                random_state=random_state, internal_batch_size=internal_batch_size)


_COMMON_DOC = """
    Parameters
    ----------
    estimator : fitted estimator, Pipeline or torch.nn.Module
    X : array-like or Tensor of shape (n_samples, ...)
    relevance : array-like or Tensor, optional
        The maps of X (``None``: explained with ``explainer``).
    y : array-like, optional
        Labels (for ``target="true"``).
    explainer : str or explainer object, optional
        Explains the noisy copies (``None``: the estimator's
        ``relevance_explainer``, ``"gradient"`` for a module).
    target : None, "true", "predicted", int or array-like of int
        The explained output, the same for every copy of a sample.
    n_samples : int, default=200
        Noisy copies per sample (quantus' ``nr_samples``).
{extra}    absolute, normalise : bool
        Take ``|map|`` / divide each map by its largest absolute value
        (quantus divides by the batch's largest value).
    nan_on_change : bool
        Copies whose predicted class differs from the input's count as NaN
        (quantus' ``return_nan_when_prediction_changes``).
    random_state : int, RandomState or None, default=None
        Seed of the noise.
    internal_batch_size : int, optional
        Rows per pass; default from the memory budgets.

    Returns
    -------
    ndarray of shape (n_samples,)
        Lower is more robust.
"""

_SENS_EXTRA = """    lower_bound : float, default=0.2
        Uniform noise in ``[-lower_bound, lower_bound]`` ...
    upper_bound : float, optional
        ... or in ``[lower_bound, upper_bound]`` when given.
    norm : {"fro", "l2", "linf"}, default="fro"
        Norm of the flattened maps (fro and l2 are the same).
"""


def max_sensitivity(estimator, X, relevance=None, *, y=None, explainer=None, target=None,
                    n_samples=200, lower_bound=0.2, upper_bound=None, norm="fro",
                    absolute=False, normalise=False, nan_on_change=False, random_state=None,
                    internal_batch_size=None):
    return _sensitivity("max_sensitivity", _maxnan, estimator, X, relevance, y, explainer,
                        target, n_samples, lower_bound, upper_bound, norm, absolute,
                        normalise, nan_on_change, random_state, internal_batch_size)


def _nanmean(v):
    return torch.nanmean(v, 0)


def avg_sensitivity(estimator, X, relevance=None, *, y=None, explainer=None, target=None,
                    n_samples=200, lower_bound=0.2, upper_bound=None, norm="fro",
                    absolute=False, normalise=False, nan_on_change=False, random_state=None,
                    internal_batch_size=None):
    return _sensitivity("avg_sensitivity", _nanmean, estimator, X, relevance, y, explainer,
                        target, n_samples, lower_bound, upper_bound, norm, absolute,
                        normalise, nan_on_change, random_state, internal_batch_size)


max_sensitivity.__doc__ = """Max-sensitivity (Yeh et al. 2019), per sample.

    The largest ``||a(x) - a(x')|| / ||a(x)||`` over ``n_samples`` copies
    ``x'`` of ``x`` with uniform noise; equals ``quantus.MaxSensitivity``
    on the same noise.
""" + _COMMON_DOC.format(extra=_SENS_EXTRA) + """
    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import max_sensitivity
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> max_sensitivity(net, torch.randn(4, 6), n_samples=10, random_state=0).shape
    (4,)
    """
avg_sensitivity.__doc__ = """Average sensitivity (Yeh et al. 2019), per sample.

    The mean of ``||a(x) - a(x')|| / ||a(x)||`` over ``n_samples`` copies
    with uniform noise; equals ``quantus.AvgSensitivity`` on the same noise.
""" + _COMMON_DOC.format(extra=_SENS_EXTRA) + """
    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import avg_sensitivity
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> avg_sensitivity(net, torch.randn(4, 6), n_samples=10, random_state=0).shape
    (4,)
    """


def local_lipschitz_estimate(estimator, X, relevance=None, *, y=None, explainer=None,
                             target=None, n_samples=200, perturb_mean=0.0, perturb_std=0.1,
                             absolute=False, normalise=True, nan_on_change=False,
                             random_state=None, internal_batch_size=None):
    owner = "local_lipschitz_estimate"
    perturb_std = check_real(perturb_std, "perturb_std", owner, low=0)
    perturb_mean = check_real(perturb_mean, "perturb_mean", owner)

    def noise(shape, seed, steps, device):
        return noise_draws("gaussian", shape, seed, steps, device, mean=perturb_mean,
                           std=perturb_std)

    def objective(x, xs, a, a_s):
        return _norm(a - a_s, "l2") / (_norm(x - xs, "l2") + 1e-10)

    return _run(owner, estimator, X, relevance, y=y, explainer=explainer, target=target,
                n_samples=n_samples, noise=noise, objective=objective,
                reduce=_maxnan if nan_on_change else _nanmax, nan_on_change=nan_on_change,
                absolute=absolute, normalise=normalise, random_state=random_state,
                internal_batch_size=internal_batch_size)


local_lipschitz_estimate.__doc__ = """Local Lipschitz estimate (Alvarez-Melis and Jaakkola 2018), per sample.

    The largest ``||a(x) - a(x')||_2 / (||x - x'||_2 + 1e-10)`` over
    ``n_samples`` copies with Gaussian noise; equals
    ``quantus.LocalLipschitzEstimate`` on the same noise (with
    ``normalise=False`` on both: quantus divides by the batch's maximum).
""" + _COMMON_DOC.format(extra="""    perturb_mean, perturb_std : float, default=0.0, 0.1
        The Gaussian noise.
""") + """
    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import local_lipschitz_estimate
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> local_lipschitz_estimate(net, torch.randn(4, 6), n_samples=10, random_state=0).shape
    (4,)
    """


def _relative_l2(e, es, eps):
    """``||(e - es) / e'||_2`` over the last axis, ``e'`` being ``e`` with its
    zeros replaced by ``eps`` (quantus' ``e + (e == 0) * eps``), in float64:
    ``e`` (n, D) against each copy of ``es`` (k, n, D) in turn, in place on
    a float64 copy of that copy (the relative stabilities compare long
    representations: one pass per copy instead of a (k, n, D) temporary per
    operation). Neither input is written to."""
    e = e.double()
    scale = torch.where(e == 0, torch.full_like(e, eps), e)
    out = torch.empty(es.shape[:-1], dtype=torch.float64, device=e.device)
    for j in range(es.shape[0]):  # the copies of a chunk, not the samples
        d = es[j].to(torch.float64, copy=True)
        out[j] = torch.linalg.vector_norm(torch.sub(e, d, out=d).div_(scale), dim=-1)
    return out


def _relative_stability(owner, estimator, X, relevance, y, explainer, target, n_samples,
                        lower_bound, upper_bound, eps_min, absolute, normalise,
                        nan_on_change, random_state, internal_batch_size, kind,
                        layers=None):
    lower_bound = check_real(lower_bound, "lower_bound", owner)
    upper_bound = check_real(upper_bound, "upper_bound", owner, low=lower_bound,
                             closed="neither")
    eps_min = check_real(eps_min, "eps_min", owner, low=0, closed="neither")

    def noise(shape, seed, steps, device):
        return noise_draws("uniform", shape, seed, steps, device, low=lower_bound,
                           high=upper_bound)

    def objective(x, xs, a, a_s, h=None, hs=None):
        num = _relative_l2(a, a_s, eps_min)
        if kind == "input":
            den = _relative_l2(x, xs, eps_min)
        elif kind == "output":
            den = _norm(h.double() - hs.double(), "l2")
        else:
            den = _relative_l2(h, hs, eps_min)
        return num / (den + (den == 0) * eps_min)

    represent = None
    if kind == "representation":
        model = Model(estimator, X, owner, need_explainer=False)
        represent = _representations(model, layers, owner)
    return _run(owner, estimator, X, relevance, y=y, explainer=explainer, target=target,
                n_samples=n_samples, noise=noise, objective=objective, reduce=_maxnan,
                nan_on_change=nan_on_change, absolute=absolute, normalise=normalise,
                random_state=random_state, internal_batch_size=internal_batch_size,
                need_logits=kind == "output", represent=represent)


def _representations(model, layers, owner):
    """``f(X) -> (rows, D)``: the outputs of ``layers`` (names; default every
    module but the network itself and Sequential containers, as quantus),
    flattened and concatenated, from hooks on a private copy of the network."""
    net = copy.deepcopy(model.module).eval()
    named = [(n, m) for n, m in net.named_modules()
             if not isinstance(m, (type(net), torch.nn.Sequential))]
    if layers is not None:
        if isinstance(layers, str) or not all(isinstance(v, str) for v in layers):
            raise ValueError(f"The 'layers' parameter of {owner} must be a list of module "
                             f"names. Got {layers!r} instead.")
        missing = sorted(set(layers) - {n for n, _ in named})
        if missing:
            raise ValueError(f"The 'layers' parameter of {owner} names modules the network "
                             f"does not have: {missing}.")
        named = [(n, m) for n, m in named if n in set(layers)]
    if not named:
        raise ValueError(f"{owner} found no hidden layer to read in the network.")
    held = []

    def hook(module, inputs, out):  # cloned: an in-place layer may change it later
        o = out[0] if isinstance(out, tuple) else out
        held.append(o.detach().reshape(o.shape[0], -1).clone())

    for _, m in named:
        m.register_forward_hook(hook)

    def represent(Xrows):
        parts = []
        from .._batching import MEMORY_BUDGETS, chunk_size_for, iter_slices, sample_nbytes

        chunk = chunk_size_for(sample_nbytes(Xrows[:1]), batch_size=model.rows,
                               budget=MEMORY_BUDGETS["forward_pass_input"])
        with torch.no_grad():
            for sl in iter_slices(Xrows.shape[0], chunk):
                held.clear()
                net(Xrows[sl])
                parts.append(torch.cat(held, 1))
        held.clear()
        return torch.cat(parts).float()

    return represent


_REL_EXTRA = """    lower_bound, upper_bound : float, default=0.02, 0.2
        Uniform noise in ``[lower_bound, upper_bound]`` (quantus' default
        draws positive noise only).
    eps_min : float, default=1e-6
        Replaces zeros in the denominators.
"""


def relative_input_stability(estimator, X, relevance=None, *, y=None, explainer=None,
                             target=None, n_samples=200, lower_bound=0.02, upper_bound=0.2,
                             eps_min=1e-6, absolute=False, normalise=False,
                             nan_on_change=True, random_state=None, internal_batch_size=None):
    return _relative_stability("relative_input_stability", estimator, X, relevance, y,
                               explainer, target, n_samples, lower_bound, upper_bound,
                               eps_min, absolute, normalise, nan_on_change, random_state,
                               internal_batch_size, "input")


def relative_output_stability(estimator, X, relevance=None, *, y=None, explainer=None,
                              target=None, n_samples=200, lower_bound=0.02, upper_bound=0.2,
                              eps_min=1e-6, absolute=False, normalise=False,
                              nan_on_change=True, random_state=None, internal_batch_size=None):
    return _relative_stability("relative_output_stability", estimator, X, relevance, y,
                               explainer, target, n_samples, lower_bound, upper_bound,
                               eps_min, absolute, normalise, nan_on_change, random_state,
                               internal_batch_size, "output")


def relative_representation_stability(estimator, X, relevance=None, *, y=None,
                                      explainer=None, target=None, n_samples=200,
                                      lower_bound=0.02, upper_bound=0.2, eps_min=1e-6,
                                      layers=None, absolute=False, normalise=False,
                                      nan_on_change=True, random_state=None,
                                      internal_batch_size=None):
    return _relative_stability("relative_representation_stability", estimator, X, relevance,
                               y, explainer, target, n_samples, lower_bound, upper_bound,
                               eps_min, absolute, normalise, nan_on_change, random_state,
                               internal_batch_size, "representation", layers=layers)


for _f, _what, _q in [
        (relative_input_stability, "input ``||(x - x') / x||``", "RelativeInputStability"),
        (relative_output_stability, "logits ``||h(x) - h(x')||``", "RelativeOutputStability"),
        (relative_representation_stability,
         "hidden representations ``||(h(x) - h(x')) / h(x)||`` (``layers``: module names, "
         "default all as quantus)", "RelativeRepresentationStability")]:
    _f.__doc__ = f"""Relative {_f.__name__.split('_')[1]} stability (Agarwal et al. 2022), per sample.

    The largest ``||(a(x) - a(x')) / a(x)||`` over the relative change of the
    {_what} among ``n_samples`` noisy copies; a copy whose predicted class
    changes makes the sample NaN (``nan_on_change=True``, as quantus).
    Equals ``quantus.{_q}`` on the same noise.
""" + _COMMON_DOC.format(extra=_REL_EXTRA) + f"""
    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import {_f.__name__}
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> {_f.__name__}(net, torch.randn(4, 6), n_samples=10, random_state=0).shape
    (4,)
    """
