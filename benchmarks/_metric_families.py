"""The metric families of issue 25 against quantus 0.6 (``bench_metrics.py --families``).

Every case runs our metric and its quantus peer on the same network,
inputs, labels and maps (the gradient, precomputed and handed to both);
times are this process's CPU seconds (``time.process_time``; both libraries
run on one thread), because the machine is shared and wall time mostly
measures the other jobs. Metrics that explain again use the same gradient
explainer on both sides
(quantus through an ``explain_func`` that calls ours), so explanation
costs are equal and the ratio measures the metric machinery. Random
metrics draw different noise on the two sides (their equality on the same
draws is in tests/test_metrics_*.py), so no difference is printed for them.
"""

from __future__ import annotations

import pathlib
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

from _timing import best_of as _best_of  # noqa: E402


def best_of(fn, repeats):
    """Process CPU seconds (the machine is shared: wall time measures the
    other jobs), both libraries single-threaded."""
    return _best_of(fn, repeats, clock=time.process_time)


def forward_floor(net, run):
    """CPU seconds of the network passes ``run()`` makes, replayed alone.

    Every forward of ``net`` (or of a copy of it: hooks are copied with it)
    is recorded by a hook (input shape, dtype, whether the input asks for a
    gradient) and run again on zeros, with a backward to the input where
    the original input asked for one (an explanation). Any implementation
    of the metric makes these passes, so ``quantus time / this`` bounds the
    speed-up any implementation could reach on this machine."""
    calls = []

    def hook(module, args):
        x = args[0] if args else None
        if torch.is_tensor(x):
            calls.append((tuple(x.shape), x.dtype, torch.is_grad_enabled() and x.requires_grad))

    handle = net.register_forward_pre_hook(hook)
    try:
        run()
    finally:
        handle.remove()

    def replay():
        for shape, dtype, grad in calls:
            x = torch.zeros(shape, dtype=dtype, requires_grad=grad)
            if grad:
                torch.autograd.grad(net(x).sum(), x)
            else:
                with torch.no_grad():
                    net(x)

    return best_of(replay, 1)[0]


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import conftest  # noqa: E402,F401  (the torchvision stub zennit, hence quantus, needs)

from sklearn_relevance.explainers import Gradient  # noqa: E402
from sklearn_relevance import metrics as M  # noqa: E402


