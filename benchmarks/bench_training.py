"""Training speed: relevance penalty cost, skorch overhead, grid-search scaling.

Run ``python benchmarks/bench_training.py``. Prints, from one run:

1. epoch time with ``relevance_penalty > 0`` against ``0`` (double
   backpropagation; goal at most 2.5x),
2. :class:`RelevanceNetClassifier` against a hand-written torch loop on the same
   module, data, optimizer and batch size (goal at most 1.10x),
3. ``GridSearchCV`` wall time with ``n_jobs=2`` against ``n_jobs=1``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.modules import ImageCNN, MLP


def _data(kind, n):
    rng = np.random.default_rng(0)
    if kind == "mlp":
        X, y = load_digits(return_X_y=True)
        X = np.tile(X / 16, (max(1, n // len(X)) + 1, 1))[:n].astype(np.float32)
        y = np.tile(y, max(1, n // len(y)) + 1)[:n]
        return X, y, MLP
    X = rng.normal(size=(n, 1, 28, 28)).astype(np.float32)
    y = (X[:, 0, 10:18, 10:18].mean((1, 2)) > 0).astype(np.int64)
    return X, y, ImageCNN


def _epoch_seconds(clf):
    durs = [row["dur"] for row in clf.history_]
    return float(np.median(durs[1:] if len(durs) > 1 else durs))


def bench_penalty(kind, n, epochs, batch_size):
    X, y, module = _data(kind, n)
    times = {}
    for penalty in (0.0, 0.01):
        clf = RelevanceNetClassifier(
            module, relevance_penalty=penalty, max_epochs=epochs, batch_size=batch_size,
            random_state=0,
        ).fit(X, y)
        times[penalty] = _epoch_seconds(clf)
    return times[0.0], times[0.01]


def hand_loop(module, X, y, epochs, batch_size, lr):
    """The torch loop a user would write for the same training."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(Xt, yt), batch_size=batch_size, shuffle=True
    )
    durs = []
    for _ in range(epochs):
        start = time.perf_counter()
        module.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(module(xb), yb)
            loss.backward()
            opt.step()
        durs.append(time.perf_counter() - start)
    return float(np.median(durs[1:]))


def bench_overhead(kind, n, epochs, batch_size):
    X, y, module_cls = _data(kind, n)
    clf = RelevanceNetClassifier(
        module_cls, max_epochs=epochs, batch_size=batch_size, random_state=0
    ).fit(X, y)
    ours = _epoch_seconds(clf)
    torch.manual_seed(0)
    module = module_cls(X.shape[1:], len(np.unique(y)))
    theirs = hand_loop(module, X, y, epochs, batch_size, lr=0.01)
    return ours, theirs


def bench_grid(n, epochs):
    X, y, _ = _data("mlp", n)
    grid_params = {"relevance_penalty": [0.0, 0.003, 0.01, 0.03]}
    times = {}
    for n_jobs in (1, 2):
        grid = GridSearchCV(
            RelevanceNetClassifier(max_epochs=epochs, random_state=0), grid_params,
            cv=2, n_jobs=n_jobs,
        )
        start = time.perf_counter()
        grid.fit(X, y)
        times[n_jobs] = time.perf_counter() - start
    return times[1], times[2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scale = 0.25 if args.quick else 1.0
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, 1 torch thread")
    print("\n1. Double backpropagation cost (median epoch seconds)")
    print(f"{'network':<24}{'penalty 0':>12}{'penalty>0':>12}{'ratio':>8}")
    for kind, n, bs in (("mlp", int(4000 * scale), 64), ("cnn", int(1024 * scale), 64)):
        t0, t1 = bench_penalty(kind, n, epochs=4, batch_size=bs)
        label = "MLP digits 64" if kind == "mlp" else "ImageCNN 1x28x28"
        print(f"{label:<24}{t0:>12.3f}{t1:>12.3f}{t1 / t0:>8.2f}")
    print("\n2. Estimator against a hand-written torch loop (median epoch seconds)")
    print(f"{'network':<24}{'ours':>12}{'torch loop':>12}{'ratio':>8}")
    for kind, n, bs in (("mlp", int(4000 * scale), 64), ("cnn", int(1024 * scale), 64)):
        ours, theirs = bench_overhead(kind, n, epochs=4, batch_size=bs)
        label = "MLP digits 64" if kind == "mlp" else "ImageCNN 1x28x28"
        print(f"{label:<24}{ours:>12.3f}{theirs:>12.3f}{ours / theirs:>8.2f}")
    print("\n3. GridSearchCV, 4 penalties x 2 folds (wall seconds)")
    t1, t2 = bench_grid(int(4000 * scale), epochs=int(40 * scale) or 2)
    print(f"{'n_jobs=1':>12}{'n_jobs=2':>12}{'speed-up':>10}")
    print(f"{t1:>12.2f}{t2:>12.2f}{t1 / t2:>10.2f}")


if __name__ == "__main__":
    main()
