"""The faster network copies that compare_explainers runs its passes on.

A copy (BatchNorm folded, in-place ReLUs, channels-last on the CPU) must give
the module's outputs and, for every explainer that does not read inner
layers, the module's explanations; it must never change the caller's module,
and must be refused for modules that cannot take it.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance._inference import inference_copy, is_channels_last
from sklearn_relevance.datasets import make_lesion_images
from sklearn_relevance.evaluation import compare_explainers
from sklearn_relevance.explainers import get_explainer
from sklearn_relevance.modules import ImageCNN, SpectrumCNN


def _with_statistics(module, seed=0):
    """Eval-mode module whose BatchNorms hold non-trivial statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return module.eval()


CASES = {
    "1d": (lambda: SpectrumCNN(60, 3), (60,)),
    "2d": (lambda: ImageCNN((2, 24, 24), 3), (2, 24, 24)),
    "3d": (lambda: ImageCNN((1, 16, 16, 16), 3), (1, 16, 16, 16)),
}


def _case(name):
    make, shape = CASES[name]
    torch.manual_seed(0)
    module = _with_statistics(make())
    X = torch.randn(5, *shape)
    return module, X, torch.tensor([0, 1, 2, 0, 1])


@pytest.mark.parametrize("name", list(CASES))
def test_copy_gives_the_same_outputs_and_leaves_the_module_alone(name):
    module, X, _ = _case(name)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    layers = [type(m) for m in module.modules()]
    fast = inference_copy(module, X, channels_last=True, fold_batchnorms=True)
    assert fast is not module
    with torch.no_grad():
        torch.testing.assert_close(fast(X), module(X), rtol=1e-4, atol=1e-5)
    # the caller's module: same layers, same values, same memory layout
    assert [type(m) for m in module.modules()] == layers
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]) and v.stride() == before[k].stride()
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in module.modules())
    # the copy: BatchNorms folded away, channels-last convolutions for images
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fast.modules())
    assert is_channels_last(fast) == (name != "1d")
    assert not is_channels_last(module)


EXPLAINERS = ["gradient", "gradient_x_input", "ig", "smoothgrad", "guided_backprop",
              "occlusion", "lrp_epsilon", "lrp_alpha1_beta0", "lrp_epsilon_plus"]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("explainer", EXPLAINERS)
def test_explanations_on_the_copy_equal_the_module(name, explainer):
    module, X, target = _case(name)
    fast = inference_copy(module, X)
    e = get_explainer(explainer)
    assert e.uses_layers is False
    params = e.get_params()
    if "random_state" in params:
        e.set_params(random_state=0)
    if "window" in params:
        e.set_params(window=4)
    want = e.explain(module, X, target)
    got = e.explain(fast, X, target)
    scale = want.abs().max()
    torch.testing.assert_close(got, want, rtol=0, atol=2e-4 * float(scale))


def test_layer_reading_explainers_say_so():
    assert get_explainer("gradcam").uses_layers is True
    assert get_explainer("smoothgrad").set_params(explainer="gradcam").uses_layers is True
    assert get_explainer("xrai").uses_layers is False
    assert get_explainer("xrai").set_params(explainer="gradcam").uses_layers is True


