"""Gradient-family, Grad-CAM and occlusion explainers, checked against captum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from sklearn_relevance.explainers import (
    CaptumExplainer,
    GradCAM,
    Gradient,
    GradientXInput,
    GuidedBackprop,
    IntegratedGradients,
    Occlusion,
    SmoothGrad,
    get_explainer,
)
from sklearn_relevance.explainers import _smoothgrad as smoothgrad_module
from sklearn_relevance.explainers.gradient import integration_steps
from sklearn_relevance.modules import ImageCNN

captum_attr = pytest.importorskip("captum.attr")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ATOL = 1e-5
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
SPATIAL = {1: (12,), 2: (8, 9), 3: (6, 6, 5)}
N_CLASSES = 3


def _cnn(dim):
    """Conv -> ReLU -> MaxPool -> Conv -> ReLU -> Flatten -> Linear."""
    torch.manual_seed(dim)
    spatial = SPATIAL[dim]
    with torch.no_grad():
        feats = nn.Sequential(
            CONV[dim](2, 4, 3, padding=1), nn.ReLU(), POOL[dim](2),
            CONV[dim](4, 5, 3, padding=1), nn.ReLU(),
        )
        n_flat = feats(torch.zeros(1, 2, *spatial)).numel()
    return nn.Sequential(feats, nn.Flatten(), nn.Linear(n_flat, N_CLASSES)).eval()


def _mlp():
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                         nn.Linear(8, N_CLASSES)).eval()


def _image_cnn():
    torch.manual_seed(3)
    net = ImageCNN((1, 16, 16), N_CLASSES, channels=(4, 8))
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


CASES = {
    "mlp": (_mlp, (6,)),
    "cnn1d": (lambda: _cnn(1), (2, *SPATIAL[1])),
    "cnn2d": (lambda: _cnn(2), (2, *SPATIAL[2])),
    "cnn3d": (lambda: _cnn(3), (2, *SPATIAL[3])),
    "imagecnn": (_image_cnn, (1, 16, 16)),
}
CONV_CASES = ["cnn1d", "cnn2d", "cnn3d", "imagecnn"]


def _case(name, n=5):
    make, shape = CASES[name]
    X = torch.randn(n, *shape, generator=torch.Generator().manual_seed(1))
    target = torch.arange(n) % N_CLASSES
    return make(), X, target


def _close(a, b, atol=ATOL):
    a, b = a.detach(), b.detach()
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


# --------------------------------------------------------------------------
# equality with captum
# --------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_gradient_and_input_x_gradient_equal_captum(case):
    net, X, t = _case(case)
    _close(Gradient().explain(net, X, t),
           captum_attr.Saliency(net).attribute(X, target=t, abs=False))
    _close(Gradient(absolute=True).explain(net, X, t),
           captum_attr.Saliency(net).attribute(X, target=t))
    _close(GradientXInput().explain(net, X, t),
           captum_attr.InputXGradient(net).attribute(X, target=t))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right",
                                    "riemann_middle", "riemann_trapezoid"])
def test_integrated_gradients_equal_captum(case, method):
    net, X, t = _case(case)
    base = 0.1 * torch.randn(X.shape[1:], generator=torch.Generator().manual_seed(2))
    ours = IntegratedGradients(n_steps=7, method=method, baselines=base)
    theirs = captum_attr.IntegratedGradients(net).attribute(
        X, baselines=base.unsqueeze(0), target=t, n_steps=7, method=method)
    _close(ours.explain(net, X, t), theirs)
    local = captum_attr.IntegratedGradients(net, multiply_by_inputs=False).attribute(
        X, target=t, n_steps=7, method=method)
    _close(IntegratedGradients(n_steps=7, method=method, multiply_by_inputs=False)
           .explain(net, X, t), local)


def test_integration_steps_equal_captum():
    from captum.attr._utils.approximation_methods import approximation_parameters

    for method in ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                   "riemann_trapezoid"]:
        step_sizes, alphas = approximation_parameters(method)
        a, w = integration_steps(method, 9)
        np.testing.assert_allclose(a, alphas(9), atol=1e-12)
        np.testing.assert_allclose(w, step_sizes(9), atol=1e-12)


def _shared_noise(monkeypatch, X, n_samples):
    """Feed our SmoothGrad and captum's NoiseTunnel the same standard noise."""
    eps = torch.randn(n_samples, *X.shape, generator=torch.Generator().manual_seed(5))
    def standard_noise(tensors, seed, copy, out=None):
        if out is None:
            return [eps[copy]]
        out[0].copy_(eps[copy])
        return out

    monkeypatch.setattr(smoothgrad_module, "_standard_noise", standard_noise)

    def captum_noise(inp, stdev, n):
        noise = eps[:n].transpose(0, 1).reshape(-1, *inp.shape[1:])
        return inp.repeat_interleave(n, dim=0) + stdev * noise

    monkeypatch.setattr(captum_attr.NoiseTunnel, "_add_noise_to_input",
                        staticmethod(captum_noise))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("nt_type,kwargs", [
    ("smoothgrad", {}), ("smoothgrad_sq", {"squared": True}), ("vargrad", {"var": True}),
])
def test_smoothgrad_equals_noise_tunnel_with_same_noise(monkeypatch, case, nt_type,
                                                        kwargs):
    net, X, t = _case(case)
    _shared_noise(monkeypatch, X, 6)
    ours = SmoothGrad("gradient", n_samples=6, stdevs=0.3, **kwargs).explain(net, X, t)
    theirs = captum_attr.NoiseTunnel(captum_attr.Saliency(net)).attribute(
        X, nt_type=nt_type, nt_samples=6, stdevs=0.3, target=t, abs=False)
    _close(ours, theirs)


