"""Clinical networks as they are: MONAI DenseNet121, ResNet, SEResNet50 and
ViT, and a small ``nn.TransformerEncoder`` classifier, through fit, fit with a
penalty and with masks, every explainer, LRP conservation and pickling."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.explainers import LRP, GradCAM, get_explainer
from sklearn_relevance.explainers.cam import spatial_layer
from sklearn_relevance.explainers.lrp._conservation import ConservationWarning
from sklearn_relevance.explainers.lrp._functional import UnsupportedOperationError
from sklearn_relevance.modules import SelectOutput

nets = pytest.importorskip("monai.networks.nets", reason="monai is not installed")


def _densenet(**kw):
    return dict(module=nets.DenseNet121, module__spatial_dims=3, module__in_channels=1,
                module__out_channels=2, module__init_features=4,
                module__growth_rate=4, module__block_config=(1, 1, 1, 1))


def _seresnet():
    return dict(module=nets.SEResNet50, module__spatial_dims=3, module__in_channels=1,
                module__num_classes=2, module__layers=(1, 1, 1, 1),
                module__inplanes=8, module__reduction=4)


def _resnet():
    return dict(module=nets.resnet10, module__spatial_dims=3, module__n_input_channels=1,
                module__num_classes=2, module__widen_factor=0.25)


def _vit(dims):
    size = 16 if dims == 3 else 32
    return dict(module=SelectOutput, module__module=nets.ViT, module__output=0,
                module__in_channels=1, module__img_size=size, module__patch_size=8,
                module__hidden_size=16, module__mlp_dim=32, module__num_layers=1,
                module__num_heads=2, module__classification=True,
                module__num_classes=2, module__spatial_dims=dims,
                module__post_activation=None)


class _Encoder(nn.Module):
    """A small transformer classifier over a sequence of 8 tokens."""

    def __init__(self, n_tokens=8, d=8):
        super().__init__()
        self.n_tokens, self.d = n_tokens, d
        layer = nn.TransformerEncoderLayer(d, 2, dim_feedforward=16, dropout=0.0,
                                           batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        h = self.encoder(x.reshape(x.shape[0], self.n_tokens, self.d))
        return self.head(h.mean(1))


CASES = {
    "densenet121": (_densenet, (1, 32, 32, 32)),
    "seresnet50": (_seresnet, (1, 16, 16, 16)),
    "resnet10": (_resnet, (1, 16, 16, 16)),
    "vit3d": (lambda: _vit(3), (1, 16, 16, 16)),
    "vit2d": (lambda: _vit(2), (1, 32, 32)),
    "transformer": (lambda: dict(module=_Encoder), (64,)),
}


def _data(shape, n=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *shape)).astype(np.float32)
    y = np.arange(n) % 2
    X[y == 1] += 0.5
    return X, y


def _fit(case, **params):
    make, shape = CASES[case]
    X, y = _data(shape)
    net = RelevanceNetClassifier(**make(), max_epochs=1, batch_size=4, lr=1e-3,
                                 random_state=0, **params)
    return net.fit(X, y), X, y


@pytest.mark.parametrize("case", sorted(CASES))
def test_module_class_trains_with_penalty_and_masks_and_pickles(case):
    extra = {}
    if case == "transformer":
        # torch's fused CPU attention has no double backward; LRP decomposes
        # attention into differentiable matrix products
        extra = dict(relevance_explainer="lrp_epsilon")
    net, X, y = _fit(case, relevance_penalty=1e-3, **extra)
    mask = np.zeros_like(X)
    mask[:, ..., :2] = 1
    net.fit(X, y, relevance_mask=mask)
    proba = net.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.isfinite(proba).all()
    back = pickle.loads(pickle.dumps(net))
    np.testing.assert_allclose(back.predict_proba(X), proba, rtol=1e-5, atol=1e-6)


def test_module_class_gets_only_the_sizes_its_signature_names():
    class Named(nn.Module):
        def __init__(self, input_shape, n_outputs, **kwargs):
            super().__init__()
            self.kwargs = kwargs
            self.fc = nn.Linear(int(np.prod(input_shape)), n_outputs)

        def forward(self, x):
            return self.fc(x.flatten(1))

    class Catchall(nn.Module):
        def __init__(self, width=3, **kwargs):
            super().__init__()
            self.kwargs = kwargs
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)

    X, y = _data((4,))
    named = RelevanceNetClassifier(Named, max_epochs=1, random_state=0).fit(X, y)
    assert named.module_.kwargs == {}
    assert named.module_.fc.out_features == 2
    catchall = RelevanceNetClassifier(Catchall, max_epochs=1, random_state=0,
                                      module__width=5).fit(X, y)
    assert catchall.module_.kwargs == {}  # no input_shape / n_outputs injected


# explainers whose cost on 3D inputs stays in seconds at these sizes
EXPLAINERS = ["gradient", "gradient_x_input", "ig", "smoothgrad", "guided_backprop",
              "gradcam", pytest.param("occlusion", marks=pytest.mark.slow),
              "lrp_epsilon", "lrp_epsilon_plus", "lrp_alpha1_beta0"]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", EXPLAINERS)
def test_every_explainer_runs_on_clinical_networks(case, name):
    if name == "gradcam" and case in ("vit3d", "vit2d", "transformer"):
        pytest.skip("Grad-CAM needs convolutional feature maps")
    net, X, _ = _fit(case)
    explainer = get_explainer(name)
    if name == "occlusion":
        explainer.set_params(window=4 if X.ndim > 2 else 8)
    if name in ("ig", "smoothgrad"):
        explainer.set_params(**({"n_steps": 4} if name == "ig" else {"n_samples": 4}))
    with warnings.catch_warnings():
        # LRP-epsilon on trained layers with biases may legitimately warn
        # (near-zero outputs of biased layers); the z+ based composites ignore
        # biases and must conserve
        if name in ("lrp_epsilon_plus", "lrp_alpha1_beta0"):
            warnings.simplefilter("error", ConservationWarning)
        else:
            warnings.simplefilter("ignore", ConservationWarning)
        R = net.explain(X[:3], explainer=explainer)
    assert R.shape == X[:3].shape and np.isfinite(R).all()
    assert np.abs(R).sum() > 0


def _bare(case, seed=0):
    make, shape = CASES[case]
    params = make()
    cls = params.pop("module")
    kwargs = {k[len("module__"):]: v for k, v in params.items()}
    torch.manual_seed(seed)
    module = cls(**kwargs).double().eval()
    X = torch.as_tensor(_data(shape, n=3, seed=seed)[0]).double()
    return module, X


@pytest.mark.parametrize("case", ["densenet121", "seresnet50", "resnet10"])
@pytest.mark.parametrize("composite", ["epsilon", "epsilon_plus", "alpha1_beta0"])
def test_lrp_conserves_relevance_on_convolutional_clinical_networks(case, composite):
    # squeeze-and-excitation gates as constants, concatenation, residual sums
    # and pre-activation BatchNorm conserve relevance; biases absorb their
    # share, so they are zeroed (shifts of BatchNorm are zero at init)
    module, X = _bare(case)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias") and "fc" not in name.split(".")[-2:-1]:
                p.zero_()
        for m in module.modules():
            if isinstance(m, nn.Linear) and m.bias is not None and m.out_features == 2:
                m.bias.zero_()
    out = module(X)
    target = out.argmax(1)
    R = LRP(composite=composite, epsilon=1e-9, conservation="raise",
            conservation_rtol=0.05).explain(module, X, target)
    sums = R.reshape(len(X), -1).sum(1)
    logit = out[torch.arange(len(X)), target].detach()
    torch.testing.assert_close(sums, logit, rtol=0.05, atol=1e-9)


def test_se_gate_is_a_constant_for_lrp():
    # y = x * sigmoid(w * mean(x)): the gate passes no relevance, so LRP-0
    # returns x * g, the output itself, per element
    class SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            g = torch.sigmoid(self.fc(x.mean((2, 3)))).reshape(x.shape[0], 2, 1, 1)
            return (x * g).flatten(1).sum(1, keepdim=True)

    torch.manual_seed(0)
    net = SE().double()
    X = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    R = LRP(composite="epsilon", epsilon=1e-12).explain(net, X, 0)
    g = torch.sigmoid(net.fc(X.mean((2, 3)))).reshape(3, 2, 1, 1)
    torch.testing.assert_close(R, (X * g).detach())


def test_uniform_rule_halves_products_of_activations():
    class Square(nn.Module):
        def forward(self, x):
            a = x * 1.0
            return (a * x).sum(1, keepdim=True)  # two activations of x

    X = torch.randn(4, 5, dtype=torch.float64)
    R = LRP(composite="epsilon").explain(Square(), X, 0)
    # each factor gets half the relevance x_i^2, both reach x_i: R = x_i^2
    torch.testing.assert_close(R, X * X)


def test_layer_norm_takes_the_deviation_as_a_constant():
    torch.manual_seed(0)
    net = nn.Sequential(nn.LayerNorm(6, elementwise_affine=False),
                        nn.Linear(6, 1, bias=False)).double()
    X = torch.randn(3, 6, dtype=torch.float64) + 1.0
    R = LRP(composite="epsilon", epsilon=1e-12).explain(net, X, 0)
    w = net[1].weight.detach()[0]
    std = torch.sqrt(X.var(1, unbiased=False, keepdim=True) + 1e-5)
    # relevance of the centring as LRP-0 of a linear map: x_i (w_i - mean(w)) / std
    torch.testing.assert_close(R, X * (w - w.mean()) / std)
    torch.testing.assert_close(R.sum(1), net(X)[:, 0].detach())


def test_attention_is_explained_with_conservation_up_to_absorption():
    module, X = _bare("transformer")
    out = module(X)
    R = LRP(composite="epsilon").explain(module, X, 0)
    assert torch.isfinite(R).all() and R.abs().sum() > 0
    assert R.shape == X.shape
    del out


def test_vit_conserves_relevance_with_constant_attention_weights():
    # biases, position embeddings and the class token (zero at init) take
    # relevance like biases; without them CP-LRP conserves exactly and
    # AttnLRP (softmax rule) returns a finite map
    vit, X = _bare("vit2d")
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if name.endswith("bias") or "position" in name:
                p.zero_()
    out = vit(X)[:, 0].detach()
    R = LRP(composite="epsilon", epsilon=1e-12, attention="cp", conservation="raise",
            conservation_rtol=1e-6).explain(vit, X, 0)
    torch.testing.assert_close(R.reshape(len(X), -1).sum(1), out)
    R = LRP(composite="epsilon", attention="attnlrp").explain(vit, X, 0)
    assert torch.isfinite(R).all()
    with pytest.raises(ValueError, match="'attention' parameter of LRP"):
        LRP(attention="soft").explain(vit, X, 0)


def test_unsupported_operation_raises_naming_the_layer():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cumprod(x, 1)

    net = nn.Sequential(nn.Linear(3, 3), Odd(), nn.Linear(3, 1))
    with pytest.raises(UnsupportedOperationError, match="cumprod.*'1'"):
        LRP().explain(net, torch.randn(2, 3), 0)


def test_conservation_violation_names_the_layer():
    from sklearn_relevance.explainers.lrp import Composite, Pass

    class Creating(Pass):
        """A wrong rule: hands back 1000 times the relevance it receives."""

        def terms(self, layer, session):
            return [(1000.0, layer.x, 1e-9)]

    net = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Tanh(),
                        nn.Linear(3, 1, bias=False))
    composite = Composite(names={"1": Creating()})
    X = torch.rand(2, 3) + 0.1
    with pytest.warns(ConservationWarning, match="'1' \\(Tanh\\)"):
        LRP(composite=composite).explain(net, X, 0)
    with pytest.raises(ValueError, match="does not sum"):
        LRP(composite=composite, conservation="raise").explain(net, X, 0)
    with pytest.raises(ValueError, match="'conservation' parameter of LRP"):
        LRP(conservation="maybe").explain(net, X, 0)


def test_gradcam_default_layer_has_spatial_extent():
    module, X = _bare("densenet121")
    name, layer = spatial_layer(module, X)
    shapes = []
    handle = layer.register_forward_hook(lambda m, i, o: shapes.append(o.shape))
    module(X)
    handle.remove()
    assert np.prod(shapes[0][2:]) > 1
    cam = GradCAM().explain(module, X, 0)
    assert cam.abs().sum() > 0
    # 16^3 input: every convolution of the last blocks is 1 x 1 x 1 or less
    small = torch.randn(2, 1, 8, 8, 8, dtype=torch.float64)
    net = nn.Sequential(nn.Conv3d(1, 2, 8), nn.Flatten(), nn.Linear(2, 2)).double()
    with pytest.raises(ValueError, match="spatial extent"):
        GradCAM().explain(net, small, 0)


def test_gradcam_equals_monai_after_its_normalisation():
    from monai.visualize import GradCAM as MonaiGradCAM

    module, X = _bare("densenet121")
    name, _ = spatial_layer(module, X)
    target = module(X).argmax(1)
    ours = GradCAM().explain(module, X, target).reshape(len(X), -1)
    theirs = MonaiGradCAM(nn_module=module, target_layers=name)(x=X)  # predicted
    lo = ours.min(1, keepdim=True).values
    hi = ours.max(1, keepdim=True).values
    assert bool((hi > lo).all())
    # MONAI's default_normalizer maps (min, max) to (1, 0)
    torch.testing.assert_close(1 - (ours - lo) / (hi - lo),
                               theirs.reshape(len(X), -1).double(),
                               rtol=0, atol=1e-6)


def test_select_output_errors():
    vit, X = _bare("vit2d")
    with pytest.raises(ValueError, match="'output' parameter of SelectOutput"):
        SelectOutput(vit.module, output=5)(X)
    with pytest.raises(ValueError, match="'output' parameter of SelectOutput"):
        SelectOutput(vit.module, output=1.5)


def _trained_looking(case, seed=1):
    module, X = _bare(case)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
    return module, X


@pytest.mark.parametrize("seed", [1, 2])
def test_lrp_zero_equals_gradient_times_input_on_densenet(seed):
    # DenseNet121 has only linear maps, BatchNorm (merged or pre-activation),
    # ReLU, pooling and concatenation: LRP-0 (epsilon -> 0, biases taking
    # their share) is then gradient x input exactly, a theorem. A pre-
    # activation BatchNorm passed through unchanged breaks it (the layer below
    # divides gamma * z + beta's relevance by z).
    module, X = _trained_looking("densenet121", seed)
    X = X.requires_grad_(True)
    out = module(X)
    target = out.argmax(1)
    (grad,) = torch.autograd.grad(out[torch.arange(len(X)), target].sum(), X)
    R = LRP(composite="epsilon", epsilon=1e-12, conservation="off").explain(
        module, X.detach(), target)
    torch.testing.assert_close(R, (X * grad).detach(), rtol=1e-6,
                               atol=1e-7 * float((X * grad).abs().max()))


@pytest.mark.parametrize("case", ["seresnet50", "densenet121"])
def test_lrp_epsilon_of_the_module_as_it_is_equals_the_copy_and_is_accounted_for(case):
    # BatchNorms with trained-looking statistics and shifts (MONAI opens each
    # ADN with its BatchNorm, one Sequential below the convolution): LRP on
    # the module as it is must merge them like the inference copy does, and
    # every bit of relevance the sum misses must be absorbed by a layer
    from sklearn_relevance.inference import no_inference_copy

    module, X = _trained_looking(case)
    out = module(X)
    target = out.argmax(1)
    logit = out[torch.arange(len(X)), target].detach()
    # (LRP-epsilon's biases may absorb more than a small logit: no sum check)
    lrp = LRP(composite="epsilon", conservation="off")
    R_copy = lrp.explain(module, X, target)
    with no_inference_copy():
        R = lrp.explain(module, X, target)
    torch.testing.assert_close(R, R_copy, rtol=1e-7, atol=1e-9 * float(R_copy.abs().max()))
    sums = lrp.layer_relevance(module, X, target)
    leaves = {n for n, m in module.named_modules() if not list(m.children())}
    absorbed = sum(r_out - r_in for n, (r_in, r_out) in sums.items() if n in leaves)
    residual = logit - R.reshape(len(X), -1).sum(1) - absorbed
    assert (residual.abs() <= 1e-6 * logit.abs()).all(), residual / logit
