"""The inference copy's policy: rewrites proved, never probed.

One test per defect of the earlier probe-based copy (issue 22): hooks on
the first layer, a second read of the input behind a data-dependent branch,
a stale cached copy, writes into the caller's arrays, and fx's process-wide
patches while other threads predict. Each compares, in float64, explainers
on the copy with the same explainers on the module as it is.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance import _inference
from sklearn_relevance._inference import cached_inference_copy, inference_copy
from sklearn_relevance._input_stem import input_stem
from sklearn_relevance.explainers import Gradient, IntegratedGradients, SmoothGrad


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _conv_net(act=nn.Tanh):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), act(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(36, 3)).double()
    net[3].running_mean.uniform_(-0.3, 0.3)
    net[3].running_var.uniform_(0.5, 1.5)
    return net.eval()


EXPLAINERS = [IntegratedGradients(n_steps=8), SmoothGrad(n_samples=4, random_state=0),
              Gradient()]


def _assert_same_explanations(fast, net, X, target=1, tol=1e-10):
    for e in EXPLAINERS:
        assert _rel(e.explain(fast, X, target), e.explain(net, X, target)) < tol, e


# ---------------------------------------------------------------- defect 1, 2
@pytest.mark.parametrize("kind", ["forward", "forward_pre", "backward", "full_backward"])
@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
def test_hooks_on_the_first_layer_are_honoured(kind, act):
    net = _conv_net(act)
    if kind == "forward":
        net[0].register_forward_hook(lambda m, args, out: out * 1.5 + 0.1)
    elif kind == "forward_pre":
        net[0].register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    elif kind == "backward":
        net[0].register_full_backward_pre_hook(lambda m, gout: (gout[0] * 3,))
    else:
        net[0].register_full_backward_hook(lambda m, gin, gout: (gin[0].tanh(),))
    X = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    fast = inference_copy(net, X)
    _assert_same_explanations(fast, net, X)
    assert fast is net  # nothing is rewritten in a hooked network


def test_global_module_hooks_stop_every_rewrite():
    net = _conv_net()
    X = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: None)
    try:
        assert inference_copy(net, X) is net
    finally:
        handle.remove()
    assert inference_copy(net, X) is not net


# ---------------------------------------------------------------- defect 3
class _SaturationGuard(nn.Module):
    """Reads its input a second time only when the first layer saturates."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        h = self.conv(x)
        if h.abs().max() > 20:  # inactive on small inputs
            h = h - x
        return self.head(torch.tanh(h).mean((2, 3)))


def test_a_second_read_behind_a_data_dependent_branch_is_never_split():
    torch.manual_seed(0)
    net = _SaturationGuard().double().eval()
    small = 0.1 * torch.randn(2, 1, 5, 5, dtype=torch.float64)
    large = 50 * torch.randn(3, 1, 5, 5, dtype=torch.float64)
    fast = inference_copy(net, small)  # made from samples where the branch is off
    assert input_stem(fast) is None
    for X in (small, large):
        _assert_same_explanations(fast, net, X)
    # the cached verdict serves later, saturating inputs rightly too
    cached = cached_inference_copy(net, small)
    _assert_same_explanations(cached, net, large)


