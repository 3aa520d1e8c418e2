"""No silent wrong result from explainers called on modules.

* a module whose output is not differentiable in X is refused (also as the
  training penalty's explainer), instead of all-zero relevance;
* NaN / inf in X and NaN / inf baselines are refused;
* float, bool and 2D targets are refused, not truncated or flattened;
* no explainer changes the module (parameters, buffers, training flags,
  hooks), also in training mode with BatchNorms;
* Grad-CAM equals captum's LayerGradCam with in-place ReLUs after the layer;
* the estimator's pass that picks the predicted class stays in the budget.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.explainers import (
    XRAI,
    CaptumExplainer,
    GradCAM,
    IntegratedGradients,
    Occlusion,
    get_explainer,
)
from sklearn_relevance._batching import _BUDGET_TABLE, MEMORY_BUDGETS
from sklearn_relevance.explainers._engine import max_rows_for
from sklearn_relevance.modules import ImageCNN

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
SHAPES = {1: (2, 12), 2: (2, 8, 8), 3: (1, 6, 6, 6)}

#: every gradient-based explainer (the relevance comes from d output / d X)
GRADIENT_BASED = ["gradient", "saliency", "gradient_x_input", "integrated_gradients",
                  "smoothgrad", "smoothgrad_squared", "vargrad", "guided_backprop",
                  "lrp", "lrp_epsilon", "lrp_alpha1_beta0", "lrp_epsilon_plus"]
SMALL = {"integrated_gradients": {"n_steps": 4}, "ig": {"n_steps": 4},
         "smoothgrad": {"n_samples": 3, "random_state": 0},
         "smoothgrad_squared": {"n_samples": 3, "random_state": 0},
         "vargrad": {"n_samples": 3, "random_state": 0}, "occlusion": {"window": 2}}


def _make(name):
    return get_explainer(name).set_params(**SMALL.get(name, {}))


# --------------------------------------------------------------------------
# modules whose output does not depend on X through autograd
# --------------------------------------------------------------------------
class Detached(nn.Module):
    """Dense layer on ``x.detach()``."""

    def __init__(self, input_shape, n_outputs=3):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.lin = nn.Linear(math.prod(self.input_shape), n_outputs)

    def forward(self, x):
        return self.lin(x.detach().reshape(len(x), -1))


class Argmax(nn.Module):
    """Embedding of the position of each sample's maximum."""

    def __init__(self, input_shape, n_outputs=3):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.emb = nn.Embedding(math.prod(self.input_shape), n_outputs)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.emb(x.reshape(len(x), -1).argmax(1)))


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("kind", [Detached, Argmax])
@pytest.mark.parametrize("name", GRADIENT_BASED)
def test_output_not_depending_on_x_is_refused(name, kind, dim):
    shape = SHAPES[dim]
    net = kind(shape).eval()
    X = torch.randn(4, *shape)
    with pytest.raises(ValueError, match="does not depend on X"):
        _make(name).explain(net, X, torch.tensor([0, 1, 2, 0]))


@pytest.mark.parametrize("method", ["IntegratedGradients", "Saliency", "InputXGradient"])
def test_captum_bridge_refuses_output_not_depending_on_x(method):
    pytest.importorskip("captum.attr")
    net = Detached((2, 8, 8)).eval()
    with pytest.raises(ValueError, match="does not depend on X"):
        CaptumExplainer(method).explain(net, torch.randn(3, 2, 8, 8), 1)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_gradcam_refuses_output_not_depending_on_the_layer(dim):
    class ConvArgmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = CONV[dim](SHAPES[dim][0], 4, 3, padding=1)
            self.emb = nn.Embedding(4, 3)

        def forward(self, x):
            h = self.conv(x)
            return self.emb(h.flatten(2).mean(2).argmax(1))

    X = torch.randn(3, *SHAPES[dim])
    with pytest.raises(ValueError, match="does not depend on the activations"):
        GradCAM().explain(ConvArgmax(), X, 1)


@pytest.mark.parametrize("explainer", ["gradient_x_input", "gradient",
                                       "integrated_gradients", "lrp"])
