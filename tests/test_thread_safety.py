"""Explaining with one module or one fitted estimator from several threads.

Every explainer, mixed freely in a thread pool, must give the results of
serial calls (several rounds, tolerances far below the 300% errors of
unsynchronised hooks but above float noise); hook-free explainers must
really run side by side and hook-based ones one at a time.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.explainers import (
    XRAI,
    CaptumExplainer,
    GradCAM,
    Gradient,
    GuidedBackprop,
    IntegratedGradients,
    get_explainer,
)
from sklearn_relevance._module_access import module_access
from sklearn_relevance.modules import ImageCNN

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N_CLASSES = 3
ROUNDS = 3
WORKERS = 6


def _net():
    """2D CNN with BatchNorms (non-trivial statistics), ReLU modules, dropout."""
    torch.manual_seed(0)
    net = ImageCNN((2, 16, 16), N_CLASSES, channels=(4, 8), hidden_units=16)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _explainers():
    """One instance per name of the registry, plus the captum bridge."""
    small = {"integrated_gradients": {"n_steps": 8}, "ig": {"n_steps": 8},
             "smoothgrad": {"n_samples": 4, "random_state": 0},
             "smoothgrad_squared": {"n_samples": 4, "random_state": 0},
             "vargrad": {"n_samples": 4, "random_state": 0},
             "occlusion": {"window": 4}}
    out = {}
    for name in ("gradient", "saliency", "gradient_x_input", "integrated_gradients",
                 "smoothgrad", "smoothgrad_squared", "vargrad", "guided_backprop",
                 "gradcam", "occlusion", "lrp", "lrp_epsilon", "lrp_alpha1_beta0",
                 "lrp_epsilon_plus"):
        out[name] = get_explainer(name).set_params(**small.get(name, {}))
    out["xrai"] = XRAI(explainer="gradient", segment_shape=None, scales=(50, 100),
                       min_pixel_diff=4)
    pytest.importorskip("captum.attr")
    out["captum_ig"] = CaptumExplainer("IntegratedGradients", n_steps=8)
    out["captum_guided"] = CaptumExplainer("GuidedBackprop")
    out["captum_gradcam"] = CaptumExplainer("LayerGradCam", layer="features.4")
    return out


def _close(got, want):
    """Equal up to float noise: far tighter than a wrong map, looser than 1 ulp."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(np.abs(want).max(), 1e-12)
    return np.abs(got - want).max() <= 1e-4 * scale


def _run_mixed(calls, serial):
    """Run ``calls`` (name -> fn) in a pool, ROUNDS times shuffled; compare."""
    rng = np.random.default_rng(0)
    names = [n for n in calls for _ in range(2)]
    bad = []
    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in range(ROUNDS):
            order = [names[i] for i in rng.permutation(len(names))]
            futures = [(n, pool.submit(calls[n])) for n in order]
            for n, fut in futures:
                if not _close(fut.result(), serial[n]):
                    bad.append(n)
    return bad


def test_module_explainers_from_many_threads_equal_serial_calls():
    net = _net()
    X = torch.randn(6, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    explainers = _explainers()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    serial = {n: e.explain(net, X, target).detach().numpy()
              for n, e in explainers.items()}
    calls = {n: (lambda e=e: e.explain(net, X, target).detach().numpy())
             for n, e in explainers.items()}
    assert _run_mixed(calls, serial) == []
    # nothing left behind: no hooks, same parameters and buffers, eval mode
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in net.modules())
    assert not any("forward" in vars(m) for m in net.modules())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert not any(m.training for m in net.modules())


def test_gradient_while_guided_backprop_runs_equals_serial():
    """The issue's case: gradient maps computed while guided backprop runs."""
    net = _net()
    X = torch.randn(8, 2, 16, 16, generator=torch.Generator().manual_seed(2))
    grad, guided = Gradient(), GuidedBackprop()
    serial = {"gradient": grad.explain(net, X, 1).numpy(),
              "guided": guided.explain(net, X, 1).numpy()}
    calls = {"gradient": lambda: grad.explain(net, X, 1).numpy(),
             "guided": lambda: guided.explain(net, X, 1).numpy()}
    for _ in range(3):
        assert _run_mixed(calls, serial) == []


