"""Sanity checks: does the map depend on the model and on the data at all?

Adebayo et al. (2018), "Sanity checks for saliency maps": a map that stays
the same when the network's weights are re-drawn (model parameter
randomisation) or when the network was trained on permuted labels (data
randomisation) cannot explain what the network learnt. Sixt et al. (2020)
add the random-logit test (the map of another class should differ).

Every test returns a per-sample score (the similarity between the original
map and the map after randomisation; efficient MPRT the relative gain in
entropy) and, with ``return_verdict=True``, a per-sample verdict:

- similarity scores (``spearman``, ``pearson``, ``ssim``, ``cosine``, ...)
  **pass when the similarity is below** ``threshold`` (default 0.5): the
  map changed with the model; a map unrelated to the model scores about 1
  and fails;
- distance scores (``euclidean``, ...) pass when the distance is above
  ``threshold`` (no default: a distance has no scale-free cut-off);
- efficient MPRT passes when the randomised map's entropy is higher
  (score > ``threshold``, default 0).

The network passed in is never changed: randomisation works on a deep copy,
with torch's global random state restored afterwards. Layers are
randomised as quantus 0.6 does (each module with a ``reset_parameters``
method, re-drawn by it after ``torch.manual_seed(seed + 1)``), so the same
``random_state`` gives the same randomised network as quantus' ``seed``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .._validation import check_choice, check_int, check_real
from ._checks import to_numpy
from ._explaining import Model, check_relevance, forked_rng, seed_of, step_draws
from ._similarity import SIMILARITIES, similarity as similarity_function, similarity_to

__all__ = [
    "model_parameter_randomisation",
    "efficient_model_parameter_randomisation",
    "random_logit",
    "randomised_layers",
]

ORDERS = {"cascading", "independent", "bottom_up"}
LAYERS = {"last", "mean", "all"}


def randomised_layers(module, *, order="cascading", random_state=42):
    """Yield ``(name, network)``: a deep copy of ``module`` with one more
    layer re-drawn at each step (``order="cascading"``: top layer first;
    ``"bottom_up"``: first layer first; ``"independent"``: one layer at a
    time, the others original).

    The layers are the modules with a ``reset_parameters`` method, in
    ``named_modules`` order, re-drawn as quantus 0.6's
    ``get_random_layer_generator`` does. ``module`` is never changed, and
    torch's global random state is restored after each draw.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import randomised_layers
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> [name for name, _ in randomised_layers(net)]
    ['2', '0']
    """
    check_choice(order, "order", "randomised_layers", ORDERS)
    seed = seed_of(random_state)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    work = copy.deepcopy(module)
    original = {k: v.clone() for k, v in work.state_dict().items()}
    layers = [(n, m) for n, m in work.named_modules() if hasattr(m, "reset_parameters")]
    if order == "cascading":
        layers = layers[::-1]
    for name, layer in layers:
        if order == "independent":
            work.load_state_dict(original)
        with forked_rng(device), torch.no_grad():
            torch.manual_seed(seed + 1)
            layer.reset_parameters()
        yield name, work


def _prepare(rel, absolute, normalise):
    """Flattened maps, max-abs normalised per sample (zero maps kept), then abs,
    in the maps' own dtype (as quantus' numpy arrays)."""
    r = rel.reshape(rel.shape[0], -1)
    if normalise:
        m = r.abs().amax(1, keepdim=True)
        r = r / torch.where(m == 0, torch.ones_like(m), m)
    return r.abs() if absolute else r


def _verdict(scores, sim, threshold, owner):
    is_similarity = SIMILARITIES[sim][1] if isinstance(sim, str) else True
    if threshold is None:
        if not is_similarity:
            raise ValueError(
                f"The 'threshold' parameter of {owner} must be given for the distance "
                f"{sim!r} (a distance has no default cut-off). Got None instead.")
        threshold = 0.5
    threshold = check_real(threshold, "threshold", owner)
    with np.errstate(invalid="ignore"):
        passed = scores < threshold if is_similarity else scores > threshold
    return np.where(np.isnan(scores), np.nan, passed.astype(np.float64))


def _smooth_explain(model, net, X, target, n_samples, magnitude, seed):
    """Mean map over ``n_samples - 1`` noisy copies of X and X itself
    (quantus' SmoothMPRT), all copies of a chunk in one explanation pass."""
    if n_samples <= 1:
        return model.explain(X, target, net)
    n = X.shape[0]
    dims = tuple(range(1, X.ndim))
    std = magnitude * (X.amax(dims, keepdim=True) - X.amin(dims, keepdim=True))
    total = torch.zeros_like(X, dtype=torch.float64)
    for sl in model.step_chunks(n_samples - 1):
        k = sl.stop - sl.start
        noise = step_draws(lambda g: torch.randn(X.shape, generator=g, device=X.device),
                           seed, range(sl.start, sl.stop), X.device) * std
        rows = (X[None] + noise).reshape(k * n, *X.shape[1:])
        t = None if target is None else target.repeat(k)
        total += model.explain(rows, t, net).reshape(k, *X.shape).double().sum(0)
    total += model.explain(X, target, net).double()
    return (total / n_samples).float()


def model_parameter_randomisation(estimator, X, relevance=None, *, y=None, explainer=None,
                                  target=None, order="cascading", similarity="spearman",
                                  layers="last", absolute=True, normalise=True,
                                  smooth_samples=1, noise_magnitude=0.1, threshold=None,
                                  return_verdict=False, random_state=42,
                                  internal_batch_size=None):
    """Model parameter randomisation test (MPRT), per sample.

    The network's layers are re-drawn one after the other (a deep copy;
    ``order="cascading"`` from the top layer down, as Adebayo et al.) and
    X is explained again on each randomised network; the score is the
    similarity between the original map and the randomised network's map.
    A map that explains the network changes when the weights do: low
    similarity passes.

    ``smooth_samples > 1`` is quantus' SmoothMPRT (Hedström et al. 2024):
    every map (original and randomised) is the mean over ``smooth_samples
    - 1`` copies of X with Gaussian noise of standard deviation
    ``noise_magnitude * (max(x) - min(x))`` per sample, and X itself, so
    that gradient noise does not pass for a change.

    Parameters
    ----------
    estimator : fitted estimator, Pipeline or torch.nn.Module
    X : array-like or Tensor of shape (n_samples, ...)
    relevance : array-like or Tensor, optional
        The original maps; ``None`` explains X (smoothed when
        ``smooth_samples > 1``).
    y : array-like, optional
        Labels (for ``target="true"``).
    explainer : str or explainer object, optional
        ``None``: the estimator's ``relevance_explainer`` (``"gradient"``
        for a module).
    target : None, "true", "predicted", int or array-like of int
        The explained output (``None``: "true" with y, else "predicted").
    order : {"cascading", "independent", "bottom_up"}, default="cascading"
        quantus' ``layer_order`` "top_down", "independent", "bottom_up".
    similarity : str or callable, default="spearman"
        A name of ``SIMILARITIES`` (spearman, pearson, ssim, cosine,
        abs_spearman, abs_pearson, euclidean, manhattan, chebyshev,
        abs_difference, squared_difference) or ``f(a, b) -> (n,)``.
    layers : {"last", "mean", "all"}, default="last"
        ``"last"``: the similarity after the last step (the whole network
        randomised, for cascading; one explanation pass, quantus'
        ``skip_layers=True``); ``"mean"``: the mean over steps (quantus'
        ``return_average_correlation``); ``"all"``: a dict ``{layer:
        scores}``.
    absolute, normalise : bool, default=True
        Maps are divided by their largest absolute value (per sample;
        quantus divides by the batch's) and then made absolute.
    smooth_samples : int, default=1
        Noisy copies per map (1: plain MPRT).
    noise_magnitude : float, default=0.1
    threshold : float, optional
        Verdict cut-off (module docstring); 0.5 for similarities.
    return_verdict : bool, default=False
        Also return the per-sample verdicts (1.0 pass, 0.0 fail).
    random_state : int, RandomState or None, default=42
        Seed of the re-drawn weights (an int equals quantus' ``seed``) and
        of the smoothing noise.
    internal_batch_size : int, optional
        Rows per pass; default from the memory budgets.

    Returns
    -------
    scores : ndarray of shape (n_samples,), or dict of them for ``layers="all"``
    verdict : ndarray of shape (n_samples,), only with ``return_verdict``

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import model_parameter_randomisation
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> scores, passed = model_parameter_randomisation(net, torch.randn(4, 6),
    ...                                                return_verdict=True)
    >>> scores.shape, passed.shape
    ((4,), (4,))
    """
    owner = "model_parameter_randomisation"
    check_choice(order, "order", owner, ORDERS)
    check_choice(layers, "layers", owner, LAYERS)
    smooth_samples = check_int(smooth_samples, "smooth_samples", owner)
    noise_magnitude = check_real(noise_magnitude, "noise_magnitude", owner, low=0)
    similarity_function(similarity, owner)  # validated before any work
    if return_verdict and layers == "all":
        raise ValueError(f"{owner} gives a verdict for layers='last' or 'mean'; got "
                         "layers='all' with return_verdict=True.")
    model = Model(estimator, X, owner, explainer=explainer, target=target, y=y,
                  internal_batch_size=internal_batch_size)
    seed = seed_of(random_state)
    X = model.X
    given = None if relevance is None else check_relevance(relevance, X, owner)
    with model.access():
        t = model.resolve_target()
        if given is None:
            given = _smooth_explain(model, model.module, X, t, smooth_samples,
                                    noise_magnitude, seed)
    a = _prepare(given, absolute, normalise)
    to_original = similarity_to(similarity, a, owner)  # a's ranks once, not per layer
    names = [n for n, m in model.module.named_modules() if hasattr(m, "reset_parameters")]
    if order == "cascading":
        names = names[::-1]
    if not names:
        raise ValueError(f"{owner} needs a network with layers to randomise (modules "
                         "with reset_parameters); the estimator has none.")
    keep = [len(names) - 1] if layers == "last" else range(len(names))
    out = {}
    for i, (name, net) in enumerate(randomised_layers(model.module, order=order,
                                                      random_state=seed)):
        if i not in keep:
            continue
        with model.access(net):
            rel = _smooth_explain(model, net, X, t, smooth_samples, noise_magnitude, seed)
        out[name] = to_numpy(to_original(_prepare(rel, absolute, normalise)))
    if layers == "all":
        return {name: out[name] for name in names}
    scores = out[names[-1]] if layers == "last" else np.mean(np.stack(list(out.values())), 0)
    if return_verdict:
        return scores, _verdict(scores, similarity, threshold, owner)
    return scores


def _histogram_entropy(a, n_bins):
    """Entropy (nats) of the ``n_bins`` histogram of each row, with the bins
    of ``numpy.histogram`` (quantus' ``discrete_entropy``): edges and
    comparisons in the maps' own float dtype, the edges as ``numpy.linspace``
    computes them, so that a value on an edge falls in numpy's bin."""
    if a.dtype not in (torch.float32, torch.float64):
        a = a.double()
    lo, hi = a.amin(1, keepdim=True), a.amax(1, keepdim=True)
    same = lo == hi
    lo, hi = torch.where(same, lo - 0.5, lo), torch.where(same, hi + 0.5, hi)
    delta = hi - lo
    step = delta / n_bins
    ramp = torch.arange(n_bins + 1, dtype=a.dtype, device=a.device)
    # numpy.linspace: ramp * step (ramp / n * delta where the step underflows), + lo,
    # the last edge exactly hi
    edges = torch.where(step == 0, ramp / n_bins * delta, ramp * step) + lo
    edges[:, -1:] = hi
    # numpy's first guess of the bin, then its one-step corrections against the edges
    idx = ((a - lo) / delta * n_bins).long().clamp_(0, n_bins - 1)
    idx = idx - (a < edges.gather(1, idx)).long()
    idx = idx + ((a >= edges.gather(1, idx + 1)) & (idx != n_bins - 1)).long()
    counts = torch.zeros(a.shape[0], n_bins, dtype=torch.float64, device=a.device)
    counts.scatter_add_(1, idx, torch.ones_like(a, dtype=torch.float64))
    p = counts / counts.sum(1, keepdim=True)
    return -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(1)


def efficient_model_parameter_randomisation(estimator, X, relevance=None, *, y=None,
                                            explainer=None, target=None, order="bottom_up",
                                            n_bins=100, absolute=False, normalise=False,
                                            threshold=0.0, return_verdict=False,
                                            random_state=42, internal_batch_size=None):
    """Efficient MPRT (Hedström et al. 2024): relative rise in map entropy
    when every layer is randomised, per sample.

    ``(H(a_random) - H(a)) / H(a)`` with ``H`` the discrete entropy (nats)
    of an ``n_bins`` histogram of the map (quantus'
    ``EfficientMPRT(complexity_func_kwargs={"n_bins": n_bins})``). A map of
    a randomised network should be noisier: higher is better, and a
    verdict passes when the score exceeds ``threshold`` (0). One
    explanation pass on the fully randomised copy.

    Parameters
    ----------
    estimator, X, relevance, y, explainer, target
        As :func:`model_parameter_randomisation`.
    order : {"bottom_up", "cascading", "independent"}, default="bottom_up"
    n_bins : int, default=100
    absolute, normalise : bool, default=False
    threshold : float, default=0.0
    return_verdict : bool, default=False
    random_state : int, RandomState or None, default=42
    internal_batch_size : int, optional

    Returns
    -------
    scores : ndarray of shape (n_samples,)
    verdict : ndarray of shape (n_samples,), only with ``return_verdict``

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import efficient_model_parameter_randomisation
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> efficient_model_parameter_randomisation(net, torch.randn(4, 6), n_bins=4).shape
    (4,)
    """
    owner = "efficient_model_parameter_randomisation"
    check_choice(order, "order", owner, ORDERS)
    n_bins = check_int(n_bins, "n_bins", owner)
    model = Model(estimator, X, owner, explainer=explainer, target=target, y=y,
                  internal_batch_size=internal_batch_size)
    X = model.X
    with model.access():
        t = model.resolve_target()
        given = (model.explain(X, t) if relevance is None
                 else check_relevance(relevance, X, owner))
    net = None
    for _, net in randomised_layers(model.module, order=order, random_state=random_state):
        pass
    if net is None:
        raise ValueError(f"{owner} needs a network with layers to randomise.")
    with model.access(net):
        rel = model.explain(X, t, net)
    h0 = _histogram_entropy(_prepare(given, absolute, normalise), n_bins)
    h1 = _histogram_entropy(_prepare(rel, absolute, normalise), n_bins)
    scores = to_numpy((h1 - h0) / h0)
    if return_verdict:
        threshold = check_real(threshold, "threshold", owner)
        return scores, np.where(np.isnan(scores), np.nan, (scores > threshold) * 1.0)
    return scores


def _off_classes(target, n_classes, seed):
    """One class other than ``target`` per sample, as quantus' RandomLogit draws it."""
    rs = np.random.RandomState(seed)
    draw = rs.randint(0, n_classes - 1, target.shape[0])
    t = target.cpu().numpy()
    return np.where(draw < t, draw, draw + 1)


def random_logit(estimator, X, relevance=None, *, y=None, explainer=None, target=None,
                 similarity="ssim", absolute=False, normalise=True, threshold=None,
                 return_verdict=False, random_state=42, internal_batch_size=None):
    """Random-logit test (Sixt et al. 2020): the map of another class, per sample.

    X is explained again for a class drawn uniformly among the others, and
    the score is its similarity to the original map (default SSIM, as
    quantus' ``RandomLogit``). A map that does not depend on the class
    explained scores about 1 and fails; low similarity passes. With an int
    ``random_state`` the classes are those of
    ``quantus.RandomLogit(seed=random_state)``.

    Parameters
    ----------
    estimator, X, relevance, y, explainer, target
        As :func:`model_parameter_randomisation`; the network needs at
        least two outputs.
    similarity : str or callable, default="ssim"
    absolute : bool, default=False
    normalise : bool, default=True
    threshold : float, optional
        0.5 for similarities.
    return_verdict : bool, default=False
    random_state : int, RandomState or None, default=42
    internal_batch_size : int, optional

    Returns
    -------
    scores : ndarray of shape (n_samples,)
    verdict : ndarray of shape (n_samples,), only with ``return_verdict``

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import random_logit
    >>> net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> random_logit(net, torch.randn(4, 16)).shape
    (4,)
    """
    owner = "random_logit"
    sim = similarity_function(similarity, owner)
    model = Model(estimator, X, owner, explainer=explainer, target=target, y=y,
                  internal_batch_size=internal_batch_size)
    X = model.X
    with model.access():
        t = model.resolve_target()
        n_classes = model.forward(X[:1]).shape[1]
        if t is None or n_classes < 2:
            raise ValueError(f"{owner} needs a network with several outputs (a classifier).")
        off = torch.as_tensor(_off_classes(t, n_classes, seed_of(random_state)),
                              device=X.device)
        given = (model.explain(X, t) if relevance is None
                 else check_relevance(relevance, X, owner))
        rel = model.explain(X, off)
    scores = to_numpy(sim(_prepare(given, absolute, normalise),
                          _prepare(rel, absolute, normalise)))
    if return_verdict:
        return scores, _verdict(scores, similarity, threshold, owner)
    return scores
