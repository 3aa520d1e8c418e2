"""ROAD: remove and debias (Rong et al. 2022), batched.

Pixels are removed in order of relevance (most relevant first, MoRF, or
least relevant first, LeRF) and *imputed* from their neighbours instead of
set to a constant, so that the network cannot read the shape of the removed
region: each removed pixel takes the weighted mean of its 8 neighbours
(weights 1/6 for edge and 1/12 for corner neighbours, quantus'
``noisy_linear_imputation``), which is a sparse linear system per image,
plus Gaussian noise of standard deviation ``noise``.

quantus solves one system per image and percentage with scipy; here all
images and percentages of a chunk are solved together by conjugate
gradients on the GPU or CPU (the operator is a 3 x 3 convolution restricted
to the removed pixels, applied separably as shifted adds; on the CPU in
row chunks that stay in the caches), started from a push-pull fill of the
holes so that the slow, smooth part of the solution is there from the
start, and run until every residual is below ``tol`` times its right-hand
side (a system not solved within ``max_iter`` warns).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning

from .._validation import check_choice, check_int, check_real
from ._checks import to_numpy
from ._explaining import Model, check_relevance, seed_of, step_draws
from ._perturb import feature_ranks

__all__ = ["road_curve", "road", "noisy_linear_imputation"]


def _smooth_121(v):
    """The zero-padded 3 x 3 sum with weights outer([1, 2, 1], [1, 2, 1]),
    separably: two contiguous adds per axis."""
    h = v * 2
    h[..., 1:].add_(v[..., :-1])
    h[..., :-1].add_(v[..., 1:])
    u = h * 2
    u[..., 1:, :].add_(h[..., :-1, :])
    u[..., :-1, :].add_(h[..., 1:, :])
    return u


def _neighbour_sum(v):
    """The weighted sum of a pixel's 8 neighbours with zero padding: weights
    1/6 (edges) and 1/12 (corners) are outer([1, 2, 1], [1, 2, 1]) / 12 less
    the centre's 4/12 (float64 convolutions have no fast CPU kernel)."""
    return _smooth_121(v).div_(12).sub_(v / 3)


