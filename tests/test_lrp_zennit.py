"""LRP rules and composites against zennit, the reference LRP implementation.

zennit is a test-only reference (installed with ``--no-deps``; ``conftest.py``
gives it a two-class torchvision stub); the package never imports it. Each
case builds a float64 MLP or 2D CNN, explains the target logit with our
``LRP`` and with zennit (relevance ``logit * one-hot`` entering the output,
which is what ours explains), and compares. zennit's rules count biases by
default (our ``bias=True``) and take ``zero_params="bias"`` to ignore them
(our default); its Gamma is the generalised rule (our ``generalized=True``).
Conv1d / Conv3d, which zennit maps the same way, are checked against literal
formulas in ``test_lrp_rules.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sklearn_relevance.explainers.lrp import (
    LRP,
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    WSquare,
    ZPlus,
)

zennit = pytest.importorskip("zennit", reason="zennit (test-only reference) is absent")
from zennit import composites as zc  # noqa: E402
from zennit import rules as zr  # noqa: E402

STAB = 1e-6  # zennit's default stabiliser, used on both sides


def mlp():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 7), nn.ReLU(), nn.Linear(7, 3)
    ).double().eval()
    with torch.no_grad():  # biases large enough to matter
        for layer in (net[0], net[2], net[4]):
            layer.bias.uniform_(-0.5, 0.5)
    return net


def cnn():
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(5 * 2 * 2, 6), nn.ReLU(), nn.Linear(6, 3),
    ).double().eval()
    with torch.no_grad():
        for layer in (net[0], net[3], net[7], net[9]):
            layer.bias.uniform_(-0.3, 0.3)
    return net


NETS = {"mlp": (mlp, (6,)), "cnn": (cnn, (2, 8, 8))}


def _inputs(shape, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g, dtype=torch.float64) * 2 - 0.5


def zennit_relevance(net, x, target, composite):
    """zennit's relevance of ``logit[target]`` (relevance = logit entering)."""
    with composite.context(net) as modified:
        x = x.clone().requires_grad_(True)
        out = modified(x)
        onehot = torch.zeros_like(out)
        onehot[torch.arange(len(x)), target] = 1.0
        (relevance,) = torch.autograd.grad(out, x, grad_outputs=out.detach() * onehot)
    return relevance


def ours(net, x, target, composite, **params):
    return LRP(composite=composite, **params).explain(net, x, target)


def _weighted(net):
    return [str(i) for i, m in enumerate(net) if isinstance(m, (nn.Linear, nn.Conv2d))]


def _structural(net):
    """zennit's counterpart of the structural rules our dict composites add:
    average pooling splits relevance in proportion (Norm)."""
    names = [str(i) for i, m in enumerate(net) if isinstance(m, nn.AvgPool2d)]
    return [(names, zr.Norm(1e-9))] if names else []


# (ours, zennit) per rule; "hidden" rules go on every weighted layer, "first"
# rules on the input layer (the others get epsilon on both sides)
RULES = {
    "epsilon": (lambda: Epsilon(STAB), lambda: zr.Epsilon(STAB)),
    "zplus": (lambda: ZPlus(STAB), lambda: zr.ZPlus(STAB, zero_params="bias")),
    "zplus_bias": (lambda: ZPlus(STAB, bias=True), lambda: zr.ZPlus(STAB)),
    "alpha2_beta1": (lambda: AlphaBeta(2.0, 1.0, stabilizer=STAB),
                     lambda: zr.AlphaBeta(2.0, 1.0, STAB, zero_params="bias")),
    "alpha2_beta1_bias": (lambda: AlphaBeta(2.0, 1.0, stabilizer=STAB, bias=True),
                          lambda: zr.AlphaBeta(2.0, 1.0, STAB)),
    "alpha1_beta0_bias": (lambda: AlphaBeta(1.0, 0.0, stabilizer=STAB, bias=True),
                          lambda: zr.AlphaBeta(1.0, 0.0, STAB)),
    "gamma_generalized": (lambda: Gamma(0.25, stabilizer=STAB, generalized=True),
                          lambda: zr.Gamma(0.25, STAB)),
}
FIRST = {
    "flat": (lambda: Flat(STAB), lambda: zr.Flat(STAB)),
    "wsquare": (lambda: WSquare(STAB), lambda: zr.WSquare(STAB, zero_params="bias")),
    "wsquare_bias": (lambda: WSquare(STAB, bias=True), lambda: zr.WSquare(STAB)),
}