def test_penalty_with_output_not_depending_on_x_is_refused(explainer):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6)).astype(np.float32)
    y = np.arange(24) % 3
    clf = RelevanceNetClassifier(Detached, relevance_penalty=1.0, max_epochs=1,
                                 relevance_explainer=explainer, train_split=None)
    with pytest.raises(ValueError, match="penalty 0"):
        clf.fit(X, y)


def test_unused_modality_keeps_zero_relevance():
    """Only a module that ignores *all* of X is refused: one unused modality
    of a dict input is zero, as it should be."""

    class OneOfTwo(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, a, b):
            return self.lin(a)

    X = {"a": torch.randn(3, 4), "b": torch.randn(3, 5)}
    rel = get_explainer("gradient").explain(OneOfTwo(), X, 1)
    assert torch.equal(rel["b"], torch.zeros(3, 5))
    assert rel["a"].abs().sum() > 0


# --------------------------------------------------------------------------
# NaN / inf inputs and baselines
# --------------------------------------------------------------------------
def _conv_net(dim):
    torch.manual_seed(dim)
    shape = SHAPES[dim]
    return ImageCNN(shape, 3, channels=(3, 4), hidden_units=8).eval(), shape


ALL = GRADIENT_BASED + ["gradcam", "occlusion"]


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad, word", [(float("nan"), "NaN"), (float("inf"), "infinity"),
                                       (-float("inf"), "infinity")])
def test_nan_and_inf_in_x_are_refused(name, dim, bad, word):
    net, shape = _conv_net(dim)
    X = torch.randn(3, *shape)
    X.view(-1)[5] = bad
    with pytest.raises(ValueError, match=word):
        _make(name).explain(net, X, 1)


def test_nan_in_x_is_refused_by_xrai_captum_and_dict_inputs():
    net, shape = _conv_net(2)
    X = torch.randn(2, *shape)
    X[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        XRAI(explainer="gradient", segment_shape=None).explain(net, X, 1)
    pytest.importorskip("captum.attr")
    with pytest.raises(ValueError, match="NaN"):
        CaptumExplainer("Saliency").explain(net, X, 1)
    with pytest.raises(ValueError, match="NaN"):
        IntegratedGradients().convergence_delta(net, X, torch.zeros_like(X), 1)

    class Two(nn.Module):
        def forward(self, a, b):
            return a.sum(1, keepdim=True) + b.sum(1, keepdim=True)

    with pytest.raises(ValueError, match=r"X\['b'\].*NaN"):
        get_explainer("gradient").explain(
            Two(), {"a": torch.ones(2, 3), "b": torch.tensor([[1.0, float("nan")]] * 2)})


@pytest.mark.parametrize("explainer", [IntegratedGradients, Occlusion])
@pytest.mark.parametrize("baselines, word", [
    (float("nan"), "NaN"), (float("inf"), "infinity"),
    (torch.tensor([[0.0] * 11 + [float("nan")]] * 2), "NaN"),
])
def test_nan_and_inf_baselines_are_refused(explainer, baselines, word):
    net, shape = _conv_net(1)
    with pytest.raises(ValueError, match=f"baselines.*{word}"):
        explainer(baselines=baselines).explain(net, torch.randn(3, *shape), 1)


@pytest.mark.parametrize("baselines", [float("nan"), torch.full((1, 2, 12), float("inf"))])
def test_captum_bridge_refuses_nan_and_inf_baselines(baselines):
    pytest.importorskip("captum.attr")
    net, shape = _conv_net(1)
    with pytest.raises(ValueError, match="baselines.*(NaN|infinity)"):
        CaptumExplainer("IntegratedGradients", baselines=baselines).explain(
            net, torch.randn(3, *shape), 1)


# --------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------
BAD_TARGETS = [
    (1.0, "float"), (1.7, "float"), (True, "bool"),
    (torch.tensor([0.0, 1.9, 2.0]), "float"), (torch.tensor([True, False, True]), "bool"),
    (np.array([0.5, 1.0, 2.0]), "float"), ([0.0, 1.0, 1.0], "float"),
    (torch.tensor([[0, 1, 2]]), r"shape \(1, 3\)"), (np.zeros((3, 1), int), r"shape \(3, 1\)"),
    (torch.tensor([[0], [1], [2]]), r"shape \(3, 1\)"),
]


@pytest.mark.parametrize("name", ALL + ["xrai", "captum"])
@pytest.mark.parametrize("target, word", BAD_TARGETS)
def test_float_bool_and_2d_targets_are_refused(name, target, word):
    net, shape = _conv_net(2)
    X = torch.randn(3, *shape)
    if name == "xrai":
        explainer = XRAI(explainer="gradient", segment_shape=None)
    elif name == "captum":
        pytest.importorskip("captum.attr")
        explainer = CaptumExplainer("Saliency")
    else:
        explainer = _make(name)
    with pytest.raises(ValueError, match=f"'target' parameter.*{word}"):
        explainer.explain(net, X, target)


@pytest.mark.parametrize("target", [1, np.int64(1), torch.tensor(1), [1, 1, 1],
                                    np.array([1, 1, 1]), torch.tensor([1, 1, 1])])
def test_integer_targets_of_any_kind_agree(target):
    net, shape = _conv_net(1)
    X = torch.randn(3, *shape)
    want = get_explainer("gradient").explain(net, X, 1)
    assert torch.equal(get_explainer("gradient").explain(net, X, target), want)


# --------------------------------------------------------------------------
# no explainer changes the module
# --------------------------------------------------------------------------
def _state(net):
    return ({k: v.clone() for k, v in net.state_dict().items()},
            [(m.training, getattr(m, "track_running_stats", None))
             for m in net.modules()])


def _assert_unchanged(net, before):
    state, flags = before
    after = net.state_dict()
    assert set(after) == set(state)
    changed = [k for k in state if not torch.equal(state[k], after[k])]
    assert changed == []
    assert [(m.training, getattr(m, "track_running_stats", None))
            for m in net.modules()] == flags
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   or "forward" in vars(m) for m in net.modules())