def test_smoothgrad_of_integrated_gradients_equals_noise_tunnel(monkeypatch):
    net, X, t = _case("cnn2d")
    _shared_noise(monkeypatch, X, 4)
    ours = SmoothGrad(IntegratedGradients(n_steps=5), n_samples=4, stdevs=0.2,
                      internal_batch_size=6).explain(net, X, t)
    theirs = captum_attr.NoiseTunnel(captum_attr.IntegratedGradients(net)).attribute(
        X, nt_samples=4, stdevs=0.2, target=t, n_steps=5)
    _close(ours, theirs)


@pytest.mark.parametrize("case", list(CASES))
def test_guided_backprop_equals_captum(case):
    net, X, t = _case(case)
    _close(GuidedBackprop().explain(net, X, t),
           captum_attr.GuidedBackprop(net).attribute(X, target=t))


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("window,stride", [(3, 2), (2, 1), (4, 3)])
def test_occlusion_equals_captum(case, window, stride):
    net, X, t = _case(case, n=3)
    spatial = X.ndim - 2
    ours = Occlusion(window=window, stride=stride, baselines=0.25).explain(net, X, t)
    theirs = captum_attr.Occlusion(net).attribute(
        X, sliding_window_shapes=(X.shape[1],) + (window,) * spatial,
        strides=(1,) + (stride,) * spatial, baselines=0.25, target=t,
        perturbations_per_eval=64)
    _close(ours, theirs)


def test_occlusion_channel_window_and_mlp_equal_captum():
    net, X, t = _case("cnn2d", n=3)
    ours = Occlusion(window=(1, 3, 2), stride=(1, 2, 2)).explain(net, X, t)
    theirs = captum_attr.Occlusion(net).attribute(
        X, sliding_window_shapes=(1, 3, 2), strides=(1, 2, 2), target=t,
        perturbations_per_eval=64)
    _close(ours, theirs)
    net, X, t = _case("mlp", n=3)
    _close(Occlusion(window=2, stride=1).explain(net, X, t),
           captum_attr.Occlusion(net).attribute(X, sliding_window_shapes=(2,),
                                                strides=1, target=t))


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("relu", [True, False])
def test_gradcam_equals_captum(case, relu):
    net, X, t = _case(case)
    name, layer = [(n, m) for n, m in net.named_modules()
                   if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))][-1]
    mode = {3: "linear", 4: "bilinear", 5: "trilinear"}[X.ndim]
    cam = captum_attr.LayerGradCam(net, layer).attribute(X, target=t,
                                                         relu_attributions=relu)
    theirs = captum_attr.LayerAttribution.interpolate(cam, X.shape[2:], mode)
    ours = GradCAM(relu=relu).explain(net, X, t)
    _close(ours, theirs.expand_as(X))
    _close(GradCAM(name, relu=relu).explain(net, X, t), ours)