def _push_pull(x, known):
    """A smooth fill of the unknown pixels: the mean of known pixels over
    ever coarser 2 x 2 blocks (push), filled back in finest first (pull)."""
    levels = [(x * known, known)]
    while min(levels[-1][0].shape[-2:]) > 1:
        v, w = levels[-1]
        levels.append((F.avg_pool2d(v, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    v, w = levels[-1]
    fill = torch.where(w > 0, v / w.clamp_min(1e-300), torch.zeros_like(v))
    for v, w in reversed(levels[:-1]):
        up = F.interpolate(fill, size=v.shape[-2:], mode="nearest")
        fill = torch.where(w > 0, v / w.clamp_min(1e-300), up)
    return fill


def noisy_linear_imputation(x, removed, *, noise=0.01, noise_draws=None, tol=1e-10,
                            max_iter=None):
    """Impute the ``removed`` pixels of images ``x`` from their neighbours.

    Parameters
    ----------
    x : Tensor of shape (rows, channels, H, W)
    removed : bool Tensor of shape (rows, 1, H, W)
        Pixels to impute (every channel).
    noise : float, default=0.01
        Standard deviation of the Gaussian noise added to imputed pixels.
    noise_draws : Tensor of x's shape, optional
        Standard normal draws (``None``: no noise).
    tol : float, default=1e-10
        Relative residual at which conjugate gradients stop (float64).
    max_iter : int, optional
        Default ``4 * (H + W) + 50``. A system not solved to ``tol`` within
        it warns (``ConvergenceWarning``, with the residual reached).

    Returns
    -------
    Tensor of x's shape and dtype
    """
    owner = "noisy_linear_imputation"
    tol = check_real(tol, "tol", owner, low=0, closed="neither")
    R, C, H, W = x.shape
    max_iter = 4 * (H + W) + 50 if max_iter is None else check_int(max_iter, "max_iter", owner)
    xs = x.double().reshape(R * C, 1, H, W)
    m = removed.expand(R, C, H, W).reshape(R * C, 1, H, W).double()
    # the weight sum of each pixel's neighbours, plus the 1/3 of _neighbour_sum's centre
    S3 = _neighbour_sum(torch.ones(1, 1, H, W, dtype=torch.float64, device=x.device)) + 1 / 3
    # on the CPU, rows of about _CG_CHUNK pixels at a time keep the solver's
    # vectors in the caches (1.3-1.5x on 64 x 64 images); a GPU takes them all
    rows = R * C if x.device.type != "cpu" else max(1, _CG_CHUNK // (H * W))
    solved = [_solve(xs[i:i + rows], m[i:i + rows], S3, tol, max_iter)
              for i in range(0, R * C, rows)]
    out = torch.cat([o for o, _ in solved]).reshape(R, C, H, W)
    unsolved = torch.cat([u for _, u in solved])
    if unsolved.numel():
        warnings.warn(f"noisy_linear_imputation: {unsolved.numel()} system(s) not solved to "
                      f"tol={tol:g} in max_iter={max_iter} iterations (worst relative "
                      f"residual {float(unsolved.max()):.1e}); raise max_iter.",
                      ConvergenceWarning, stacklevel=2)
    if noise_draws is not None and noise:
        out = out + noise * noise_draws.double() * m.reshape(R, C, H, W)
    return out.to(x.dtype)


#: pixels per conjugate-gradient solve on the CPU (see noisy_linear_imputation)
_CG_CHUNK = 2 ** 16


def _dot(a, b):
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1))


def _solve(xs, m, S3, tol, max_iter):
    """Conjugate gradients for the removed pixels ``m`` of the rows ``xs``:
    each removed pixel equals the weighted mean of its neighbours; the known
    pixels are returned as they are. Returns the rows and the relative
    residuals of the rows not solved to ``tol`` within ``max_iter``."""
    S12 = S3 * 12

    def A(p, mm):  # m (S p - N p) = (u - 12 S3 p) * (-m / 12), p zero outside m; mm = -m / 12
        return torch.addcmul(_smooth_121(p), S12, p, value=-1.0).mul_(mm)

    c = m * _neighbour_sum(xs * (1 - m))
    v = m * _push_pull(xs, 1 - m)
    active = torch.arange(xs.shape[0], device=xs.device)
    out = v.clone()
    mm, cc, vv = m * (-1 / 12), c, v
    r = cc - A(vv, mm)
    p = r.clone()
    rr = _dot(r, r)
    cn = _dot(cc, cc).clamp_min(1e-300)
    for it in range(max_iter):
        if it % 8 == 0:
            done = rr <= (tol ** 2) * cn
            if bool(done.any()):
                out[active[done]] = vv[done]
                keep = ~done
                active, mm, cc, vv, r, p, rr, cn = (active[keep], mm[keep], cc[keep], vv[keep],
                                                    r[keep], p[keep], rr[keep], cn[keep])
            if active.numel() == 0:
                break
        Ap = A(p, mm)
        pAp = _dot(p, Ap)
        alpha = torch.where(pAp > 0, rr / pAp, 0.0)  # 0 once a row has converged exactly
        vv.addcmul_(alpha[:, None, None, None], p)
        r.addcmul_(alpha[:, None, None, None], Ap, value=-1)
        rr_new = _dot(r, r)
        beta = torch.where(rr > 0, rr_new / rr, 0.0)
        p.mul_(beta[:, None, None, None]).add_(r)
        rr = rr_new
    residual = torch.zeros(0, dtype=torch.float64, device=xs.device)
    if active.numel():
        out[active] = vv
        residual = (rr / cn).sqrt()
    return torch.where(m > 0, out, xs), residual[residual > tol]


def road_curve(estimator, X, relevance, *, y=None, target=None,
               percentages=tuple(range(1, 100, 2)), order="morf", noise=0.01,
               response="accuracy", random_state=None, internal_batch_size=None):
    """ROAD curves: the response after removing each percentage of pixels.

    At percentage ``p`` the ``int(H * W * p / 100)`` most (``order="morf"``)
    or least (``"lerf"``) relevant pixels are imputed
    (:func:`noisy_linear_imputation`, every channel of a pixel together) and
    the network's response is recorded: with ``response="accuracy"`` 1.0
    when its arg-max is the target, as ``quantus.ROAD`` (MoRF) records. The
    relevance of a pixel is the sum over its channels.

    Parameters
    ----------
    estimator : fitted estimator, Pipeline or torch.nn.Module
    X : array-like or Tensor of shape (n_samples, channels, H, W)
    relevance : array-like or Tensor
        Maps of X's shape or one channel of it.
    y, target
        The output followed (``None``: "true" with y, else "predicted").
    percentages : sequence of int, default=range(1, 100, 2)
    order : {"morf", "lerf"}, default="morf"
    noise : float, default=0.01
        Standard deviation of the noise on imputed pixels.
    response : {"accuracy", "proba", "logit"}, default="accuracy"
    random_state : int, RandomState or None, default=None
        Seed of the noise.
    internal_batch_size : int, optional
        Rows (images x percentages) per pass.

    Returns
    -------
    percentages : ndarray of shape (n_percentages,)
    curves : ndarray of shape (n_samples, n_percentages)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import road_curve
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> X = torch.randn(2, 1, 8, 8)
    >>> p, curves = road_curve(net, X, torch.randn(2, 1, 8, 8), percentages=[10, 50, 90],
    ...                        random_state=0)
    >>> curves.shape
    (2, 3)
    """
    owner = "road_curve"
    check_choice(order, "order", owner, {"morf", "lerf"})
    check_choice(response, "response", owner, {"accuracy", "proba", "logit"})
    noise = check_real(noise, "noise", owner, low=0)
    pct = np.asarray(percentages)
    if pct.ndim != 1 or not len(pct) or not np.all((pct >= 0) & (pct <= 100)):
        raise ValueError(f"The 'percentages' parameter of {owner} must be a non-empty list of "
                         f"numbers in [0, 100]. Got {percentages!r} instead.")
    model = Model(estimator, X, owner, target=target, y=y,
                  internal_batch_size=internal_batch_size, need_explainer=False)
    X = model.X
    if X.ndim != 4:
        raise ValueError(f"{owner} applies to images of shape (n, channels, H, W). Got X of "
                         f"shape {tuple(X.shape)} instead.")
    n, C, H, W = X.shape
    a = check_relevance(relevance, X, owner).sum(1).reshape(n, H * W)
    ranks = feature_ranks(a, descending=order == "morf").reshape(n, 1, H, W)
    counts = torch.as_tensor([int(H * W * p / 100) for p in pct], device=X.device)
    seed = seed_of(random_state)
    curves = torch.empty(len(pct), n, dtype=torch.float64, device=X.device)
    with model.access():
        t = model.resolve_target()
        if response == "accuracy" and t is None:
            raise ValueError(f"response='accuracy' in {owner} needs a classifier.")
        for sl in model.step_chunks(len(pct), "forward_pass_input", 4):
            k = sl.stop - sl.start
            removed = ranks[None] < counts[sl, None, None, None, None]  # (k, n, 1, H, W)
            draws = None
            if noise:
                draws = step_draws(lambda g: torch.randn(X.shape, generator=g,
                                                         device=X.device),
                                   seed, range(sl.start, sl.stop), X.device)
                draws = draws.reshape(k * n, C, H, W)
            rows = noisy_linear_imputation(X.repeat(k, 1, 1, 1),
                                           removed.reshape(k * n, 1, H, W), noise=noise,
                                           noise_draws=draws)
            tk = None if t is None else t.repeat(k)
            if response == "accuracy":
                out = model.forward(rows)
                curves[sl] = (out.argmax(1) == tk).double().reshape(k, n)
            else:
                curves[sl] = model.response(rows, tk, response).double().reshape(k, n)
    return pct, to_numpy(curves.T)


def road(estimator, X, relevance, *, order="morf", **options):
    """ROAD score per sample: the mean of the :func:`road_curve` over the
    percentages (the area under the curve, divided by its width).

    With ``order="morf"`` lower is better (accuracy should fall fast as the
    most relevant pixels go); with ``order="lerf"`` higher is better. A
    random map sits between the two; the gap LeRF - MoRF is the ROAD
    faithfulness of a map.

    Parameters
    ----------
    estimator, X, relevance
        As :func:`road_curve`.
    order : {"morf", "lerf"}, default="morf"
    **options
        Keyword arguments of :func:`road_curve`.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import road
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> road(net, torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8), random_state=0).shape
    (2,)
    """
    _, curves = road_curve(estimator, X, relevance, order=order, **options)
    return curves.mean(1)