@pytest.fixture(scope="module")
def fitted():
    """A classifier left in training mode (no validation split) after fit."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2, 16, 16)).astype(np.float32)
    y = (X[:, 0, :8].mean((1, 2)) > 0).astype(int) + (X[:, 1].mean((1, 2)) > 0)
    clf = RelevanceNetClassifier(
        ImageCNN, module__channels=(4, 8), module__hidden_units=16, max_epochs=2,
        batch_size=16, train_split=None, random_state=0,
    ).fit(X, y)
    return clf, X


def test_estimator_explain_from_many_threads_equals_serial_calls(fitted):
    clf, X = fitted
    net = clf.module_
    flags = [m.training for m in net.modules()]
    assert any(flags)  # the pool must switch to eval mode and back
    state = {k: v.clone() for k, v in net.state_dict().items()}
    explainers = _explainers()
    serial = {n: clf.explain(X[:6], explainer=e) for n, e in explainers.items()}
    calls = {n: (lambda e=e: clf.explain(X[:6], explainer=e))
             for n, e in explainers.items()}
    calls["predict_proba"] = lambda: clf.predict_proba(X[:6])
    serial["predict_proba"] = clf.predict_proba(X[:6])
    assert _run_mixed(calls, serial) == []
    assert [m.training for m in net.modules()] == flags
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def _barrier_net(barrier, counter):
    """A module whose forward waits at ``barrier`` and counts the passes in it."""

    class Waiting(nn.Module):
        def forward(self, x):
            with counter["lock"]:
                counter["now"] += 1
                counter["max"] = max(counter["max"], counter["now"])
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
            with counter["lock"]:
                counter["now"] -= 1
            return x

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), Waiting(), nn.Linear(4, 2))


@pytest.mark.parametrize("explainer, overlap", [
    (Gradient(), True), (IntegratedGradients(n_steps=4), True),
    (GuidedBackprop(), False), (get_explainer("lrp_epsilon"), False),
])
def test_hook_free_calls_overlap_and_hook_based_ones_do_not(explainer, overlap):
    counter = {"lock": threading.Lock(), "now": 0, "max": 0}
    # side by side, both passes meet at the barrier at once; one at a time,
    # the first pass gives up waiting for the second
    barrier = threading.Barrier(2, timeout=60.0 if overlap else 0.5)
    net = _barrier_net(barrier, counter)
    X = torch.randn(3, 4)
    with ThreadPoolExecutor(2) as pool:
        results = [pool.submit(explainer.explain, net, X, 1) for _ in range(2)]
        for r in results:
            r.result()
    assert counter["max"] == (2 if overlap else 1)


def test_hooks_act_only_in_the_thread_that_placed_them():
    """A forward of the module in another thread, without the lock (predict),
    is not changed by Grad-CAM's or guided backprop's hooks."""
    net = _net()
    X = torch.randn(4, 2, 16, 16)
    inside, release = threading.Event(), threading.Event()
    layer = net.features[4]

    def slow(module, inputs, output):  # hold the explainer inside its forward
        if threading.current_thread().name == "explainer":
            inside.set()
            release.wait(5)

    handle = layer.register_forward_hook(slow)
    want = GradCAM().explain(net, X, 1)
    plain = net(X).detach()
    got = {}
    for explainer in (GradCAM(), GuidedBackprop()):
        inside.clear()
        release.clear()

        def run(e=explainer):
            got["map"] = e.explain(net, X, 1)

        thread = threading.Thread(target=run, name="explainer")
        thread.start()
        assert inside.wait(5)
        with torch.enable_grad():
            Xg = X.clone().requires_grad_(True)
            out = net(Xg)
            (g,) = torch.autograd.grad(out[:, 1].sum(), Xg)
        release.set()
        thread.join()
        assert torch.allclose(out.detach(), plain, atol=1e-6)
        assert torch.allclose(g, Gradient().explain(net, X, 1), atol=1e-6)
    handle.remove()
    assert torch.allclose(GradCAM().explain(net, X, 1), want)


def test_nested_access_passes_through_and_refuses_an_upgrade():
    net = nn.Linear(3, 2)
    with module_access(net, shared=True):
        with module_access(net, shared=True):
            pass
        with pytest.raises(RuntimeError, match="shares_module"):
            with module_access(net, shared=False):
                pass
    with module_access(net, shared=False):
        with module_access(net, shared=True):
            pass


def test_eval_switch_is_shared_and_restored():
    net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 2))
    net.train()
    net[2].eval()  # mixed flags come back as they were
    flags = [m.training for m in net.modules()]
    with module_access(net, shared=True, eval_mode=True):
        assert not any(m.training for m in net.modules())
        with module_access(net, shared=True, eval_mode=True):
            pass
        assert not any(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == flags


def test_data_parallel_hooks_act_in_every_thread():
    """nn.DataParallel runs replicas in threads of its own: hooks placed on a
    module that contains it are not tied to the calling thread."""
    from sklearn_relevance._module_access import hook_acts, hook_owner

    net = _net()
    wrapped = nn.DataParallel(net)
    assert hook_owner(wrapped) is None and hook_acts(None)
    owner = hook_owner(net)
    assert hook_acts(owner)
    other = []
    thread = threading.Thread(target=lambda: other.append(hook_acts(owner)))
    thread.start()
    thread.join()
    assert other == [False]
    X = torch.randn(3, 2, 16, 16)
    torch.testing.assert_close(GuidedBackprop().explain(wrapped, X, 1),
                               GuidedBackprop().explain(net, X, 1))
