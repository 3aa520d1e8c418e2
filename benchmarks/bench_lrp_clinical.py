"""LRP on clinical networks: conservation and time against forward + backward.

MONAI SEResNet50 and DenseNet121 (3D, 32^3) and a small 3D ViT, each trained
for ``--epochs`` epochs on synthetic volumes, then explained with
LRP-epsilon, epsilon-plus and alpha1-beta0 (the ViT also with CP-LRP's
constant attention weights, ``/cp``). Prints, per network and
composite, over the explained samples (median [min, max]):

* ``sum/logit``: the relevance sum over the explained logit;
* ``absorbed``: what the layers themselves absorbed (relevance out minus
  relevance in of every leaf layer, measured per call: biases, epsilon,
  stabilisers), over the logit;
* ``residual``: ``(logit - sum - absorbed) / logit``, relevance lost or
  created anywhere else: in the operations written as code (gates,
  concatenations, residual sums, attention) and, on a ViT, by the class
  token and position embeddings, parameters added to the activations;

and the time of one LRP explanation against one forward plus backward pass
of the same network on the same batch (median of ``--repeats``), measured
in the same run.

    python benchmarks/bench_lrp_clinical.py --n-samples 16 --epochs 2 --seed 0
    python benchmarks/bench_lrp_clinical.py --small --n-samples 8 --epochs 2 \
        --n-explain 4 --repeats 3

Needs ``monai`` (``pip install --no-deps monai==1.6.1 einops``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.explainers import LRP
from sklearn_relevance.modules import SelectOutput


def networks(small=False):
    from monai.networks.nets import SEResNet50, DenseNet121, ViT

    if small:  # the same architectures, thinner and shallower (a loaded CPU)
        nets = networks()
        nets["SEResNet50"].update(module__layers=(1, 1, 1, 1), module__inplanes=8)
        nets["DenseNet121"].update(module__init_features=8, module__growth_rate=4,
                                   module__block_config=(1, 1, 1, 1))
        nets["ViT (3D, 4 layers)"].update(module__num_layers=1, module__hidden_size=16,
                                          module__mlp_dim=16)
        nets["ViT (3D, 1 layer)"] = nets.pop("ViT (3D, 4 layers)")
        return nets
    return {
        "SEResNet50": dict(module=SEResNet50, module__spatial_dims=3,
                           module__in_channels=1, module__num_classes=2),
        "DenseNet121": dict(module=DenseNet121, module__spatial_dims=3,
                            module__in_channels=1, module__out_channels=2),
        "ViT (3D, 4 layers)": dict(
            module=SelectOutput, module__module=ViT, module__output=0,
            module__in_channels=1, module__img_size=32, module__patch_size=8,
            module__hidden_size=64, module__mlp_dim=128, module__num_layers=4,
            module__num_heads=4, module__classification=True, module__num_classes=2,
            module__spatial_dims=3, module__post_activation=None),
    }


def data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, size=(n, 1, 32, 32, 32)).astype(np.float32)
    y = np.arange(n) % 2
    X[y == 1, :, 8:16, 8:16, 8:16] += 2.0
    return X, y


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=16)
    p.add_argument("--n-explain", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true",
                   help="thin, shallow versions of the networks (same blocks)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    X, y = data(args.n_samples, args.seed)
    print(f"{'network':20s} {'composite':13s} {'sum/logit':>26s} {'absorbed':>26s} "
          f"{'residual':>26s} {'LRP s':>7s} {'f+b s':>7s} {'ratio':>5s}")
    for name, params in networks(args.small).items():
        net = RelevanceNetClassifier(**params, max_epochs=args.epochs, batch_size=8,
                                     lr=1e-3, random_state=args.seed).fit(X, y)
        module = net.module_.eval()
        Xe = torch.as_tensor(X[: args.n_explain])
        with torch.no_grad():
            out = module(Xe)
        target = out.argmax(1)
        logit = out[torch.arange(len(Xe)), target]

        def fwd_bwd():
            x = Xe.clone().requires_grad_(True)
            o = module(x)
            torch.autograd.grad(o[torch.arange(len(x)), target].sum(), x)

        base = timed(fwd_bwd, args.repeats)
        rows = [("epsilon", "attnlrp"), ("epsilon_plus", "attnlrp"),
                ("alpha1_beta0", "attnlrp")]
        if name.startswith("ViT"):
            rows += [("epsilon", "cp"), ("epsilon_plus", "cp")]
        for composite, attention in rows:
            lrp = LRP(composite=composite, conservation="off", attention=attention)
            label = composite if attention == "attnlrp" else f"{composite}/cp"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                R = lrp.explain(module, Xe, target)
                t = timed(lambda: lrp.explain(module, Xe, target), args.repeats)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sums = lrp.layer_relevance(module, Xe, target)
            leaves = {n for n, m in module.named_modules() if not list(m.children())}
            absorbed = sum(r_out - r_in for n, (r_in, r_out) in sums.items() if n in leaves)
            f = logit.double()
            total = R.reshape(len(Xe), -1).double().sum(1)
            cols = [total / f, absorbed / f, (f - total - absorbed) / f]
            text = " ".join(
                f"{float(c.median()):9.4f} [{float(c.min()):.3g}, {float(c.max()):.3g}]".rjust(26) for c in cols
            )
            print(f"{name:20s} {label:13s} {text} {t:7.2f} {base:7.2f} "
                  f"{t / base:5.2f}", flush=True)


if __name__ == "__main__":
    main()
