"""Native LRP: captum equivalence, conservation, canonizers, residual Add,
differentiability, module left unchanged, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sklearn_relevance.explainers import get_explainer
from sklearn_relevance.explainers.lrp import (
    LRP,
    AlphaBeta,
    Composite,
    Epsilon,
    MergeBatchNorm,
    ZBox,
    ZPlus,
)
from sklearn_relevance.modules import MLP, ImageCNN, SpectrumCNN
from sklearn_relevance.modules.spectrum import Add

COMPOSITES = ["epsilon", "alpha1_beta0", "epsilon_plus", "epsilon_gamma_box"]
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _randomize_batchnorm(net):
    """Give BatchNorms non-trivial statistics, as after training."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0.0, 0.2)
    return net


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_unchanged(module, before):
    after = module.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    for m in module.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert "forward" not in vars(m)


class FlatCNN(nn.Module):
    """2D CNN that flattens in ``forward`` (captum has no rule for nn.Flatten)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(24, 8)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))
        return self.fc2(self.relu3(self.fc1(x.reshape(len(x), -1))))


# --------------------------------------------------------------------------
# captum
# --------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
@pytest.mark.parametrize("kind", ["mlp", "cnn2d"])
def test_epsilon_matches_captum_lrp(kind):
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(1)
    if kind == "mlp":
        net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(),
                            nn.Linear(5, 3))
        X = torch.randn(7, 6)
    else:
        net = FlatCNN()
        X = torch.randn(5, 2, 12, 12)
    target = torch.arange(len(X)) % 3
    ours = LRP(composite="epsilon", epsilon=1e-9).explain(net, X, target)
    theirs = captum_attr.LRP(net).attribute(X.clone(), target=target)
    assert theirs.abs().max() > 1e-3  # not a trivial all-zero comparison
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# conservation
# --------------------------------------------------------------------------
def _bias_free_cnn(dim):
    return nn.Sequential(
        CONV[dim](2, 4, 3, padding=1, bias=False), nn.ReLU(), POOL[dim](2),
        CONV[dim](4, 5, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
        nn.Linear(5 * 3 ** dim, 3, bias=False),
    ).double()


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("composite", COMPOSITES)
def test_conservation_on_bias_free_relu_cnns(dim, composite):
    torch.manual_seed(dim)
    net = _bias_free_cnn(dim)
    X = torch.randn(4, 2, *([6] * dim), dtype=torch.float64)
    R = LRP(composite=composite, epsilon=1e-12).explain(net, X, target=2)
    out = net(X)[:, 2].detach()
    torch.testing.assert_close(R.flatten(1).sum(1), out, rtol=1e-6, atol=1e-9)


def test_epsilon_to_zero_is_gradient_x_input_on_relu_nets():
    torch.manual_seed(0)
    net = MLP(10, 3, hidden_units=(16, 8))
    X = torch.randn(6, 10)
    R = LRP(composite="epsilon", epsilon=1e-12).explain(net, X, 1)
    Gx = get_explainer("gradient_x_input").explain(net, X, 1)
    torch.testing.assert_close(R, Gx, rtol=1e-4, atol=1e-6)


def test_large_epsilon_absorbs_relevance():
    torch.manual_seed(0)
    net = _bias_free_cnn(2).float()
    X = torch.randn(4, 2, 6, 6)
    total = net(X)[:, 0].detach().abs()
    small = LRP(composite="epsilon", epsilon=1e-9).explain(net, X, 0).flatten(1).sum(1)
    large = LRP(composite="epsilon", epsilon=10.0).explain(net, X, 0).flatten(1).sum(1)
    assert (large.abs() < 0.9 * total).all()
    torch.testing.assert_close(small, net(X)[:, 0].detach(), rtol=1e-4, atol=1e-5)


def test_image_cnn_3d_with_batchnorm_alpha1_beta0_conserves():
    """The MRI seed: alpha1-beta0 on a 3D CNN with BatchNorm (merged)."""
    torch.manual_seed(0)
    net = _randomize_batchnorm(ImageCNN((1, 16, 16, 16), 2, channels=(4, 8, 8))).eval()
    X = torch.rand(3, 1, 16, 16, 16)
    R = LRP(composite="alpha1_beta0").explain(net, X, target=1)
    assert R.shape == X.shape
    out = net(X)[:, 1].detach()
    # biases are ignored by alpha1-beta0: all relevance reaches the input
    torch.testing.assert_close(R.flatten(1).sum(1), out, rtol=1e-4, atol=1e-6)
    # and keeps the sign of the explained output in every voxel
    assert (R.flatten(1) * out.sign()[:, None] >= -1e-7).all()


def test_alpha1_beta0_on_real_ct_volumes(shared_data):
    """AdrenalMNIST3D volumes (CT, 28^3) through the 3D ImageCNN."""
    path = shared_data / "medmnist" / "adrenalmnist3d.npz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    import numpy as np

    with np.load(path) as data:
        volumes = data["test_images"][:3, None].astype(np.float32) / 255.0
    torch.manual_seed(0)
    net = _randomize_batchnorm(ImageCNN((1, 28, 28, 28), 2, channels=(4, 8))).eval()
    X = torch.as_tensor(volumes)
    R = LRP(composite="alpha1_beta0").explain(net, X, target=0)
    out = net(X)[:, 0].detach()
    # alpha1-beta0 never creates relevance and keeps the output's sign; the
    # share of neurons driven by biases alone (empty background) is lost
    total = R.flatten(1).sum(1)
    assert (R.flatten(1) * out.sign()[:, None] >= -1e-8).all()
    assert (total.abs() <= out.abs() * (1 + 1e-5)).all()
    assert (total.abs() > 0.05 * out.abs()).all()
    # relevance lies on the organ: no relevance where the whole receptive
    # field of the first convolution is empty (zero input everywhere)
    empty = torch.nn.functional.max_pool3d(X, 3, stride=1, padding=1) == 0
    assert R[empty].abs().max() < 1e-8


def test_spectrum_cnn_residual_add_conserves_without_biases():
    """Relevance is split between the residual branches and conserved when no
    bias (conv biases, BatchNorm shifts) absorbs any."""
    torch.manual_seed(0)
    net = SpectrumCNN((1, 60), 2, channels=(4, 6), strides=(2, 3)).double().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                m.bias.zero_()
            if isinstance(m, nn.BatchNorm1d):
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    X = torch.randn(4, 1, 60, dtype=torch.float64)
    out = net(X)[:, 0].detach()
    R = LRP(composite="epsilon", epsilon=1e-12).explain(net, X, 0)
    torch.testing.assert_close(R.flatten(1).sum(1), out, rtol=1e-6, atol=1e-9)


def test_add_splits_relevance_in_proportion_to_the_summands():
    class TwoBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 2, bias=False)
            self.b = nn.Linear(3, 2, bias=False)
            self.add = Add()
            self.head = nn.Linear(2, 1, bias=False)

        def forward(self, x):
            return self.head(self.add(self.a(x), self.b(x)))

    torch.manual_seed(0)
    net = TwoBranch().double()
    X = torch.randn(5, 3, dtype=torch.float64)
    R = LRP(composite={"a": Epsilon(1e-12), "b": ZPlus(), "head": None}).explain(net, X)
    Wa, Wb, c = (net.a.weight.detach(), net.b.weight.detach(), net.head.weight.detach()[0])
    a, b = X @ Wa.T, X @ Wb.T
    R_out = (a + b) * c
    R_a, R_b = a / (a + b) * R_out, b / (a + b) * R_out
    expected_a = X * ((R_a / a) @ Wa)
    zb = X.clamp(min=0) @ Wb.clamp(min=0).T + X.clamp(max=0) @ Wb.clamp(max=0).T
    contrib = (X[:, None, :] * Wb[None]).clamp(min=0)  # (n, out, in)
    expected_b = (contrib * (R_b / zb)[:, :, None]).sum(1)
    torch.testing.assert_close(R, expected_a + expected_b, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------
# canonizer
# --------------------------------------------------------------------------
def test_merge_batchnorm_same_outputs_and_exact_restore():
    torch.manual_seed(0)
    net = _randomize_batchnorm(ImageCNN((2, 8, 8, 8), 3, channels=(4, 6))).eval()
    X = torch.randn(3, 2, 8, 8, 8)
    before = _snapshot(net)
    reference = net(X)
    with MergeBatchNorm().apply(net) as handle:
        assert len(handle.pairs) == 2
        merged = net(X)
        # the BatchNorm is the identity while merged
        assert torch.equal(net.features[1](X[:, :1].expand(-1, 4, -1, -1, -1)),
                           X[:, :1].expand(-1, 4, -1, -1, -1))
    torch.testing.assert_close(merged, reference, rtol=1e-5, atol=1e-6)
    _assert_unchanged(net, before)
    assert torch.equal(net(X), reference)


def test_merge_batchnorm_pairs_in_residual_blocks_and_mlp():
    spectrum = SpectrumCNN((1, 30), 2, channels=(4, 6))
    # every BatchNorm of the network follows its convolution
    pairs = MergeBatchNorm.find_pairs(spectrum)
    bns = [m for m in spectrum.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(pairs) == len(bns) >= 6
    assert {id(bn) for _, bn in pairs} == {id(bn) for bn in bns}
    mlp = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.BatchNorm1d(3))
    pairs = MergeBatchNorm.find_pairs(mlp)
    assert pairs == [(mlp[0], mlp[1])]
    nested = nn.Sequential(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), nn.BatchNorm1d(3))
    assert MergeBatchNorm.find_pairs(nested) == [(nested[0][1], nested[1])]


def test_lrp_with_canonizer_equals_lrp_on_manually_fused_network():
    torch.manual_seed(0)
    net = _randomize_batchnorm(ImageCNN((1, 10, 10), 2, channels=(4, 6))).double().eval()
    fused_layers = []
    feats = list(net.features)
    i = 0
    while i < len(feats):
        if i + 1 < len(feats) and isinstance(feats[i + 1], nn.BatchNorm2d):
            fused_layers.append(torch.nn.utils.fuse_conv_bn_eval(feats[i], feats[i + 1]))
            i += 2
        else:
            fused_layers.append(feats[i])
            i += 1
    fused = nn.Sequential(nn.Sequential(*fused_layers), net.classifier).eval()
    X = torch.rand(4, 1, 10, 10, dtype=torch.float64)
    for composite in ("alpha1_beta0", "epsilon_gamma_box"):
        R = LRP(composite=composite).explain(net, X, 1)
        R_fused = LRP(composite=composite, canonizers=None).explain(fused, X, 1)
        torch.testing.assert_close(R, R_fused, rtol=1e-6, atol=1e-10)
    # without merging, the BatchNorm shift absorbs relevance
    R_raw = LRP(composite="alpha1_beta0", canonizers=None).explain(net, X, 1)
    assert not torch.allclose(R_raw, R, atol=1e-6)


def test_training_mode_batchnorm_is_not_merged_and_stats_are_kept():
    torch.manual_seed(0)
    net = ImageCNN((1, 8, 8), 2, channels=(4,), dropout=0.0).train()
    X = torch.rand(6, 1, 8, 8)
    before = _snapshot(net)
    R = LRP(composite="epsilon", epsilon=1e-9).explain(net, X, 0)
    _assert_unchanged(net, before)  # running stats not updated
    assert net.training
    # BatchNorm is explained as the affine map of its batch statistics: the
    # same as in eval mode with these statistics as running statistics
    bn = net.features[1]
    with torch.no_grad():
        h = net.features[0](X)
        stats = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
    frozen = copy.deepcopy(net).eval()
    frozen.features[1].running_mean.copy_(stats[0])
    frozen.features[1].running_var.copy_(stats[1])
    R_eval = LRP(composite="epsilon", epsilon=1e-9, canonizers=None).explain(frozen, X, 0)
    R_train = LRP(composite="epsilon", epsilon=1e-9, canonizers=None).explain(net, X, 0)
    torch.testing.assert_close(R_train, R_eval, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(R, R_train)  # not merged in training mode
    assert bn.training
    # a training penalty: the caller's own forward stays differentiable
    out = net(X)
    R = LRP(composite="alpha1_beta0").explain(net, X, 0, create_graph=True)
    (out.sum() + R.abs().sum()).backward()
    assert net.features[0].weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------
# differentiability
# --------------------------------------------------------------------------
@pytest.mark.parametrize("composite", ["alpha1_beta0", "epsilon_gamma_box"])
def test_create_graph_gives_exact_parameter_gradients(composite):
    """Gradients of a relevance loss match central finite differences."""
    torch.manual_seed(0)
    net = _randomize_batchnorm(ImageCNN((1, 8, 8), 3, channels=(3, 4))).double().eval()
    X = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    lrp = LRP(composite=composite)

    def loss():
        return lrp.explain(net, X, 1).square().sum()

    R = lrp.explain(net, X, 1, create_graph=True)
    params = dict(net.named_parameters())
    names = ["features.0.weight", "features.1.bias", "features.4.weight",
             "classifier.2.weight"]
    grads = torch.autograd.grad(R.square().sum(), [params[n] for n in names])
    assert any(g.abs().sum() > 0 for g in grads)
    for name, grad in zip(names, grads):
        p = params[name]
        idx = tuple(int(i) for i in torch.nonzero(grad.abs() == grad.abs().max())[0])
        h = 1e-6
        with torch.no_grad():
            p[idx] += h
        up = loss()
        with torch.no_grad():
            p[idx] -= 2 * h
        down = loss()
        with torch.no_grad():
            p[idx] += h
        fd = (up - down) / (2 * h)
        torch.testing.assert_close(grad[idx], fd, rtol=1e-4, atol=1e-10)


def test_create_graph_with_dropout_in_training_mode_reaches_weights():
    torch.manual_seed(0)
    net = MLP(6, 2, hidden_units=(8,), dropout=0.5).train()
    X = torch.randn(5, 6)
    R = LRP(composite="epsilon_plus").explain(net, X, 1, create_graph=True)
    assert R.requires_grad
    R.abs().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters()
               if p.ndim == 2)


def test_no_graph_by_default():
    net = MLP(4, 2)
    R = LRP().explain(net, torch.randn(3, 4), 0)
    assert not R.requires_grad


# --------------------------------------------------------------------------
# API: registry, composites, dicts, batching
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, composite",
    [("lrp", "epsilon_plus"), ("lrp_epsilon", "epsilon"),
     ("lrp_alpha1_beta0", "alpha1_beta0"), ("lrp_epsilon_plus", "epsilon_plus")],
)
def test_registry_names(name, composite):
    explainer = get_explainer(name)
    assert isinstance(explainer, LRP) and explainer.composite == composite
    torch.manual_seed(0)
    net = ImageCNN((1, 8, 8), 2, channels=(4,)).eval()
    X = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(explainer.explain(net, X, 1),
                               LRP(composite=composite).explain(net, X, 1))


def test_composites_differ_and_dict_by_type_equals_named():
    torch.manual_seed(0)
    net = ImageCNN((1, 8, 8), 2, channels=(4, 4)).eval()
    X = torch.rand(3, 1, 8, 8)
    results = {c: LRP(composite=c).explain(net, X, 0) for c in
               ["epsilon", "alpha1_beta0", "epsilon_plus", "epsilon_alpha2_beta1",
                "epsilon_gamma_box"]}
    for a in results:
        for b in results:
            if a < b:
                assert not torch.allclose(results[a], results[b], atol=1e-6), (a, b)
    as_dict = {nn.Linear: Epsilon(1e-6), nn.Conv2d: ZPlus()}
    torch.testing.assert_close(LRP(composite=as_dict).explain(net, X, 0),
                               results["epsilon_plus"])


def test_dict_by_name_overrides_and_box_bounds():
    torch.manual_seed(0)
    net = MLP(5, 2, hidden_units=(6,))
    X = torch.rand(4, 5)
    composite = Composite([(nn.Linear, Epsilon(1e-9))],
                          names={"layers.1": ZBox(low=0.0, high=1.0)})
    R = LRP(composite=composite).explain(net, X, 1)
    R_named = LRP(composite="epsilon_gamma_box", epsilon=1e-9, low=0.0,
                  high=1.0).explain(net, X, 1)
    torch.testing.assert_close(R, R_named)
    # bounds as arrays broadcast over samples give the same result
    R_arr = LRP(composite="epsilon_gamma_box", epsilon=1e-9, low=torch.zeros(5),
                high=torch.ones(5)).explain(net, X, 1)
    torch.testing.assert_close(R_arr, R_named)


def test_batched_equals_per_sample_and_per_sample_targets():
    torch.manual_seed(0)
    net = _randomize_batchnorm(ImageCNN((1, 8, 8), 3, channels=(4, 4))).eval()
    X = torch.rand(5, 1, 8, 8)
    target = torch.tensor([0, 1, 2, 1, 0])
    lrp = LRP(composite="epsilon_gamma_box")
    R = lrp.explain(net, X, target)
    single = torch.cat([lrp.explain(net, X[i:i + 1], int(target[i])) for i in range(5)])
    torch.testing.assert_close(R, single, rtol=1e-5, atol=1e-7)


def test_dict_input_attributes_each_modality():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 2, bias=False)
            self.b = nn.Linear(4, 2, bias=False)

        def forward(self, image, tabular):
            return self.a(image) + self.b(tabular)

    torch.manual_seed(0)
    net = Two()
    X = {"image": torch.randn(5, 3), "tabular": torch.randn(5, 4)}
    R = LRP(composite="epsilon", epsilon=1e-9).explain(net, X, 1)
    total = R["image"].sum(1) + R["tabular"].sum(1)
    torch.testing.assert_close(total, net(**X)[:, 1].detach(), rtol=1e-5, atol=1e-6)


def test_fusion_net_alpha1_beta0_conserves_over_modalities():
    fusion = pytest.importorskip("sklearn_relevance.modules.fusion")
    torch.manual_seed(0)
    shapes = {"image": (1, 16, 16), "tabular": (5,)}
    net = _randomize_batchnorm(fusion.FusionNet(shapes, 2)).eval()
    # every BatchNorm is merged, those after the encoders included
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(MergeBatchNorm.find_pairs(net)) == len(bns)
    X = {"image": torch.rand(4, 1, 16, 16), "tabular": torch.rand(4, 5)}
    R = LRP(composite="alpha1_beta0").explain(net, X, 1)
    assert set(R) == set(X) and R["image"].shape == X["image"].shape
    total = R["image"].flatten(1).sum(1) + R["tabular"].sum(1)
    torch.testing.assert_close(total, net(**X)[:, 1].detach(), rtol=1e-4, atol=1e-6)


def test_module_unchanged_after_success_and_error():
    torch.manual_seed(0)
    net = _randomize_batchnorm(SpectrumCNN((1, 40), 3)).eval()
    before = _snapshot(net)
    X = torch.randn(2, 1, 40)
    LRP(composite="alpha1_beta0").explain(net, X, 2)
    _assert_unchanged(net, before)
    with pytest.raises(ValueError, match="target"):
        LRP().explain(net, X, 7)
    _assert_unchanged(net, before)
    with pytest.raises(ValueError, match="receive the explained input"):
        LRP(composite={nn.Conv1d: ZBox()}).explain(net, X, 0)
    _assert_unchanged(net, before)


def test_relevance_on_the_module_device():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        net = ImageCNN((1, 8, 8), 2, channels=(4,)).to(device).eval()
        X = torch.rand(2, 1, 8, 8, device=device)
        R = LRP(composite="epsilon_gamma_box").explain(net, X, 1, create_graph=True)
        assert R.device == X.device


def test_estimator_explain_with_lrp():
    sk = pytest.importorskip("sklearn_relevance")
    try:
        Classifier = sk.RelevanceNetClassifier
    except (AttributeError, ImportError):
        pytest.skip("estimators not available")
    rng = torch.Generator().manual_seed(0)
    X = torch.rand(40, 6, generator=rng).numpy()
    y = (X[:, 0] > X[:, 1]).astype(int)
    clf = Classifier(max_epochs=2, random_state=0).fit(X, y)
    R = clf.explain(X[:5], explainer="lrp_alpha1_beta0")
    penalised = Classifier(max_epochs=1, random_state=0, relevance_penalty=0.1,
                           relevance_explainer="lrp_epsilon").fit(X, y)
    assert "train_relevance" in penalised.history_[-1]
    assert R.shape == X[:5].shape
    logits = clf.module_.eval()(torch.as_tensor(X[:5]))
    pred = logits.argmax(1)
    expected = logits.gather(1, pred[:, None])[:, 0].detach().numpy()
    assert abs(R.reshape(5, -1).sum(1) - expected).max() < 1e-3 * max(1, abs(expected).max())


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
class _Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


@pytest.mark.parametrize(
    "explainer, match",
    [
        (LRP(composite="nope"), "'composite' parameter of LRP"),
        (LRP(composite=3), "'composite' parameter of LRP"),
        (LRP(composite={nn.Linear: "epsilon"}), "must be an LRP Rule"),
        (LRP(composite={"missing": Epsilon()}), "not submodules"),
        (LRP(composite={int: Epsilon()}), "nn.Module subclasses"),
        (LRP(composite={nn.Linear: AlphaBeta(2.0, 0.0)}), "alpha - beta = 1"),
        (LRP(composite={nn.Linear: Epsilon(-1.0)}), "'epsilon' parameter of Epsilon"),
        (LRP(epsilon=0.0), "'epsilon' parameter of LRP"),
        (LRP(gamma=-1.0), "'gamma' parameter of LRP"),
        (LRP(composite="epsilon_gamma_box", low=1.0, high=0.0), "smaller than 'high'"),
        (LRP(canonizers="merge"), "'canonizers' parameter of LRP"),
    ],
)
def test_bad_parameters_raise_before_any_work(explainer, match):
    net = _Counting()
    with pytest.raises(ValueError, match=match):
        explainer.explain(net, torch.randn(2, 3), 0)
    assert net.calls == 0


def test_bad_input_and_target():
    net = _Counting()
    with pytest.raises(ValueError, match="floating point"):
        LRP().explain(net, torch.ones(2, 3, dtype=torch.int64), 0)
    assert net.calls == 0
    with pytest.raises(ValueError, match="class index in"):
        LRP().explain(net, torch.randn(2, 3), 5)
    with pytest.raises(ValueError, match="needs a layer with weights"):
        LRP(composite={nn.AvgPool1d: ZPlus()}).explain(
            nn.Sequential(nn.AvgPool1d(2), nn.Flatten()), torch.randn(2, 1, 4), 0)