class _ViewNet(nn.Module):
    """Flattens with .view, which channels-last activations refuse."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


def test_modules_that_cannot_take_the_copy_are_returned_as_they_are():
    module = _ViewNet().eval()
    assert inference_copy(module, torch.randn(3, 2, 8, 8), channels_last=True,
                          split_stem=False) is module
    # nothing to gain: no convolution of the input's dimensionality, no BatchNorm
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    assert inference_copy(mlp, torch.randn(3, 1, 4, 4)) is mlp
    # dict inputs: only folding applies
    assert inference_copy(mlp, {"x": torch.randn(3, 1, 4, 4)}) is mlp


def test_copy_pickles():
    module, X, _ = _case("2d")
    fast = pickle.loads(pickle.dumps(inference_copy(module, X, channels_last=True,
                                                    fold_batchnorms=True)))
    assert is_channels_last(fast)
    with torch.no_grad():
        torch.testing.assert_close(fast(X), module(X), rtol=1e-4, atol=1e-5)


def test_compare_explainers_matches_explanations_of_the_module_itself():
    # the table's scores come from the copy for input-level explainers and
    # from the module for Grad-CAM; both must equal explaining the module
    X, y, masks = make_lesion_images(12, shape=(24, 24), random_state=0)
    torch.manual_seed(0)
    module = _with_statistics(ImageCNN((1, 24, 24), 2))
    layers = [type(m) for m in module.modules()]
    explainers = {"gradient": get_explainer("gradient"), "gradcam": get_explainer("gradcam"),
                  "occlusion": get_explainer("occlusion").set_params(window=4)}
    table = compare_explainers(module, X, y, masks=masks, explainers=explainers,
                               metrics=["mask_roc_auc", "sparseness"], n_bootstrap=0,
                               target="true")
    from sklearn_relevance.metrics import mask_roc_auc, sparseness

    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for label, e in explainers.items():
        rel = e.explain(module, Xt, yt).detach().numpy()
        np.testing.assert_allclose(table.loc[label, "sparseness"],
                                   np.mean(sparseness(np.abs(rel))), rtol=1e-4)
        np.testing.assert_allclose(table.loc[label, "mask_roc_auc"],
                                   np.nanmean(mask_roc_auc(np.abs(rel), masks)), rtol=1e-4)
    assert [type(m) for m in module.modules()] == layers  # the module itself untouched


# --------------------------------------------------------------------------
# estimator.explain (and the scorers and RelevanceTransformer through it)
# --------------------------------------------------------------------------
from sklearn_relevance import RelevanceNetClassifier  # noqa: E402
from sklearn_relevance import _inference  # noqa: E402
from sklearn_relevance.explainers import (  # noqa: E402
    Gradient,
    GradCAM,
    IntegratedGradients,
    SmoothGrad,
)


class _Spy(Gradient):
    """Gradient that records the networks it is handed."""

    seen: list = []

    def _explain(self, module, X, target, *, create_graph):
        type(self).seen.append(module)
        return super()._explain(module, X, target, create_graph=create_graph)


class _LayerSpy(_Spy):
    uses_layers = True


def _fitted(name, n=24):
    make, shape = CASES[name]
    torch.manual_seed(0)
    X = torch.randn(n, *shape).numpy()
    y = np.arange(n) % 3
    est = RelevanceNetClassifier(make(), max_epochs=1, batch_size=8, random_state=0)
    est.fit(X, y)
    _with_statistics(est.module_)
    return est, X, y


@pytest.fixture
def copy_always(monkeypatch):
    monkeypatch.setattr(_inference, "INFERENCE_COPY_MIN_BYTES", 0)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("explainer", EXPLAINERS)
def test_estimator_explain_on_the_copy_equals_the_module(name, explainer, copy_always):
    est, X, y = _fitted(name, n=6)
    e = get_explainer(explainer)
    params = e.get_params()
    if "random_state" in params:
        e.set_params(random_state=0)
    if "window" in params:
        e.set_params(window=4)
    module = est.module_
    before = {k: v.clone() for k, v in module.state_dict().items()}
    got = est.explain(X, explainer=e, target=1, batch_size=-1)
    # the copy was used (a 1D network has no rewrite left by default)
    copies = _inference._COPIES[module]
    assert any(c[1] is not None for c in copies.values()) or name == "1d"
    want = e.explain(module.eval(), torch.as_tensor(X), 1).detach().numpy()
    # against float64, not against float32 with a fixed tolerance: the copy's
    # rewrites round differently, and at float32 near-ties (a max-pooling
    # winner, a ReLU at 0 on one of IG's path points) either side is right and
    # moves a whole gradient term. So: nearly every element agrees with
    # float64 to 2e-4 of the scale, and the whole map is as close to float64
    # as the module's own float32 result (or within 1e-3; a wrong rewrite is
    # off by O(1)).
    exact = e.explain(copy.deepcopy(module).double().eval(),
                      torch.as_tensor(X).double(), 1).detach().numpy()
    if "random_state" in params:  # float64 noise is other noise: same-dtype reference
        exact = want

    def error(a):
        return np.linalg.norm(a - exact) / np.linalg.norm(exact)

    off = np.abs(got - exact) > 2e-4 * np.abs(exact).max()
    assert off.mean() <= 0.01, off.mean()
    assert error(got) <= max(4 * error(want), 1e-3), (error(got), error(want))
    # the caller's module: same values, same layout, no in-place ReLU
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]) and v.stride() == before[k].stride()
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in module.modules())


def test_layer_reading_explainers_get_the_module(copy_always):
    est, X, _ = _fitted("2d")
    _Spy.seen = []
    est.explain(X, explainer=_LayerSpy(), target=1)
    assert _Spy.seen and all(m is est.module_ for m in _Spy.seen)
    _Spy.seen = []
    est.explain(X, explainer=_Spy(), target=1)
    assert _Spy.seen and all(m is not est.module_ for m in _Spy.seen)
    # Grad-CAM (directly and wrapped) reads a layer: explained on the module
    for e in (GradCAM(), SmoothGrad(GradCAM(), n_samples=2, random_state=0)):
        rel = est.explain(X, explainer=e, target=1, batch_size=-1)
        want = e.explain(est.module_.eval(), torch.as_tensor(X), 1).numpy()
        np.testing.assert_array_equal(rel, want)


def test_small_work_keeps_the_module():
    est, X, _ = _fitted("2d")  # 24 samples of 2 x 24 x 24: about 2 MiB of activations
    _Spy.seen = []
    est.explain(X, explainer=_Spy(), target=1)
    assert all(m is est.module_ for m in _Spy.seen)


class _IGSpy(IntegratedGradients):
    """Integrated gradients that record the networks they are handed."""

    seen: list = []

    def _explain(self, module, X, target, *, create_graph):
        type(self).seen.append(module)
        return super()._explain(module, X, target, create_graph=create_graph)


def test_the_rows_an_explainer_runs_count_toward_the_copy():
    est, X, _ = _fitted("2d")  # about 2 MiB of activations per pass over X
    for steps, on_copy in ((1, False), (8, True)):  # 2 MiB / 16 MiB of rows
        _IGSpy.seen = []
        rel = est.explain(X, explainer=_IGSpy(n_steps=steps), target=1)
        assert (_IGSpy.seen[0] is not est.module_) is on_copy
        # float32 rounding here moves IG by up to 1e-2 of its largest value
        # (path points near ReLU kinks): the copy must be no less exact than
        # the module itself, both against the module in float64
        ig = IntegratedGradients(n_steps=steps)
        exact = ig.explain(copy.deepcopy(est.module_).eval().double(),
                           torch.as_tensor(X).double(), 1).numpy()
        plain = ig.explain(est.module_.eval(), torch.as_tensor(X), 1).numpy()
        scale = np.abs(exact).max()
        assert np.abs(rel - exact).max() <= max(2 * np.abs(plain - exact).max(), 1e-6 * scale)


def _copy_used(est, X):
    _Spy.seen = []
    est.explain(X, explainer=_Spy(), target=1)
    assert _Spy.seen[0] is not est.module_
    assert all(m is _Spy.seen[0] for m in _Spy.seen)
    return _Spy.seen[0]


def test_copy_is_cached_and_made_again_when_the_network_changes(copy_always, tmp_path):
    est, X, y = _fitted("2d")
    first = _copy_used(est, X)
    assert _copy_used(est, X) is first  # reused while nothing changed
    est.set_params(lr=0.05)  # a parameter that leaves the module alone
    assert _copy_used(est, X) is first
    est.partial_fit(X, y)
    after_partial = _copy_used(est, X)
    assert after_partial is not first
    est.fit(X, y)
    after_fit = _copy_used(est, X)
    assert after_fit is not after_partial
    path = tmp_path / "params.pt"
    est.save_params(f_params=path)
    est.partial_fit(X, y)
    changed = _copy_used(est, X)
    est.load_params(f_params=path)
    reloaded = _copy_used(est, X)
    assert reloaded is not changed
    # the reloaded copy explains the reloaded parameters
    np.testing.assert_allclose(
        est.explain(X, explainer="gradient", target=1),
        Gradient().explain(est.module_.eval(), torch.as_tensor(X), 1).numpy(),
        rtol=0, atol=1e-5)
    est.set_params(module=_with_statistics(ImageCNN((2, 24, 24), 3)))  # a new module
    assert _copy_used(est, X) is not reloaded


def test_cached_copy_is_shared_safely_by_threads(copy_always):
    from concurrent.futures import ThreadPoolExecutor

    est, X, _ = _fitted("2d")
    explainers = ["gradient", "ig", "occlusion", "gradient_x_input"] * 3
    serial = [est.explain(X, explainer=e, target=1) for e in explainers]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda e: est.explain(X, explainer=e, target=1),
                                 explainers))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_estimator_pickles_and_clones_after_explaining_on_a_copy(copy_always):
    from sklearn.base import clone

    est, X, _ = _fitted("2d")
    want = est.explain(X, explainer="gradient", target=1)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.explain(X, explainer="gradient", target=1), want,
                               rtol=0, atol=1e-6)
    clone(est)


def test_lrp_gets_a_folded_copy_only_where_it_merges_batchnorm_itself(copy_always):
    # LRP's default canonizers merge every BatchNorm into the layer before
    # it, so its copy may fold them; with canonizers=None the BatchNorms are
    # layers of their own for LRP and must stay in the copy
    from sklearn_relevance.explainers import LRP
    from sklearn_relevance.inference import no_inference_copy

    module, X, _ = _case("2d")
    folded = _inference.module_for_explainer(module, X, LRP())
    kept = _inference.module_for_explainer(module, X, LRP(canonizers=None))
    plain = _inference.module_for_explainer(module, X, get_explainer("gradient"))

    def has_bn(net):
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())

    assert folded is not module and not has_bn(folded)
    assert has_bn(kept) and has_bn(plain)
    # one cached copy per set of switches
    assert _inference.module_for_explainer(module, X, LRP()) is folded
    with torch.no_grad():
        R_fold = LRP(conservation="off").explain(module, X, 1)
        with no_inference_copy():
            R_module = LRP(conservation="off").explain(module, X, 1)
    torch.testing.assert_close(R_fold, R_module, rtol=1e-4, atol=1e-5 * float(R_module.abs().max()))