def test_gradcam_named_earlier_layer_equals_captum():
    net, X, t = _case("imagecnn")
    theirs = captum_attr.LayerAttribution.interpolate(
        captum_attr.LayerGradCam(net, net.features[0]).attribute(
            X, target=t, relu_attributions=True), X.shape[2:], "nearest")
    _close(GradCAM("features.0", interpolate_mode="nearest").explain(net, X, t), theirs)


def test_captum_explainer_wraps_any_method():
    net, X, t = _case("imagecnn")
    ig = CaptumExplainer("IntegratedGradients", n_steps=6)
    _close(ig.explain(net, X, t), IntegratedGradients(n_steps=6).explain(net, X, t))
    assert clone(ig).get_params() == {"attribution_class": "IntegratedGradients",
                                      "n_steps": 6}
    ig.set_params(n_steps=9)
    _close(ig.explain(net, X, t), IntegratedGradients(n_steps=9).explain(net, X, t))
    cam = CaptumExplainer(captum_attr.LayerGradCam, layer="features.4",
                          relu_attributions=True)
    _close(cam.explain(net, X, t), GradCAM("features.4").explain(net, X, t))
    tunnel = CaptumExplainer(lambda f: captum_attr.NoiseTunnel(captum_attr.Saliency(f)),
                             nt_samples=3, stdevs=0.0, abs=False)
    _close(tunnel.explain(net, X, t), Gradient().explain(net, X, t))
    assert not ig.differentiable


def test_captum_explainer_errors(monkeypatch):
    net, X, t = _case("mlp")
    with pytest.raises(ValueError, match="attribution_class"):
        CaptumExplainer("NoSuchMethod").explain(net, X, t)
    with pytest.raises(ValueError, match="'target'"):
        CaptumExplainer("Saliency").explain(net, X, 7)
    import sys

    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError, match="'captum'"):
        CaptumExplainer("Saliency").explain(net, X, t)


# --------------------------------------------------------------------------
# axioms and invariances
# --------------------------------------------------------------------------
def test_integrated_gradients_completeness():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))
    X = torch.randn(8, 5)
    attr, delta = IntegratedGradients(n_steps=64, baselines="mean").explain(
        net, X, 1, return_convergence_delta=True)
    gap = net(X)[:, 1] - net(X.mean(1, keepdim=True).expand_as(X))[:, 1]
    assert gap.abs().min() > 1e-3
    assert delta.abs().max() < 1e-4 * max(1.0, float(gap.abs().max()))
    _close(attr.sum(1), gap)
    coarse = IntegratedGradients(n_steps=2, method="riemann_left")
    _, rough = coarse.explain(net, X, 1, return_convergence_delta=True)
    assert rough.abs().max() > 10 * delta.abs().max()


@pytest.mark.parametrize("base", ["gradient", "gradient_x_input", GuidedBackprop(),
                                  IntegratedGradients(n_steps=4)])
def test_smoothgrad_without_noise_equals_its_base(base):
    net, X, t = _case("cnn2d")
    expected = get_explainer(base).explain(net, X, t)
    _close(SmoothGrad(base, n_samples=3, noise_level=0.0).explain(net, X, t), expected)
    _close(SmoothGrad(base, n_samples=3, noise_level=0.0, squared=True)
           .explain(net, X, t), expected ** 2)
    _close(SmoothGrad(base, n_samples=3, noise_level=0.0, var=True).explain(net, X, t),
           torch.zeros_like(X))


def test_smoothgrad_noise_is_relative_to_the_range():
    """A linear model's gradient is constant: noise changes only SmoothGrad^2."""
    net = nn.Linear(4, 1)
    X = torch.randn(3, 4) * torch.tensor([[1.0], [10.0], [100.0]])
    sg = SmoothGrad(n_samples=4, noise_level=0.5, random_state=0)
    _close(sg.explain(net, X), net.weight.expand(3, 4))
    xai = SmoothGrad(explainer=GradientXInput(), n_samples=400, noise_level=0.2,
                     var=True, random_state=0)
    var = xai.explain(net, X)
    spread = X.amax(1) - X.amin(1)
    expected = (net.weight * 0.2 * spread[:, None]) ** 2  # Var(w * (x + e))
    torch.testing.assert_close(var, expected.detach(), rtol=0.25, atol=0)


