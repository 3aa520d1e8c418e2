"""Cost of batch-independent predictions: float64 against skorch's float32.

Run ``python benchmarks/bench_predict.py``. ``predict_proba`` runs a float64
copy of the trained network, so a sample's output does not depend on the
batch it is predicted in (scikit-learn's ``check_methods_subset_invariance``).
The peer is skorch's own ``NeuralNet.predict_proba`` on the same fitted
estimator and input (float32, the module itself), which the estimators used
before. Prints, per network, the best-of-``--repeats`` seconds of both, their
ratio, and the largest difference between a sample's output predicted alone
and in the whole batch, for both paths.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from skorch import NeuralNet

from _timing import best_of
from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance._validation import as_torch

CASES = {  # name: (per-sample shape, samples predicted)
    "MLP 64": ((64,), 4096),
    "SpectrumCNN 1x250": ((1, 250), 512),
    "ImageCNN 1x64x64": ((1, 64, 64), 256),
    "ImageCNN 1x24x24x24": ((1, 24, 24, 24), 64),
}


def _fitted(shape, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *shape)).astype(np.float32)
    y = (X.reshape(n, -1)[:, : X[0].size // 2].mean(1) > 0).astype(np.int64)
    clf = RelevanceNetClassifier(max_epochs=1, random_state=seed).fit(X[:64], y[:64])
    return clf, X


def _single_row_gap(predict, X, rows=8):
    full = predict(X)
    alone = np.concatenate([predict(X[i:i + 1]) for i in range(rows)])
    return float(np.abs(alone - full[:rows]).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}, "
          f"best of {args.repeats}")
    print(f"{'network':<22} {'n':>5} {'float32 s':>10} {'float64 s':>10} {'ratio':>6} "
          f"{'gap f32':>9} {'gap f64':>9}")
    for name, (shape, n) in CASES.items():
        clf, X = _fitted(shape, n, args.seed)

        def ours(Xb):
            return clf.predict_proba(Xb)

        def skorch_f32(Xb):
            return NeuralNet.predict_proba(clf, as_torch(Xb))

        t32, _ = best_of(lambda: skorch_f32(X), args.repeats)
        t64, _ = best_of(lambda: ours(X), args.repeats)
        print(f"{name:<22} {n:>5} {t32:>10.4f} {t64:>10.4f} {t64 / t32:>5.2f}x "
              f"{_single_row_gap(skorch_f32, X):>9.1e} {_single_row_gap(ours, X):>9.1e}")


if __name__ == "__main__":
    main()
