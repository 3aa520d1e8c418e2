"""Cost of the masked ("right for the right reasons") penalty per training epoch.

Run ``python benchmarks/bench_masked_penalty.py``. For each setting, in one
run and on the same data, module and batch size, the median epoch time of:

* plain training (``relevance_penalty=0``),
* the unmasked penalty (deep relevance regularization),
* the masked penalty (``fit(X, y, relevance_mask=masks)``, 25% of the
  masks' samples unannotated).

Goals: masked / plain at most 2.5x (double backpropagation), masked /
unmasked at most 1.10x. Epochs are interleaved (one of each, ``--repeats``
rounds) so that load on a shared machine hits all three alike.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.datasets import make_decoy_images
from sklearn_relevance.penalties import RelevancePenalty, RightReasonsPenalty


def _data(kind, n):
    d = make_decoy_images(test_size=0.1, random_state=0)
    X, y, M = d.X_train, d.y_train, d.relevance_mask_train.copy()
    reps = n // len(X) + 1
    X, y, M = (np.concatenate([a] * reps)[:n] for a in (X, y, M))
    M[::4] = np.nan  # unannotated samples
    if kind == "mlp":
        return X.reshape(n, -1), y, M.reshape(n, -1)
    return X, y, M


def _epoch(term, masked, X, y, M, batch_size, rounds):
    """Epoch times of one configuration, one epoch per call (warm start)."""
    clf = RelevanceNetClassifier(relevance_penalty=0.0 if term is None else 1.0,
                                 relevance_term=term, max_epochs=1, batch_size=batch_size,
                                 random_state=0, warm_start=True)
    mask = M if masked else None
    clf.fit(X, y, relevance_mask=mask)  # warm-up epoch

    def one():
        clf.partial_fit(X, y, relevance_mask=mask)
        return clf.history_[-1, "dur"]
    return one


def bench(kind, n, batch_size, rounds, term_cls):
    X, y, M = _data(kind, n)
    runs = {
        "plain": _epoch(None, False, X, y, M, batch_size, rounds),
        "unmasked": _epoch(term_cls(), False, X, y, M, batch_size, rounds),
        "masked": _epoch(term_cls(), True, X, y, M, batch_size, rounds),
    }
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            times[k].append(fn())
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), n={args.n}, "
          f"median of {args.repeats} interleaved epochs")
    print(f"{'setting':44s} {'plain s':>8s} {'DRR s':>8s} {'masked s':>8s} "
          f"{'masked/plain':>12s} {'masked/DRR':>10s}")
    for kind, bs in (("mlp", 64), ("mlp", 256), ("cnn", 64)):
        for term_cls in (RelevancePenalty, RightReasonsPenalty):
            t = bench(kind, args.n, bs, args.repeats, term_cls)
            name = f"{kind} 12x12 batch {bs} {term_cls.__name__}"
            print(f"{name:44s} {t['plain']:8.3f} {t['unmasked']:8.3f} {t['masked']:8.3f} "
                  f"{t['masked'] / t['plain']:12.2f} {t['masked'] / t['unmasked']:10.2f}")


if __name__ == "__main__":
    main()