def test_smoothgrad_random_state_and_chunking():
    net, X, t = _case("cnn2d")
    sg = SmoothGrad(n_samples=7, random_state=0)
    a = sg.explain(net, X, t)
    assert torch.equal(a, sg.explain(net, X, t))
    assert torch.equal(a, clone(sg).explain(net, X, t))
    assert not torch.allclose(a, SmoothGrad(n_samples=7, random_state=1).explain(net, X, t))
    for ibs in (1, 4, 12):
        _close(SmoothGrad(n_samples=7, random_state=0, internal_batch_size=ibs)
               .explain(net, X, t), a)


@pytest.mark.parametrize("ibs", [2, 11])
def test_integrated_gradients_and_occlusion_chunking(ibs):
    net, X, t = _case("cnn2d")
    _close(IntegratedGradients(n_steps=6, internal_batch_size=ibs).explain(net, X, t),
           IntegratedGradients(n_steps=6).explain(net, X, t))
    _close(Occlusion(3, stride=2, internal_batch_size=ibs).explain(net, X, t),
           Occlusion(3, stride=2).explain(net, X, t))


def test_dict_inputs_integrated_gradients_and_smoothgrad():
    torch.manual_seed(0)

    class Fusion(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, image, tabular):
            return torch.tanh(self.a(image)) + self.b(tabular)

    net = Fusion()
    X = {"image": torch.randn(4, 3), "tabular": torch.randn(4, 4)}
    attr, delta = IntegratedGradients(n_steps=32).explain(
        net, X, 1, return_convergence_delta=True)
    assert set(attr) == {"image", "tabular"}
    assert delta.abs().max() < 1e-4
    _close(attr["tabular"], net.b.weight[1] * X["tabular"])
    sg = SmoothGrad(n_samples=3, noise_level=0.0).explain(net, X, 1)
    _close(sg["tabular"], net.b.weight[1].expand(4, 4))


# --------------------------------------------------------------------------
# differentiability
# --------------------------------------------------------------------------
DIFFERENTIABLE = ["gradient", "gradient_x_input", "ig", "smoothgrad",
                  "smoothgrad_squared", "vargrad", "guided_backprop", "gradcam"]


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_create_graph_reaches_the_weights(name):
    net, X, t = _case("cnn2d")
    explainer = get_explainer(name)
    if hasattr(explainer, "n_steps"):
        explainer.set_params(n_steps=4)
    if hasattr(explainer, "n_samples"):
        explainer.set_params(n_samples=3, random_state=0)
    assert explainer.differentiable
    rel = explainer.explain(net, X, t, create_graph=True)
    first = net[0][0].weight
    (grad,) = torch.autograd.grad(rel.pow(2).sum(), [first])
    assert grad.abs().sum() > 0
    plain = explainer.explain(net, X, t)
    assert not plain.requires_grad
    _close(rel, plain)


