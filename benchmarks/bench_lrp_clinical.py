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

``--budget`` measures instead where the relevance of MONAI's ViT (3D on the
volumes, 2D on one slice, 4 layers each) goes, per trained network and
explained sample, in float64
(:func:`~sklearn_relevance.explainers.lrp.relevance_budget`):
the relevance sum, what the ruled layers absorbed (biases, epsilon), what
constants added in code absorbed (class token, position embeddings), the
softmax rule's bias term (AttnLRP) and the residual, each over the explained
logit, median [min, max] over the seeds and samples; ``--output`` writes the
table as reStructuredText for the docs:

    python benchmarks/bench_lrp_clinical.py --budget --seeds 0 1 2 3 4 \
        --n-samples 16 --epochs 2 --n-explain 4 \
        --output docs/_static/lrp_vit_budget.rst

Needs ``monai`` (``pip install --no-deps monai==1.6.1 einops``).
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.explainers import LRP
from sklearn_relevance.explainers.lrp import BUDGET_KEYS, relevance_budget
from sklearn_relevance.modules import SelectOutput


def networks(small=False, vit_width=64):
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
            module__hidden_size=vit_width, module__mlp_dim=2 * vit_width,
            module__num_layers=4, module__num_heads=4, module__classification=True,
            module__num_classes=2, module__spatial_dims=3, module__post_activation=None),
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


def vits(small=False):
    """MONAI's ViT, 4 layers: 3D on the volumes, 2D on one slice (``small``:
    1 layer, hidden size 16, as ``networks(small=True)``)."""
    from monai.networks.nets import ViT

    if small:
        nets = vits()
        return {name.replace("4 layers", "1 layer"): dict(
            params, module__num_layers=1, module__hidden_size=16, module__mlp_dim=16)
            for name, params in nets.items()}

    base = dict(module=SelectOutput, module__module=ViT, module__output=0,
                module__in_channels=1, module__img_size=32, module__patch_size=8,
                module__hidden_size=64, module__mlp_dim=128, module__num_layers=4,
                module__num_heads=4, module__classification=True,
                module__num_classes=2, module__post_activation=None)
    return {"ViT (3D, 4 layers)": dict(base, module__spatial_dims=3),
            "ViT (2D, 4 layers)": dict(base, module__spatial_dims=2)}


BUDGET_ROWS = [(c, a) for a in ("attnlrp", "cp")
               for c in ("epsilon", "epsilon_plus", "alpha1_beta0")]


def budget(args):
    """The relevance budget of the ViTs (see the module docstring)."""
    shares = {}  # (network, composite, attention) -> {key: [per-sample ratios]}
    for seed in args.seeds:
        X3, y = data(args.n_samples, seed)
        for name, params in vits(args.small).items():
            X = X3 if "3D" in name else X3[:, :, 12]  # a slice through the blob
            net = RelevanceNetClassifier(**params, max_epochs=args.epochs, batch_size=8,
                                         lr=1e-3, random_state=seed).fit(X, y)
            module = copy.deepcopy(net.module_).double().eval()
            Xe = torch.as_tensor(X[: args.n_explain]).double()
            with torch.no_grad():
                target = module(Xe).argmax(1)
            for composite, attention in BUDGET_ROWS:
                lrp = LRP(composite=composite, attention=attention, conservation="off")
                b = relevance_budget(lrp, module, Xe, target)
                row = shares.setdefault((name, composite, attention),
                                        {k: [] for k in BUDGET_KEYS[1:]})
                for key in BUDGET_KEYS[1:]:
                    row[key].extend((b[key] / b["output"]).tolist())
        print(f"seed {seed} done", flush=True)
    header = ["network", "composite", "attention"] + [
        {"sum": "relevance sum", "layers": "layers (biases, epsilon)",
         "constants": "class token, position embeddings", "softmax": "softmax bias term",
         "residual": "residual"}[k] for k in BUDGET_KEYS[1:]]
    table = []
    for (name, composite, attention), row in shares.items():
        table.append([name, composite, attention] + [
            f"{statistics.median(v):.3g} [{min(v):.3g}, {max(v):.3g}]"
            for v in row.values()])
    for line in [header] + table:
        print(" | ".join(line), flush=True)
    if args.output:
        write_budget(args, header, table)


def write_budget(args, header, rows):
    """The table as a reStructuredText list-table (temp file + rename)."""
    command = "python benchmarks/bench_lrp_clinical.py " + shlex.join(sys.argv[1:])
    n = len(args.seeds) * args.n_explain
    size = "1 layer, hidden size 16" if args.small else "4 layers, hidden size 64"
    lines = [f".. generated by: {command}", "",
             f"MONAI 1.6.1 ViT, {size}, 4 heads, patch 8; 3D on "
             f"1 x 32^3 volumes, 2D on one 32 x 32 slice; trained {args.epochs} "
             f"epochs on {args.n_samples} samples per seed, seeds "
             f"{' '.join(map(str, args.seeds))}; {args.n_explain} explained samples "
             f"each (predicted class, float64). Each share over the explained logit, "
             f"median [min, max] over the {n} samples.", "",
             ".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + rows:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, args.output)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=16)
    p.add_argument("--n-explain", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true",
                   help="thin, shallow versions of the networks (same blocks)")
    p.add_argument("--budget", action="store_true",
                   help="the relevance budget of MONAI's ViT instead of the timings")
    p.add_argument("--vit-width", type=int, default=64,
                   help="hidden size of the 4-layer ViT (MLP twice as wide)")
    p.add_argument("--only", nargs="+", default=None,
                   help="network names (as printed) to run, e.g. 'ViT (3D, 4 layers)'")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="training and data seeds of --budget")
    p.add_argument("--output", default=None,
                   help="with --budget: write the table (reStructuredText) here")
    args = p.parse_args(argv)
    if args.budget:
        torch.manual_seed(args.seeds[0])
        return budget(args)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    X, y = data(args.n_samples, args.seed)
    print(f"{'network':20s} {'composite':13s} {'sum/logit':>26s} {'absorbed':>26s} "
          f"{'residual':>26s} {'LRP s':>7s} {'f+b s':>7s} {'ratio':>5s}")
    for name, params in networks(args.small, args.vit_width).items():
        if args.only and name not in args.only:
            continue
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