# ---------------------------------------------------------------- defect 4
class _Scaled(nn.Module):
    """A forward that reads a non-persistent buffer, a plain tensor attribute,
    a Python attribute and a swappable parameter-free activation."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.register_buffer("shift", torch.zeros(4, 1, 1), persistent=False)
        self.gain = torch.ones(1, dtype=torch.float64)
        self.power = 1.0
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.act(self.bn(self.conv(x)) + self.shift) * self.gain
        return self.head(h.pow(self.power).mean((2, 3)))


def _scaled():
    torch.manual_seed(0)
    net = _Scaled().double().eval()
    net.bn.running_var.uniform_(0.5, 1.5)
    return net


CHANGES = {
    "non-persistent buffer": lambda n: n.shift.add_(0.7),
    "plain tensor attribute": lambda n: n.gain.mul_(3.0),
    "Python attribute": lambda n: setattr(n, "power", 2.0),
    "BatchNorm eps": lambda n: setattr(n.bn, "eps", 0.5),
    "forward hook added": lambda n: n.head.register_forward_hook(lambda m, a, o: o * 2),
    "activation swapped": lambda n: setattr(n, "act", nn.LeakyReLU(0.3)),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_cached_copy_is_never_stale(change):
    net = _scaled()
    X = torch.rand(4, 2, 5, 5, dtype=torch.float64) + 0.1
    first = cached_inference_copy(net, X)
    assert first is not net
    assert cached_inference_copy(net, X) is first  # reused while nothing changed
    CHANGES[change](net)
    fresh = cached_inference_copy(net, X)
    assert fresh is not first
    with torch.no_grad():
        torch.testing.assert_close(fresh(X), net(X), rtol=1e-12, atol=1e-12)
    _assert_same_explanations(fresh, net, X)


def test_a_hook_removed_gives_a_fresh_copy():
    net = _scaled()
    X = torch.rand(3, 2, 5, 5, dtype=torch.float64)
    handle = net.head.register_forward_hook(lambda m, a, o: o * 2)
    assert cached_inference_copy(net, X) is net
    handle.remove()
    fresh = cached_inference_copy(net, X)
    assert fresh is not net
    _assert_same_explanations(fresh, net, X)


# ---------------------------------------------------------------- defect 5
@pytest.mark.parametrize("opening", [
    lambda: [nn.Identity(), nn.ReLU()],
    lambda: [nn.ReLU(inplace=False)],
    lambda: [nn.Identity(), nn.Identity(), nn.ReLU()],
])
def test_the_callers_arrays_are_never_written(opening, monkeypatch):
    monkeypatch.setattr(_inference, "INFERENCE_COPY_MIN_BYTES", 0)
    torch.manual_seed(0)
    module = nn.Sequential(*opening(), nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(),
                           nn.Linear(3 * 4 * 4, 2))
    X = np.random.default_rng(0).normal(size=(6, 1, 6, 6)).astype(np.float32)
    y = np.arange(6) % 2
    est = RelevanceNetClassifier(module, max_epochs=1, batch_size=3, random_state=0)
    est.fit(X, y)
    before = X.copy()
    fast = inference_copy(est.module_.eval(), torch.as_tensor(X))
    assert not any(isinstance(m, nn.ReLU) and m.inplace
                   for m in list(fast.modules())[:len(opening()) + 1])
    for explainer in ("gradient", "ig", "smoothgrad"):
        est.explain(X, explainer=explainer, target=1)
        np.testing.assert_array_equal(X, before)
    est.predict_proba(X)
    np.testing.assert_array_equal(X, before)


# ---------------------------------------------------------------- defect 6
def test_building_copies_never_breaks_forwards_in_other_threads():
    torch.manual_seed(0)
    X = np.random.default_rng(0).normal(size=(16, 2, 12, 12)).astype(np.float32)
    y = np.arange(16) % 3
    from sklearn_relevance.modules import ImageCNN

    est = RelevanceNetClassifier(ImageCNN((2, 12, 12), 3), max_epochs=1, batch_size=8,
                                 random_state=0).fit(X, y)
    want = est.predict_proba(X)
    other = ImageCNN((2, 12, 12), 3).eval()
    Xt = torch.as_tensor(X)
    errors, done = [], threading.Event()

    def predict_loop():
        while not done.is_set():
            try:
                np.testing.assert_allclose(est.predict_proba(X), want, rtol=1e-6, atol=1e-7)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    threads = [threading.Thread(target=predict_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(30):
            inference_copy(other, Xt)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert errors == []


# ---------------------------------------------------------------- threads
def test_fit_predict_and_explain_in_threads_give_the_serial_results(monkeypatch):
    # one thread fits while others predict and explain (on cached copies
    # built meanwhile); each prediction and explanation is what it is alone
    from concurrent.futures import ThreadPoolExecutor

    from sklearn_relevance.modules import ImageCNN

    monkeypatch.setattr(_inference, "INFERENCE_COPY_MIN_BYTES", 0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 1, 12, 12)).astype(np.float32)
    y = np.arange(12) % 2
    torch.manual_seed(0)
    modules = [ImageCNN((1, 12, 12), 2) for _ in range(3)]

    def fit(i):
        return RelevanceNetClassifier(copy.deepcopy(modules[i]), max_epochs=2, batch_size=6,
                                      random_state=i).fit(X, y)

    fitted = [fit(0), fit(1)]
    jobs = [("fit", None)] + [(what, est) for est in fitted
                              for what in ("proba", "ig", "smoothgrad", "gradient")]

    def run(job):
        what, est = job
        if what == "fit":
            est = fit(2)
            return est, est.predict_proba(X)
        if what == "proba":
            return est.predict_proba(X)
        if what == "smoothgrad":
            return est.explain(X, explainer=SmoothGrad(n_samples=8, random_state=0), target=1)
        return est.explain(X, explainer=what, target=1)

    serial = [run(j) for j in jobs]
    _inference.clear_inference_copies()  # the threads build their copies afresh
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(run, jobs))
    # the fit in a thread: its estimator predicts and explains as one
    # fitted alone would (its weights are not compared: fit draws from
    # torch's global generator, whose state no seed owns across threads)
    fitted_in_thread, proba = parallel[0]
    np.testing.assert_array_equal(fitted_in_thread.predict_proba(X), proba)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    for a, b in zip(serial[1:], parallel[1:]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * np.abs(a).max())