def small_cnn(ndim, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d if ndim == 2 else nn.Conv3d
    pool = nn.AdaptiveAvgPool2d(4) if ndim == 2 else nn.AdaptiveAvgPool3d(2)
    width = 16 if ndim == 2 else 8
    return nn.Sequential(conv(1, 8, 3, stride=2), nn.ReLU(), conv(8, 16, 3, stride=2),
                         nn.ReLU(), pool, nn.Flatten(), nn.Linear(16 * width, 10)).eval()


def explain_func(model, inputs, targets, **kwargs):
    return Gradient().explain(model, torch.as_tensor(np.asarray(inputs, np.float32)),
                              torch.as_tensor(np.asarray(targets))).detach().numpy()


def q(metric, net, x, y, a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(model=net, x_batch=x, y_batch=y, a_batch=None if a is None else a.copy(),
                     explain_func=explain_func, channel_first=True, device="cpu", **kw)
    if isinstance(out, dict):
        out = list(out.values())[-1]
    return np.asarray(out, dtype=np.float64)


def mprt_mean(quantus, net, x, y, a):
    """quantus' MPRT per layer, averaged over the randomised layers (its own
    ``return_average_correlation`` also averages in the original map's
    similarity with itself: it skips a key "orig" where the key is "original")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = quantus.MPRT(disable_warnings=True)(
            model=net, x_batch=x, y_batch=y, a_batch=a.copy(), explain_func=explain_func,
            channel_first=True, device="cpu")
    return np.mean([v for k, v in d.items() if k != "original"], 0)


def cases(quantus, quick, ndim):
    """(label, quantus peer, ours(net, x, y, a), quantus(net, x, y, a), compare) with
    compare True (print the largest difference), False (random draws differ) or
    "definition" (quantus computes something else: docs/metrics.rst says what)."""
    S = 10 if quick else 50
    spatial = 64 if ndim == 2 else 32
    fis = spatial if ndim == 2 else 512  # features per step of the ordered metrics
    pct = list(range(1, 100, 10 if quick else 2))
    out = [
        (f"max_sensitivity, {S} copies", "MaxSensitivity",
         lambda n, x, y, a: M.max_sensitivity(n, x, a, target=y, n_samples=S, random_state=0),
         lambda n, x, y, a: q(quantus.MaxSensitivity(nr_samples=S, disable_warnings=True),
                              n, x, y, a), False),
        (f"avg_sensitivity, {S} copies", "AvgSensitivity",
         lambda n, x, y, a: M.avg_sensitivity(n, x, a, target=y, n_samples=S, random_state=0),
         lambda n, x, y, a: q(quantus.AvgSensitivity(nr_samples=S, disable_warnings=True),
                              n, x, y, a), False),
        (f"local_lipschitz_estimate, {S} copies", "LocalLipschitzEstimate",
         lambda n, x, y, a: M.local_lipschitz_estimate(n, x, a, target=y, n_samples=S,
                                                       normalise=False, random_state=0),
         lambda n, x, y, a: q(quantus.LocalLipschitzEstimate(
             nr_samples=S, normalise=False, disable_warnings=True), n, x, y, a), False),
        (f"relative_input_stability, {S} copies", "RelativeInputStability",
         lambda n, x, y, a: M.relative_input_stability(n, x, a, target=y, n_samples=S,
                                                       random_state=0),
         lambda n, x, y, a: q(quantus.RelativeInputStability(nr_samples=S,
                                                             disable_warnings=True),
                              n, x, y, a), False),
        (f"relative_output_stability, {S} copies", "RelativeOutputStability",
         lambda n, x, y, a: M.relative_output_stability(n, x, a, target=y, n_samples=S,
                                                        random_state=0),
         lambda n, x, y, a: q(quantus.RelativeOutputStability(nr_samples=S,
                                                              disable_warnings=True),
                              n, x, y, a), False),
        (f"relative_representation_stability, {S} copies", "RelativeRepresentationStability",
         lambda n, x, y, a: M.relative_representation_stability(n, x, a, target=y,
                                                                n_samples=S, random_state=0),
         lambda n, x, y, a: q(quantus.RelativeRepresentationStability(
             nr_samples=S, disable_warnings=True), n, x, y, a), False),
        ("mprt, cascading, every layer", "MPRT",
         lambda n, x, y, a: M.model_parameter_randomisation(n, x, a, target=y, layers="mean"),
         lambda n, x, y, a: mprt_mean(quantus, n, x, y, a), True),
        ("mprt, cascading, whole network", "MPRT(skip_layers)",
         lambda n, x, y, a: M.model_parameter_randomisation(n, x, a, target=y),
         lambda n, x, y, a: q(quantus.MPRT(skip_layers=True, return_last_correlation=True,
                                           disable_warnings=True), n, x, y, a), True),
        ("smooth_mprt, 10 copies", "SmoothMPRT",
         lambda n, x, y, a: M.model_parameter_randomisation(n, x, None, target=y,
                                                            smooth_samples=10),
         lambda n, x, y, a: q(quantus.SmoothMPRT(nr_samples=10, skip_layers=True,
                                                 layer_order="top_down",
                                                 return_last_correlation=True,
                                                 disable_warnings=True), n, x, y, None,
                              explain_func_kwargs={}), False),
        ("efficient_mprt, 100 bins", "EfficientMPRT",
         lambda n, x, y, a: M.efficient_model_parameter_randomisation(n, x, target=y),
         lambda n, x, y, a: q(quantus.EfficientMPRT(complexity_func_kwargs={"n_bins": 100},
                                                    disable_warnings=True), n, x, y, None),
         True),
        ("random_logit", "RandomLogit",
         lambda n, x, y, a: M.random_logit(n, x, a, target=y, normalise=False),
         lambda n, x, y, a: q(quantus.RandomLogit(num_classes=10, normalise=False,
                                                  disable_warnings=True), n, x, y, a), True),
        ("faithfulness_correlation, 100 runs of 224", "FaithfulnessCorrelation",
         lambda n, x, y, a: M.faithfulness_correlation(n, x, a, target=y, random_state=0),
         lambda n, x, y, a: q(quantus.FaithfulnessCorrelation(return_aggregate=False,
                                                              disable_warnings=True),
                              n, x, y, a), False),
        (f"faithfulness_estimate, {fis} per step", "FaithfulnessEstimate",
         lambda n, x, y, a: M.faithfulness_estimate(n, x, a, target=y, features_in_step=fis),
         lambda n, x, y, a: q(quantus.FaithfulnessEstimate(features_in_step=fis,
                                                           disable_warnings=True),
                              n, x, y, a), True),
        (f"monotonicity_arya, {fis} per step", "Monotonicity",
         lambda n, x, y, a: M.monotonicity_arya(n, x, a, target=y, features_in_step=fis),
         lambda n, x, y, a: q(quantus.Monotonicity(features_in_step=fis,
                                                   disable_warnings=True), n, x, y, a),
         "definition"),
        (f"monotonicity_nguyen, {fis * 4} per step x 5", "MonotonicityCorrelation",
         lambda n, x, y, a: M.monotonicity_nguyen(n, x, a, target=y, n_samples=5,
                                                  features_in_step=fis * 4, random_state=0),
         lambda n, x, y, a: q(quantus.MonotonicityCorrelation(
             nr_samples=5, features_in_step=fis * 4, disable_warnings=True), n, x, y, a),
         False),
        (f"sensitivity_n_curve, {fis} per step", "SensitivityN",
         lambda n, x, y, a: M.sensitivity_n_curve(n, x, a, target=y, features_in_step=fis),
         lambda n, x, y, a: q(quantus.SensitivityN(features_in_step=fis,
                                                   return_aggregate=False,
                                                   disable_warnings=True), n, x, y, a), True),
        ("completeness", "Completeness",
         lambda n, x, y, a: M.completeness_gap(n, x, a, target=y),
         lambda n, x, y, a: q(quantus.Completeness(disable_warnings=True), n, x, y, a),
         "definition"),
    ]
    if ndim == 2:
        out += [
            ("infidelity, patches of 8", "Infidelity",
             lambda n, x, y, a: M.infidelity(n, x, a, target=y, patch_sizes=[8]),
             lambda n, x, y, a: q(quantus.Infidelity(perturb_patch_sizes=[8],
                                                     n_perturb_samples=1,
                                                     disable_warnings=True),
                                  n, x, y, a), True),
            ("selectivity, patches of 8", "Selectivity",
             lambda n, x, y, a: M.selectivity_curve(n, x, a, target=y, patch_size=8),
             lambda n, x, y, a: q(quantus.Selectivity(patch_size=8, disable_warnings=True),
                                  n, x, y, a), True),
            (f"road (MoRF), {len(pct)} percentages", "ROAD",
             lambda n, x, y, a: M.road_curve(n, x, a, target=y, percentages=pct,
                                             random_state=0)[1].mean(0),
             lambda n, x, y, a: q(quantus.ROAD(percentages=pct, disable_warnings=True),
                                  n, x, y, a), False),
            ("irof, SLIC superpixels, baseline 0", "IROF",
             lambda n, x, y, a: M.irof(n, x, a, target=y, baseline=0.0),
             lambda n, x, y, a: q(quantus.IROF(perturb_baseline=0.0, return_aggregate=False,
                                               disable_warnings=True), n, x, y, a), True),
        ]
        if not quick:
            out.append(("non_sensitivity, every pixel", "NonSensitivity",
                        lambda n, x, y, a: M.non_sensitivity(n, x, a, target=y,
                                                             normalise=False),
                        lambda n, x, y, a: q(quantus.NonSensitivity(normalise=False,
                                                                    disable_warnings=True),
                                             n, x, y, a), True))
    return out


def run(quantus, repeats, quick, only=None, floor=False, quantus_repeats=1):
    """Rows ``(case, peer, ours_s, quantus_s, diff, passes_s)`` and the
    randomisation cost lines, for 64 x 1 x 64 x 64 images and 8 x 1 x 32^3
    volumes (``passes_s``: :func:`forward_floor` of ours, with ``floor``)."""
    if not hasattr(np, "trapz"):  # quantus 0.6 calls np.trapz (gone in numpy 2)
        np.trapz = np.trapezoid
    rows, costs = [], []
    for ndim, n, side in [(2, 64, 64), (3, 8, 32)]:
        net = small_cnn(ndim)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(n, 1, *([side] * ndim))).astype(np.float32)
        if ndim == 2:
            x = np.abs(x)  # SLIC superpixels need a positive image
        with torch.no_grad():
            y = net(torch.as_tensor(x)).argmax(1).numpy()
        t_explain, a = best_of(lambda: explain_func(net, x, y), repeats)
        shape = f"{n} x 1x{'x'.join([str(side)] * ndim)}"
        for label, peer, ours_fn, q_fn, det in cases(quantus, quick, ndim):
            if only and not any(o in label for o in only):
                continue
            try:
                tq, ref = best_of(lambda: q_fn(net, x, y, a), quantus_repeats)
            except Exception as exc:  # quantus refuses some inputs (e.g. 5D)
                tq, ref = float("nan"), None
                peer = f"{peer} (fails: {type(exc).__name__})"
            to, ours = best_of(lambda: ours_fn(net, x, y, a), repeats)
            diff = (float(np.nanmax(np.abs(np.asarray(ours, np.float64).ravel()
                                           - ref.ravel())))
                    if det is True and ref is not None and np.size(ref) == np.size(ours)
                    else det)
            tf = forward_floor(net, lambda: ours_fn(net, x, y, a)) if floor else None
            rows.append((f"{label}, {shape}", peer, to, tq, diff, tf))
            compared = [count(net) for prefix, count in _COMPARED.items()
                        if label.startswith(prefix)]
            if compared:
                costs.append((f"{label}, {shape}", to, t_explain, compared[0]))
            print(rows[-1], file=sys.stderr, flush=True)
    return rows, costs


#: how many explanations a randomisation test compares: the original map
#: (given) and the map of the randomised network, of each cascade step (one
#: per layer the metric re-draws: those with ``reset_parameters``, as
#: ``randomised_layers`` picks them) or of the other class
_COMPARED = {
    "mprt, cascading, every layer": lambda net: 1 + sum(
        hasattr(m, "reset_parameters") for m in net.modules()),
    "mprt, cascading, whole network": lambda net: 2,
    "random_logit": lambda net: 2,
}


def report(rows, costs):
    floor = any(r[5] is not None for r in rows)
    extra = (" network passes alone (s) | quantus / passes |", "---:|---:|") if floor else ("", "")
    print(f"| case | quantus peer | ours (s) | quantus (s) | speed-up | max abs diff |{extra[0]}")
    print(f"|---|---|---:|---:|---:|---:|{extra[1]}")
    for case, peer, to, tq, diff, tf in rows:
        d = {False: "random", "definition": "definition differs", None: "-"}.get(
            diff, None) if not isinstance(diff, float) else f"{diff:.1e}"
        more = f" {tf:.3f} | {tq / tf:.1f}x |" if tf else ""
        print(f"| {case} | {peer} | {to:.3f} | {tq:.3f} | {tq / to:.1f}x | {d} |{more}")
    print("\nrandomisation tests against the explanations they compare (the original "
          "map is given: each test computes one of them):\n")
    print("| test | test (s) | one explanation (s) | test / one | explanations compared "
          "| test / their cost |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, to, te, k in costs:
        print(f"| {case} | {to:.3f} | {te:.3f} | {to / te:.2f}x | {k} | {to / (k * te):.2f}x |")
