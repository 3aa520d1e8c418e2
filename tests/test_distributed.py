"""GridSearchCV over relevance_penalty on a dask cluster bound to 127.0.0.1."""

from __future__ import annotations

import os

import numpy as np
import torch
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_relevance import RelevanceNetClassifier

distributed = pytest.importorskip("distributed", reason="extra 'dask' not installed")


def test_gridsearch_on_local_dask_cluster():
    import joblib

    X, y = make_classification(n_samples=100, n_features=6, random_state=0)
    pipe = make_pipeline(StandardScaler(), RelevanceNetClassifier(max_epochs=2, random_state=0))
    grid = GridSearchCV(
        pipe, {"relevancenetclassifier__relevance_penalty": [0.0, 0.1]}, cv=2, n_jobs=2
    )
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    ) as cluster, distributed.Client(cluster) as client:
        with joblib.parallel_backend("dask"):
            grid.fit(X, y)
        workers = client.scheduler_info()["workers"]
        assert all(addr.startswith("tcp://127.0.0.1") for addr in workers)
    serial = GridSearchCV(
        pipe, {"relevancenetclassifier__relevance_penalty": [0.0, 0.1]}, cv=2, n_jobs=1
    ).fit(X, y)
    # same seeds, same folds: the cluster reproduces the serial search
    np.testing.assert_allclose(
        grid.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )


# ---------------------------------------------------------------------------
# data-parallel training: DistributedDataParallel on CPU (gloo), two processes
# ---------------------------------------------------------------------------
DDP_CASES = [
    # (explainer, network with BatchNorm?, path)
    ("gradient_x_input", False, "ddp"),
    ("integrated_gradients", False, "ddp"),
    ("lrp", True, "ddp"),
    ("gradient_x_input", True, "no_sync"),
    ("integrated_gradients", True, "no_sync"),
]


class _SmallNet(torch.nn.Module):
    def __init__(self, input_shape, n_outputs, batch_norm=False):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(input_shape[0], 8),
            torch.nn.BatchNorm1d(8) if batch_norm else torch.nn.Identity(),
            torch.nn.ReLU(), torch.nn.Linear(8, n_outputs),
        )

    def forward(self, X):
        return self.layers(X)


def _ddp_net(explainer, batchnorm):
    """A RelevanceNetClassifier initialised without data (same weights on every
    rank), as skorch's AccelerateMixin would hold it before wrapping."""
    from sklearn_relevance import RelevanceNetClassifier

    net = RelevanceNetClassifier(
        _SmallNet, relevance_penalty=0.5, relevance_explainer=explainer,
        module__input_shape=(6,), classes=[0, 1, 2], module__batch_norm=batchnorm,
    )
    torch.manual_seed(0)
    net.initialize()
    net.module_.double()
    return net


def _train_step(net, X, y):
    """One of skorch's training steps (the penalty's double backprop)."""
    net.history.new_epoch()
    net.history.new_batch()
    net.train_step_single((X, y))


def _ddp_batch():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(8, 6, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (8,), generator=g))


def _ddp_worker(rank, init_file, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=2)
    try:
        X, y = _ddp_batch()
        shard = slice(rank * 4, rank * 4 + 4)
        results = []
        for explainer, batchnorm, path in DDP_CASES:
            net = _ddp_net(explainer, batchnorm)
            inner = net.module_
            if path == "ddp":
                # the module is wrapped, as Accelerate / DDP training does
                net.module_ = DistributedDataParallel(inner)
                _train_step(net, X[shard], y[shard])
            else:
                # local step without DDP's hooks, then one all-reduce
                wrapped = DistributedDataParallel(inner)
                with wrapped.no_sync():
                    _train_step(net, X[shard], y[shard])
                for p in inner.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()
            results.append([p.grad.clone() for p in inner.parameters()])
        torch.save(results, os.path.join(out_dir, f"grads{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_penalised_gradients_equal_single_process(tmp_path):
    """Two gloo processes, each with half of a batch: the penalised gradients
    after DDP's all-reduce equal one process's on the whole batch (losses and
    penalties are batch means, so the average of the shards' gradients is the
    whole batch's gradient). Covered: the penalty's double backpropagation
    through the DDP-wrapped module (a second forward for IG / LRP, BatchNorm
    in training mode) and the no_sync + manual all-reduce path."""
    import torch.multiprocessing as mp

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    # fork: the children reuse the imported modules (a few seconds in all)
    mp.start_processes(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)),
                       nprocs=2, start_method="fork")
    X, y = _ddp_batch()
    per_rank = [torch.load(tmp_path / f"grads{r}.pt") for r in range(2)]
    for k, (explainer, batchnorm, path) in enumerate(DDP_CASES):
        net = _ddp_net(explainer, batchnorm)
        # the single-process reference: the BatchNorm statistics of the whole
        # batch differ from the shards', so BatchNorm cases compare per shard
        if batchnorm:
            ref = None
            for shard in (slice(0, 4), slice(4, 8)):
                net_s = _ddp_net(explainer, batchnorm)
                _train_step(net_s, X[shard], y[shard])
                grads = [p.grad / 2 for p in net_s.module_.parameters()]
                ref = grads if ref is None else [a + b for a, b in zip(ref, grads)]
        else:
            _train_step(net, X, y)
            ref = [p.grad for p in net.module_.parameters()]
        for rank in range(2):
            for got, want in zip(per_rank[rank][k], ref):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12,
                                           msg=f"{explainer} {path} rank {rank}")
        assert sum(float(g.abs().sum()) for g in ref) > 0
