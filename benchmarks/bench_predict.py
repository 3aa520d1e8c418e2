"""Cost of ``predict_proba`` against a plain ``torch.no_grad()`` forward.

Run ``python benchmarks/bench_predict.py``. ``predict_proba`` runs the
fitted network as it is (its dtype, its device, no copy of it) over the
batches of ``batch_size``. The peer is a plain ``torch.no_grad()`` forward
of the same module, in eval mode, over the same batches (plus the softmax),
timed in the same run, interleaved. Prints, per network, the
best-of-``--repeats`` seconds of both and their ratio (the target is at most 1.1x), the largest
difference between a sample's probability predicted alone and in the whole
batch, and, measured in a fresh process per network, the rise of the
process's peak memory during ``predict_proba`` after a plain forward over
the same batches (the target: no rise by the network's size, which a
per-call copy of the network would add). "f64 copy s" times the earlier
path for reference (a float64 deep copy of the network per call, then the
same forward in float64).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from _timing import best_of  # noqa: E402
from sklearn_relevance import RelevanceNetClassifier  # noqa: E402

CASES = {  # name: (per-sample shape, samples predicted, module parameters)
    "MLP 64": ((64,), 4096, {}),
    "MLP 20000 (wide)": ((20000,), 64, {"module__hidden_units": (512, 512)}),
    "SpectrumCNN 1x250": ((1, 250), 512, {}),
    "ImageCNN 1x64x64": ((1, 64, 64), 256, {}),
    "ImageCNN 1x24x24x24": ((1, 24, 24, 24), 64, {}),
}


def _fitted(name, seed):
    shape, n, params = CASES[name]
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *shape)).astype(np.float32)
    y = (X.reshape(n, -1)[:, : X[0].size // 2].mean(1) > 0).astype(np.int64)
    clf = RelevanceNetClassifier(max_epochs=1, random_state=seed, **params)
    return clf.fit(X[:64], y[:64]), X


def _plain(clf, X):
    """A plain no-grad forward of the module over ``batch_size`` batches."""
    module, bs = clf.module_.eval(), clf.batch_size
    Xt = torch.from_numpy(X)
    with torch.no_grad():
        return torch.cat([module(Xt[i:i + bs]).softmax(1)
                          for i in range(0, len(Xt), bs)]).numpy()


def _float64_copy(clf, X):
    """The earlier path, for reference: a float64 deep copy of the network
    per call, then a no-grad forward over the same batches."""
    import copy

    module, bs = copy.deepcopy(clf.module_).double().eval(), clf.batch_size
    Xt = torch.from_numpy(X).double()
    with torch.no_grad():
        return torch.cat([module(Xt[i:i + bs]).softmax(1)
                          for i in range(0, len(Xt), bs)]).numpy()


def _single_row_gap(predict, X, rows=8):
    full = predict(X)
    alone = np.concatenate([predict(X[i:i + 1]) for i in range(rows)])
    return float(np.abs(alone - full[:rows]).max())


def _peak_rise(name, seed):
    """In a fresh process: (weight MiB, peak rise MiB of predict_proba after
    a plain forward over the same batches)."""
    here = Path(__file__).resolve().parent
    code = (
        "import json, resource, sys\n"
        f"sys.path[:0] = [{str(here.parent)!r}, {str(here)!r}]\n"
        "sys.argv = ['bench_predict.py']\n"
        "import bench_predict as b\n"
        f"clf, X = b._fitted({name!r}, {seed})\n"
        "b._plain(clf, X)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "clf.predict_proba(X)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "w = sum(p.numel() * p.element_size() for p in clf.module_.parameters())\n"
        "print(json.dumps([w / 2**20, (after - before) / 1024,"
        " sys.modules['sklearn_relevance'].__file__]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(here), check=True)
    weights, rise, where = json.loads(out.stdout.strip().splitlines()[-1])
    assert where.startswith(str(here.parent)), f"the child imported {where}"
    return weights, rise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}, "
          f"best of {args.repeats}; peak memory: ru_maxrss of a fresh process")
    print(f"{'network':<22} {'n':>5} {'plain s':>9} {'predict s':>10} {'ratio':>6} "
          f"{'f64 copy s':>10} {'gap':>8} {'weights MiB':>12} {'peak rise MiB':>14}")
    for name in CASES:
        clf, X = _fitted(name, args.seed)
        np.testing.assert_allclose(clf.predict_proba(X), _plain(clf, X), rtol=0,
                                   atol=1e-6)
        # interleaved (plain, ours, plain, ...): the shared machine's load hits
        # both alike; best of --repeats each
        t_plain = t_ours = float("inf")
        for _ in range(args.repeats):
            t_plain = min(t_plain, best_of(lambda: _plain(clf, X), 1)[0])
            t_ours = min(t_ours, best_of(lambda: clf.predict_proba(X), 1)[0])
        t_f64, _ = best_of(lambda: _float64_copy(clf, X), args.repeats)
        weights, rise = _peak_rise(name, args.seed)
        print(f"{name:<22} {len(X):>5} {t_plain:>9.4f} {t_ours:>10.4f} "
              f"{t_ours / t_plain:>5.2f}x {t_f64:>10.4f} "
              f"{_single_row_gap(clf.predict_proba, X):>8.1e} "
              f"{weights:>12.1f} {rise:>14.1f}")


if __name__ == "__main__":
    main()