EVERY = ALL + ["ig", "xrai", "captum_ig", "captum_guided", "captum_deeplift",
               "captum_gradcam"]


def _any_explainer(name, dim):
    if name == "xrai":
        return XRAI(explainer="ig", n_steps=4, segment_shape=None, scales=(50,))
    if name.startswith("captum"):
        pytest.importorskip("captum.attr")
        return {"captum_ig": CaptumExplainer("IntegratedGradients", n_steps=4),
                "captum_guided": CaptumExplainer("GuidedBackprop"),
                "captum_deeplift": CaptumExplainer("DeepLift"),
                "captum_gradcam": CaptumExplainer("LayerGradCam", layer="features.4"),
                }[name]
    return _make(name)


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("name", EVERY)
def test_no_explainer_changes_the_module(name, dim, mode):
    if name == "xrai" and dim != 2:
        pytest.skip("XRAI explains 2D images")
    net, shape = _conv_net(dim)
    net.train(mode != "eval")
    if mode == "mixed":
        net.classifier.eval()
    before = _state(net)
    explainer = _any_explainer(name, dim)
    X = torch.randn(4, *shape, generator=torch.Generator().manual_seed(0))
    explainer.explain(net, X, torch.tensor([0, 1, 2, 0]))
    _assert_unchanged(net, before)
    if name in ("integrated_gradients", "ig"):
        IntegratedGradients(n_steps=4).explain(net, X, 1, return_convergence_delta=True)
        _assert_unchanged(net, before)


