"""Benchmark: modality_importance on 10,000 multimodal samples.

Times the three methods of :func:`sklearn_relevance.multimodal.modality_importance`
(chunked by a memory budget, post-fusion features encoded once) against peers
measured in the same run:

* gradient: a per-sample loop (the straightforward implementation: one
  forward and one backward per sample);
* permutation: shuffling the *input* modality and re-running the whole
  network for every (modality, repeat), in the same chunks;
* integrated gradients: captum's ``IntegratedGradients`` on the head over the
  post-fusion features (same steps; captum batches by steps, so its
  ``internal_batch_size`` must be at least the number of samples).

Run ``python benchmarks/bench_multimodal.py [--n-samples 10000] [--threads 1]``.
"""

import argparse

import numpy as np
import torch

from sklearn_relevance.modules.fusion import FusionNet
from sklearn_relevance.multimodal import make_multimodal_cases, modality_importance

from _timing import best_of  # noqa: E402  (benchmarks/ is on the path)


def loop_gradient(net, X):
    """Per-sample loop: |d p_c / d fused| averaged, summed per modality."""
    n = len(next(iter(X.values())))
    total = torch.zeros(net.n_fused)
    for i in range(n):
        with torch.no_grad():
            h = net.fuse(**{k: v[i:i + 1] for k, v in X.items()})
        h.requires_grad_(True)
        p = net.head(h).softmax(1)[0]
        (g,) = torch.autograd.grad(p[p.argmax()], h)
        total += g[0].abs()
    scores = {k: float(total[s].sum()) for k, s in net.feature_slices.items()}
    return {k: v / sum(scores.values()) for k, v in scores.items()}


@torch.no_grad()
def input_permutation(net, X, n_repeats, chunk, seed=0):
    """Shuffle each input modality and re-run the whole network, chunk by chunk."""
    rng = np.random.RandomState(seed)
    n = len(next(iter(X.values())))

    def proba(Xp):
        return torch.cat([net(**{k: v[s:s + chunk] for k, v in Xp.items()}).softmax(1)
                          for s in range(0, n, chunk)])

    p0 = proba(X)
    t = p0.argmax(1, keepdim=True)
    p0 = p0.gather(1, t)
    scores = {}
    for name in X:
        diffs = []
        for _ in range(n_repeats):
            Xp = dict(X, **{name: X[name][torch.as_tensor(rng.permutation(n))]})
            diffs.append((proba(Xp).gather(1, t) - p0).abs().mean())
        scores[name] = float(torch.stack(diffs).mean())
    return {k: v / sum(scores.values()) for k, v in scores.items()}


def captum_ig(net, X, n_steps, chunk):
    from captum.attr import IntegratedGradients

    with torch.no_grad():
        fused = torch.cat([net.fuse(**{k: v[s:s + chunk] for k, v in X.items()})
                           for s in range(0, len(X["ct"]), chunk)])
        target = net.head(fused).argmax(1)
    ig = IntegratedGradients(lambda h: net.head(h).softmax(1))
    attr = ig.attribute(fused, baselines=torch.zeros_like(fused), target=target,
                        n_steps=n_steps, method="riemann_middle",
                        internal_batch_size=max(4096, len(fused)))
    per = attr.abs().mean(0)
    scores = {k: float(per[s].sum()) for k, s in net.feature_slices.items()}
    return {k: v / sum(scores.values()) for k, v in scores.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    X, _, _ = make_multimodal_cases(6, args.n_samples, random_state=0)
    X = {k: torch.as_tensor(v) for k, v in X.items()}
    net = FusionNet({k: tuple(v.shape[1:]) for k, v in X.items()}, 2).eval()
    n_repeats, n_steps, chunk = 5, 32, 2048

    rows = []
    t_ours, imp = best_of(lambda: modality_importance(net, X), args.repeat)
    t_peer, imp_peer = best_of(lambda: loop_gradient(net, X), 1)
    rows.append(("gradient", t_ours, "per-sample loop", t_peer, imp, imp_peer))
    t_ours, imp = best_of(lambda: modality_importance(
        net, X, method="permutation", n_repeats=n_repeats, random_state=0), args.repeat)
    t_peer, imp_peer = best_of(lambda: input_permutation(net, X, n_repeats, chunk), 1)
    rows.append(("permutation", t_ours, "re-run network per shuffle", t_peer, imp, imp_peer))
    t_ours, imp = best_of(lambda: modality_importance(
        net, X, method="integrated_gradients", n_steps=n_steps), args.repeat)
    try:
        t_peer, imp_peer = best_of(lambda: captum_ig(net, X, n_steps, chunk), 1)
        peer = "captum IntegratedGradients"
    except ImportError:
        t_peer, imp_peer, peer = float("nan"), imp, "captum (not installed)"
    rows.append(("integrated_gradients", t_ours, peer, t_peer, imp, imp_peer))

    print(f"modality_importance, n={args.n_samples}, modalities "
          f"{ {k: tuple(v.shape[1:]) for k, v in X.items()} }, "
          f"torch {torch.__version__}, {args.threads} thread(s)")
    print(f"{'method':<22}{'ours (s)':>10}  {'peer':<28}{'peer (s)':>10}{'speed-up':>10}"
          f"{'max |diff|':>12}")
    for method, t, peer, tp, a, b in rows:
        diff = max(abs(a[k] - b[k]) for k in a)
        print(f"{method:<22}{t:>10.3f}  {peer:<28}{tp:>10.3f}{tp / t:>9.1f}x{diff:>12.2e}")


if __name__ == "__main__":
    main()