def _compare_by_name(net_name, target, layer_rules):
    """Ours and zennit with ``[(layer names, (our rule, zennit rule))]``."""
    make, shape = NETS[net_name]
    net, x = make(), _inputs(shape)
    mine = ours(net, x, target, {n: pair[0]() for names, pair in layer_rules
                                 for n in names})
    theirs = zennit_relevance(net, x, target, zc.NameMapComposite(
        [(names, pair[1]()) for names, pair in layer_rules] + _structural(net)))
    torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-9)
    assert mine.abs().sum() > 0


@pytest.mark.parametrize("net_name", list(NETS))
@pytest.mark.parametrize("rule", list(RULES))
def test_rule_on_every_layer_matches_zennit(net_name, rule):
    names = _weighted(NETS[net_name][0]())
    _compare_by_name(net_name, torch.tensor([0, 1, 2, 1]), [(names, RULES[rule])])


@pytest.mark.parametrize("net_name", list(NETS))
@pytest.mark.parametrize("rule", list(FIRST))
def test_input_layer_rule_matches_zennit(net_name, rule):
    first, *rest = _weighted(NETS[net_name][0]())
    _compare_by_name(net_name, torch.tensor([2, 0, 1, 1]),
                     [([first], FIRST[rule]), (rest, RULES["epsilon"])])


def test_bias_makes_a_difference_here():
    """The nets above have biases that matter: without the bias option ours
    would not equal zennit's defaults (so the parity tests can fail)."""
    net, x, target = cnn(), _inputs((2, 8, 8)), torch.tensor([0, 1, 2, 1])
    names = _weighted(net)
    mine = ours(net, x, target, {n: ZPlus(STAB) for n in names})
    theirs = zennit_relevance(net, x, target, zc.NameMapComposite(
        [(names, zr.ZPlus(STAB)), *_structural(net)]))
    assert not torch.allclose(mine, theirs, rtol=1e-3, atol=1e-6)


# named composites: ours with bias=True / generalized_gamma=True are zennit's
COMPOSITES = {
    "epsilon_plus": lambda: zc.EpsilonPlus(epsilon=STAB, stabilizer=1e-9),
    "epsilon_alpha2_beta1": lambda: zc.EpsilonAlpha2Beta1(epsilon=STAB,
                                                           stabilizer=1e-9),
    "epsilon_gamma_box": lambda: zc.EpsilonGammaBox(low=-0.5, high=1.5,
                                                    epsilon=STAB, stabilizer=1e-9),
}


@pytest.mark.parametrize("net_name", list(NETS))
@pytest.mark.parametrize("name", list(COMPOSITES))
def test_named_composite_with_bias_matches_zennit(net_name, name):
    make, shape = NETS[net_name]
    if name == "epsilon_gamma_box" and net_name == "mlp":
        pytest.skip("zennit's EpsilonGammaBox puts ZBox on the first convolution only")
    net, x, target = make(), _inputs(shape), torch.tensor([1, 1, 0, 2])
    mine = ours(net, x, target, name, epsilon=STAB, low=-0.5, high=1.5,
                bias=True, generalized_gamma=True)
    theirs = zennit_relevance(net, x, target, COMPOSITES[name]())
    torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["epsilon_plus", "epsilon_alpha2_beta1"])
def test_named_composite_default_matches_zennit_without_biases(name):
    """Today's default (biases ignored by z+ / alpha-beta) is zennit's
    composite with ``zero_params="bias"`` on the convolutions."""
    net, x, target = cnn(), _inputs((2, 8, 8)), torch.tensor([1, 1, 0, 2])
    conv_rule = (zr.ZPlus(1e-9, zero_params="bias") if name == "epsilon_plus"
                 else zr.AlphaBeta(2.0, 1.0, 1e-9, zero_params="bias"))
    layer_map = [(nn.Conv2d, conv_rule), (nn.Linear, zr.Epsilon(STAB)),
                 (nn.AvgPool2d, zr.Norm(1e-9))]
    mine = ours(net, x, target, name, epsilon=STAB)
    theirs = zennit_relevance(net, x, target, zc.LayerMapComposite(layer_map))
    torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-9)