def test_training_penalty_leaves_batchnorm_statistics_to_the_training_pass():
    """In training, BatchNorm statistics count the training forward only, for
    every explainer (the fast gradient path and the others)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 1, 8, 8)).astype(np.float32)
    y = np.arange(16) % 2
    stats = {}
    for explainer in ("gradient_x_input", "integrated_gradients", "guided_backprop"):
        clf = RelevanceNetClassifier(
            ImageCNN, module__channels=(2,), module__hidden_units=4, max_epochs=1,
            batch_size=8, train_split=None, relevance_penalty=0.1, lr=1e-9,
            relevance_explainer=explainer, random_state=0,
        )
        clf.fit(X, y)
        bn = clf.module_.features[1]
        stats[explainer] = (int(bn.num_batches_tracked), bn.running_mean.clone())
    assert {n for n, _ in stats.values()} == {2}
    first = stats["gradient_x_input"][1]
    assert all(torch.allclose(m, first) for _, m in stats.values())


# --------------------------------------------------------------------------
# Grad-CAM with in-place operations after the layer
# --------------------------------------------------------------------------
def _relu_net(dim, inplace):
    torch.manual_seed(10 + dim)
    shape = SHAPES[dim]
    feats = nn.Sequential(
        CONV[dim](shape[0], 4, 3, padding=1), nn.ReLU(inplace=inplace),
        CONV[dim](4, 5, 3, padding=1), nn.ReLU(inplace=inplace),
    )
    n_flat = 5 * math.prod(shape[1:])
    return nn.Sequential(feats, nn.Flatten(), nn.Linear(n_flat, 3)).eval(), shape


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("layer", ["0.0", "0.2"])
def test_gradcam_with_inplace_relu_equals_captum(dim, inplace, relu, layer):
    captum_attr = pytest.importorskip("captum.attr")
    net, shape = _relu_net(dim, inplace)
    X = torch.randn(4, *shape, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([0, 1, 2, 1])
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[dim]
    sub = dict(net.named_modules())[layer]
    cam = captum_attr.LayerGradCam(net, sub).attribute(X, target=t, relu_attributions=relu)
    theirs = captum_attr.LayerAttribution.interpolate(cam, X.shape[2:], mode)
    ours = GradCAM(layer, relu=relu).explain(net, X, t)
    torch.testing.assert_close(ours, theirs.expand_as(X), atol=1e-5, rtol=1e-5)
    # and the same map as the network without in-place ReLUs
    plain, _ = _relu_net(dim, False)
    torch.testing.assert_close(GradCAM(layer, relu=relu).explain(plain, X, t), ours,
                               atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------
# the estimator's predicted-class pass stays within the memory budget
# --------------------------------------------------------------------------
def test_predicted_class_pass_is_chunked_within_the_budget(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 1, 32, 32)).astype(np.float32)
    y = np.arange(20) % 2
    clf = RelevanceNetClassifier(ImageCNN, module__channels=(2,), module__hidden_units=4,
                                 max_epochs=1, train_split=None, random_state=0).fit(X, y)
    Xe = rng.normal(size=(600, 1, 32, 32)).astype(np.float32)
    # a pass budget that this small network's 600 rows exceed; the first call
    # measures the network and makes the inference copy (forwards of 1-2 rows)
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", 8 * 2**20)
    clf.explain(Xe, explainer="gradient", batch_size=-1)
    sizes = []
    handle = clf.module_.register_forward_pre_hook(
        lambda m, args: sizes.append((torch.is_grad_enabled(), len(args[0]))))
    try:
        rel = clf.explain(Xe, explainer="gradient", batch_size=-1)
    finally:
        handle.remove()
    bound = max_rows_for(torch.as_tensor(Xe[:1]), None, 4 * MEMORY_BUDGETS["explain_pass_input"],
                         module=clf.module_)
    predicted = [n for grad, n in sizes if not grad]
    assert bound < 600
    assert sum(predicted) == 600 and max(predicted) <= bound
    # the same maps as explaining the predicted classes given explicitly
    want = clf.explain(Xe, explainer="gradient", batch_size=-1,
                       target=clf.predict_proba(Xe).argmax(1))
    np.testing.assert_allclose(rel, want, atol=1e-6)


@pytest.mark.parametrize("target", [True, np.bool_(False), np.array([0.0, 1.0, 1.0]),
                                    np.array([[0], [1], [1]]), np.array([True, False, True])])
def test_estimator_explain_refuses_bool_float_and_2d_targets(target):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 5)).astype(np.float32)
    clf = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, np.arange(12) % 3)
    with pytest.raises(ValueError, match="'target' parameter of explain"):
        clf.explain(X[:3], target=target)