def test_create_graph_matches_finite_differences():
    """The double-backprop gradient of an IG penalty is the true one."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    X = torch.randn(5, 3, dtype=torch.float64)
    ig = IntegratedGradients(n_steps=5, method="riemann_middle", internal_batch_size=7)

    def penalty():
        return ig.explain(net, X, create_graph=True).abs().sum()

    weight = net[0].weight
    (grad,) = torch.autograd.grad(penalty(), [weight])
    eps = 1e-6
    with torch.no_grad():
        weight[1, 2] += eps
        up = penalty()
        weight[1, 2] -= 2 * eps
        down = penalty()
        weight[1, 2] += eps
    assert abs(float((up - down) / (2 * eps)) - float(grad[1, 2])) < 1e-6


def test_occlusion_refuses_create_graph():
    net, X, t = _case("cnn2d")
    assert not Occlusion().differentiable
    with pytest.raises(ValueError, match="not differentiable"):
        Occlusion(2).explain(net, X, t, create_graph=True)
    assert not SmoothGrad("occlusion").differentiable


# --------------------------------------------------------------------------
# registry and bad input
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls,params", [
    ("integrated_gradients", IntegratedGradients, {}),
    ("ig", IntegratedGradients, {}),
    ("smoothgrad", SmoothGrad, {}),
    ("smoothgrad_squared", SmoothGrad, {"squared": True}),
    ("vargrad", SmoothGrad, {"var": True}),
    ("guided_backprop", GuidedBackprop, {}),
    ("gradcam", GradCAM, {}),
    ("occlusion", Occlusion, {}),
])
def test_registry_names(name, cls, params):
    explainer = get_explainer(name)
    assert type(explainer) is cls
    for key, value in params.items():
        assert explainer.get_params()[key] == value


BAD = [
    (IntegratedGradients(), "mlp", {"target": 3}, "'target'"),
    (SmoothGrad(n_samples=2), "cnn2d", {"target": torch.tensor([0, 1])}, "'target'"),
    (Occlusion(2), "cnn2d", {"target": -7}, "'target'"),
    (GradCAM("features.99"), "cnn2d", {}, "'layer'"),
    (GradCAM(), "mlp", {}, "GradCAM applies to"),
    (IntegratedGradients(baselines=torch.zeros(5)), "mlp", {}, "'baselines'"),
    (IntegratedGradients(baselines="median"), "mlp", {}, "'baselines'"),
    (Occlusion(2, baselines=torch.zeros(2, 2)), "cnn2d", {}, "'baselines'"),
    (Occlusion(99), "cnn2d", {}, "'window'"),
    (Occlusion(2, stride=3), "cnn2d", {}, "'stride'"),
    (Occlusion((2, 2, 2, 2)), "cnn2d", {}, "'window'"),
    (IntegratedGradients(method="simpson"), "mlp", {}, "'method'"),
    (IntegratedGradients(n_steps=1, method="riemann_left"), "mlp", {}, "'n_steps'"),
    (SmoothGrad(squared=True, var=True), "mlp", {}, "'squared'"),
    (SmoothGrad("nope"), "mlp", {}, "'explainer'"),
    (SmoothGrad(noise_level=-1.0), "mlp", {}, "'noise_level'"),
]


@pytest.mark.parametrize("explainer,case,kwargs,match", BAD)
def test_bad_input_raises_value_error(explainer, case, kwargs, match):
    net, X, t = _case(case, n=3)
    kwargs = {"target": t, **kwargs}
    with pytest.raises(ValueError, match=match):
        explainer.explain(net, X, **kwargs)


@pytest.mark.parametrize("explainer", [Gradient(), IntegratedGradients(n_steps=2),
                                       SmoothGrad(n_samples=2), GuidedBackprop(),
                                       GradCAM(), Occlusion(2)])
def test_x_not_matching_the_module(explainer):
    net = _image_cnn()
    with pytest.raises(ValueError, match="'X'.*input_shape|'X'.*shape"):
        explainer.explain(net, torch.randn(2, 1, 12, 16), target=0)
    plain = _cnn(2)
    with pytest.raises(ValueError, match="'X' parameter does not match"):
        explainer.explain(plain, torch.randn(2, 3, 8, 9), target=0)
    with pytest.raises(ValueError, match="floating point"):
        explainer.explain(plain, torch.ones(2, 2, 8, 9, dtype=torch.int64), target=0)


# --------------------------------------------------------------------------
# with the estimator
# --------------------------------------------------------------------------
def test_estimator_trains_with_integrated_gradients_and_refuses_occlusion():
    from sklearn_relevance import RelevanceNetClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 1, 8, 8))
    y = (X[:, 0, 2:5, 2:5].mean((1, 2)) > 0).astype(int)
    clf = RelevanceNetClassifier(
        relevance_penalty=0.1, relevance_explainer=IntegratedGradients(n_steps=3),
        max_epochs=1, batch_size=20, random_state=0,
        module__channels=(4,), module__hidden_units=8,
    ).fit(X, y)
    for name in ["ig", "smoothgrad", "guided_backprop", "gradcam", "occlusion"]:
        rel = clf.explain(X[:4], explainer=name)
        assert rel.shape == (4, 1, 8, 8) and np.isfinite(rel).all()
    with pytest.raises(ValueError, match="differentiable"):
        RelevanceNetClassifier(relevance_penalty=0.1, relevance_explainer="occlusion",
                               max_epochs=1).fit(X, y)