def test_lrp_differentiable_with_bias_and_generalized_gamma():
    """The options keep relevance differentiable (training penalties)."""
    net = cnn()
    x = _inputs((2, 8, 8))
    R = LRP("epsilon_gamma_box", bias=True, generalized_gamma=True).explain(
        net, x, torch.tensor([0, 1, 2, 0]), create_graph=True)
    (g,) = torch.autograd.grad(R.abs().sum(), net[0].weight)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("params, name", [
    ({"bias": 1}, "bias"), ({"generalized_gamma": "yes"}, "generalized_gamma"),
])
def test_lrp_rejects_non_bool_options(params, name):
    with pytest.raises(ValueError, match=f"The '{name}' parameter of LRP must be a bool"):
        LRP(**params).explain(mlp(), _inputs((6,)), 0)


def test_rules_reject_non_bool_options():
    with pytest.raises(ValueError, match="The 'bias' parameter of ZPlus"):
        LRP(composite={"0": ZPlus(bias="no")}).explain(mlp(), _inputs((6,)), 0)
    with pytest.raises(ValueError, match="The 'generalized' parameter of Gamma"):
        LRP(composite={"0": Gamma(generalized=None)}).explain(mlp(), _inputs((6,)), 0)


class _Residual(nn.Module):
    """A residual block whose sum is a plain ``+`` in ``forward``."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())
        self.out = nn.ReLU()

    def forward(self, x):
        return self.out(self.body(x) + self.shortcut(x))


def resnet():
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), _Residual(4, 4, 1), _Residual(4, 6, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


def _zennit_resnet_composite(with_sum):
    """zennit's epsilon-plus with BatchNorm merged and, with ``with_sum``, the
    block's addition made a ``Sum`` layer with the proportional (Norm) rule,
    as zennit's own ResNet canonizer does for torchvision's blocks."""
    from conftest import zennit_residual_sums
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import LayerMapComposite
    from zennit.layer import Sum
    from zennit.types import AvgPool, Convolution

    layer_map = [(Convolution, zr.ZPlus(1e-9, zero_params="bias")),
                 (nn.Linear, zr.Epsilon(STAB)), (AvgPool, zr.Norm(1e-9))]
    canonizers = [SequentialMergeBatchNorm()]
    if with_sum:
        layer_map.append((Sum, zr.Norm(1e-9)))
        canonizers.append(zennit_residual_sums(_Residual))
    return LayerMapComposite(layer_map, canonizers=canonizers)


@pytest.mark.parametrize("batchnorm, rtol", [(False, 1e-6), (True, 1e-4)])
def test_plain_residual_additions_split_relevance_in_proportion_as_zennits_sum_rule(
        batchnorm, rtol):
    # relevance flows in gradient x activation form, so the gradient of a
    # plain ``a + b`` hands a and b their proportional shares: ours needs no
    # canonizer for residual sums and equals zennit with its Sum layer and
    # Norm rule; zennit without them hands both summands the whole relevance.
    # (The two merge BatchNorm into the convolutions with differences of
    # about 1e-5 of the largest relevance; without BatchNorm they agree to
    # 1e-7, the stabilisers' order.)
    net, x = resnet(), _inputs((2, 8, 8))
    if not batchnorm:
        for m in list(net.modules()):
            for name, child in list(m.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(m, name, nn.Identity())
    target = torch.tensor([0, 1, 2, 0])
    mine = LRP("epsilon_plus", epsilon=STAB).explain(net, x, target)
    theirs = zennit_relevance(net, x, target, _zennit_resnet_composite(with_sum=True))
    scale = float(theirs.abs().max())
    torch.testing.assert_close(mine, theirs, rtol=0, atol=rtol * scale)
    doubled = zennit_relevance(net, x, target, _zennit_resnet_composite(with_sum=False))
    assert (mine - doubled).abs().max() > 0.1 * doubled.abs().max()
