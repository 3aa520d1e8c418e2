"""Benchmark compare_explainers against the same study done by hand with captum + quantus.

Case (issue 6): 64 images of 1 x 64 x 64 (synthetic lesions, every image with
a lesion mask), a small ImageCNN, six explainers -- gradient, gradient x
input, integrated gradients (50 steps), SmoothGrad (50 samples), guided
backprop, occlusion (8 x 8 window, stride 4) -- and four metrics -- fidelity
(most- and least-important-first pixel-flipping curves in 16 steps of the
class probability), mask ROC-AUC, mask Dice (top pixels as many as the mask)
and sparseness (Gini).

Peer, "by hand": captum's Saliency (abs=False), InputXGradient,
IntegratedGradients, NoiseTunnel(Saliency), GuidedBackprop and Occlusion;
quantus 0.6's PixelFlipping (run on the map and on its negation for the two
orders), AUC and Sparseness; Dice with numpy per sample (quantus has none).
Our side additionally computes 1,000 paired bootstrap resamples per metric.

Run ``python benchmarks/bench_compare_explainers.py [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch

from sklearn_relevance.datasets import make_lesion_images
from sklearn_relevance.evaluation import compare_explainers
from sklearn_relevance.explainers import (
    Gradient,
    GradientXInput,
    GuidedBackprop,
    IntegratedGradients,
    Occlusion,
    SmoothGrad,
)
from sklearn_relevance.modules import ImageCNN

from _timing import best_of  # noqa: E402  (benchmarks/ is on the path)

N, SIZE, STEPS, NOISE = 64, 64, 16, 0.15


def model():
    torch.manual_seed(0)
    return ImageCNN((1, SIZE, SIZE), 2, channels=(8, 16, 32), hidden_units=32).eval()


def ours(net, X, y, masks):
    explainers = {
        "gradient": Gradient(),
        "gradient_x_input": GradientXInput(),
        "integrated_gradients": IntegratedGradients(n_steps=50),
        "smoothgrad": SmoothGrad(n_samples=50, stdevs=NOISE),
        "guided_backprop": GuidedBackprop(),
        "occlusion": Occlusion(8, stride=4),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_explainers(
            net, X, y, masks=masks, explainers=explainers,
            metrics=["fidelity", "mask_roc_auc", "mask_dice", "sparseness"],
            metric_params={"fidelity": {"steps": STEPS}}, random_state=0)


def _dice_by_hand(a, s):
    out = []
    for ai, si in zip(np.abs(a).reshape(len(a), -1), s.reshape(len(s), -1)):
        k = int(si.sum())
        thr = np.sort(ai)[::-1][k - 1]
        top = ai >= thr
        out.append(2 * (top & si).sum() / (top.sum() + si.sum()))
    return np.asarray(out)


def by_hand(net, X, y, masks):
    import quantus
    from captum.attr import GuidedBackprop as CGuided
    from captum.attr import InputXGradient, NoiseTunnel, Saliency
    from captum.attr import IntegratedGradients as CIG
    from captum.attr import Occlusion as COcclusion

    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    attributions = {
        "gradient": lambda: Saliency(net).attribute(Xt, target=yt, abs=False),
        "gradient_x_input": lambda: InputXGradient(net).attribute(Xt, target=yt),
        "integrated_gradients": lambda: CIG(net).attribute(Xt, target=yt, n_steps=50),
        "smoothgrad": lambda: NoiseTunnel(Saliency(net)).attribute(
            Xt, target=yt, nt_type="smoothgrad", nt_samples=50, stdevs=NOISE, abs=False),
        "guided_backprop": lambda: CGuided(net).attribute(Xt, target=yt),
        "occlusion": lambda: COcclusion(net).attribute(
            Xt, target=yt, sliding_window_shapes=(1, 8, 8), strides=(1, 4, 4),
            baselines=0.0, perturbations_per_eval=64),
    }
    fis = SIZE * SIZE // STEPS
    rows, phases = {}, {"captum": 0.0, "quantus + numpy": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            f0 = torch.softmax(net(Xt), 1)[torch.arange(N), yt].numpy()
        for name, attribute in attributions.items():
            t = time.perf_counter()
            a = attribute().detach().numpy()
            phases["captum"] += time.perf_counter() - t
            t = time.perf_counter()
            curves = {}
            for order, sign in (("mif", 1.0), ("lif", -1.0)):
                pf = quantus.PixelFlipping(features_in_step=fis, perturb_baseline=0.0,
                                           disable_warnings=True, display_progressbar=False)
                c = np.asarray(pf(model=net, x_batch=X, y_batch=y, a_batch=sign * a,
                                  softmax=True, device="cpu", batch_size=64))
                curves[order] = np.concatenate([f0[:, None], c], 1)
            fr = np.linspace(0, 1, STEPS + 1)
            fidelity = (np.trapezoid(curves["lif"], fr, axis=1)
                        - np.trapezoid(curves["mif"], fr, axis=1)) / f0
            auc = quantus.AUC(disable_warnings=True, display_progressbar=False)(
                model=None, x_batch=X, y_batch=y, a_batch=np.abs(a), s_batch=masks)
            sparse = quantus.Sparseness(disable_warnings=True, display_progressbar=False)(
                model=None, x_batch=X, y_batch=y, a_batch=a.copy())
            rows[name] = (np.mean(fidelity), np.mean(auc), np.mean(_dice_by_hand(a, masks)),
                          np.mean(sparse))
            phases["quantus + numpy"] += time.perf_counter() - t
    return rows, phases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y, masks = make_lesion_images(N, shape=(SIZE, SIZE), class_ratio=1.0, random_state=0)
    net = model()
    t_ours, table = best_of(lambda: ours(net, X, y, masks), args.repeats)
    t_peer, (peer, phases) = best_of(lambda: by_hand(net, X, y, masks), args.repeats)
    import captum
    import quantus

    print(f"machine: {platform.machine()} ({platform.processor() or 'cpu'}), torch "
          f"{torch.__version__} ({args.threads} thread(s)), captum {captum.__version__}, "
          f"quantus {getattr(quantus, '__version__', '?')}, best of {args.repeats}\n")
    print("| case | ours (s) | captum + quantus (s) | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| compare_explainers, {N} x 1x{SIZE}x{SIZE}, 6 explainers x 4 metrics | "
          f"{t_ours:.2f} | {t_peer:.2f} | {t_peer / t_ours:.1f}x |")
    print("\nper-explainer means, ours / by hand (fidelity, ROC-AUC, Dice, sparseness):")
    for name, row in peer.items():
        mine = table.loc[name, ["fidelity", "mask_roc_auc", "mask_dice", "sparseness"]]
        pairs = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(mine, row))
        print(f"  {name:22s} {pairs}")
    print("\ntime per explainer (explanation + metrics), ours (s):",
          {k: round(v, 2) for k, v in table.attrs["time_s"].items()})
    print("by hand, time per phase (s):",
          {k: round(v, 2) for k, v in phases.items() if k in ("captum", "quantus + numpy")})


if __name__ == "__main__":
    main()
