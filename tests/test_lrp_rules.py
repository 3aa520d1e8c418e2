"""Each LRP rule against a slow, literal re-implementation of its formula.

The layer under test is followed by a bias-free linear read-out with no rule
(its plain gradient), so the relevance entering the layer is exactly
``R_j = y_j * c_j``; the literal versions loop over input and output neurons
in numpy. Convolutions are checked through their dense matrix (the response
to unit inputs), so padding and stride are covered too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance.explainers.lrp import (
    LRP,
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Pass,
    WSquare,
    ZBox,
    ZPlus,
)

EPS = 1e-9


def _stab(z, eps):
    return z + (eps if z >= 0 else -eps)


def literal(rule, W, b, x, R, low=None, high=None):
    """R_i for one sample: W (n_out, n_in), b (n_out,), x (n_in,), R (n_out,)."""
    n_out, n_in = W.shape
    out = np.zeros(n_in)
    for j in range(n_out):
        if rule == "epsilon":
            den = sum(x[i] * W[j, i] for i in range(n_in)) + b[j]
            num = [x[i] * W[j, i] for i in range(n_in)]
            for i in range(n_in):
                out[i] += num[i] / _stab(den, 1e-3) * R[j]
        elif rule in ("zplus", "alpha2_beta1", "zplus_bias", "alpha2_beta1_bias"):
            alpha, beta = (1.0, 0.0) if rule.startswith("zplus") else (2.0, 1.0)
            bj = b[j] if rule.endswith("_bias") else 0.0
            zij = [x[i] * W[j, i] for i in range(n_in)]
            pos = sum(max(z, 0.0) for z in zij) + max(bj, 0.0)
            neg = sum(min(z, 0.0) for z in zij) + min(bj, 0.0)
            for i in range(n_in):
                share = alpha * max(zij[i], 0.0) / _stab(pos, EPS)
                share -= beta * min(zij[i], 0.0) / _stab(neg, EPS)
                out[i] += share * R[j]
        elif rule == "gamma":
            g = 0.5
            num = [x[i] * (W[j, i] + g * max(W[j, i], 0.0)) for i in range(n_in)]
            den = sum(num) + b[j] + g * max(b[j], 0.0)
            for i in range(n_in):
                out[i] += num[i] / _stab(den, EPS) * R[j]
        elif rule == "gamma_generalized":
            g = 0.5
            out_j = sum(x[i] * W[j, i] for i in range(n_in)) + b[j]
            if out_j == 0:
                continue
            sign = 1.0 if out_j > 0 else -1.0

            def favour(w, same):  # w + g * (part of w of the favoured sign)
                return w + g * (max(sign * w, 0.0) * sign if same else min(sign * w, 0.0) * sign)

            num = [x[i] * favour(W[j, i], x[i] > 0) for i in range(n_in)]
            den = sum(num) + favour(b[j], True)
            for i in range(n_in):
                out[i] += num[i] / _stab(den, EPS) * R[j]
        elif rule == "flat":
            connected = [i for i in range(n_in) if W[j, i] != 0]
            for i in connected:
                out[i] += R[j] / len(connected)
        elif rule in ("wsquare", "wsquare_bias"):
            den = sum(W[j, i] ** 2 for i in range(n_in))
            den += b[j] ** 2 if rule == "wsquare_bias" else 0.0
            for i in range(n_in):
                out[i] += W[j, i] ** 2 / _stab(den, EPS) * R[j]
        elif rule == "zbox":
            num = [
                x[i] * W[j, i] - low[i] * max(W[j, i], 0.0) - high[i] * min(W[j, i], 0.0)
                for i in range(n_in)
            ]
            den = sum(num)
            for i in range(n_in):
                out[i] += num[i] / _stab(den, EPS) * R[j]
    return out


RULES = {
    "epsilon": lambda: Epsilon(1e-3),
    "zplus": lambda: ZPlus(),
    "alpha2_beta1": lambda: AlphaBeta(2.0, 1.0),
    "gamma": lambda: Gamma(0.5),
    "flat": lambda: Flat(),
    "wsquare": lambda: WSquare(),
    "zbox": lambda: ZBox(low=-2.0, high=2.5),
    # zennit's defaults: biases counted, the generalised gamma rule
    "zplus_bias": lambda: ZPlus(bias=True),
    "alpha2_beta1_bias": lambda: AlphaBeta(2.0, 1.0, bias=True),
    "wsquare_bias": lambda: WSquare(bias=True),
    "gamma_generalized": lambda: Gamma(0.5, generalized=True),
}
BIAS_RULES = ["zplus_bias", "alpha2_beta1_bias", "wsquare_bias", "gamma_generalized"]


def _dense_matrix(layer, in_shape):
    """(n_out, n_in) matrix of a bias-free linear layer, from unit inputs."""
    n_in = int(np.prod(in_shape))
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
    with torch.no_grad():
        cols = layer(eye) - (0 if layer.bias is None else layer(torch.zeros_like(eye)))
    return cols.reshape(n_in, -1).T.numpy()


def _bias_vector(layer, in_shape):
    with torch.no_grad():
        return layer(torch.zeros(1, *in_shape, dtype=torch.float64)).reshape(-1).numpy()


def _check(name, layer, in_shape, rng):
    layer = layer.double()
    n_samples = 3
    x = torch.as_tensor(rng.uniform(-2.0, 2.5, (n_samples, *in_shape)))
    if name == "gamma":
        x = x.abs()  # the original gamma rule is meant for non-negative inputs
    with torch.no_grad():
        n_out = layer(x[:1]).numel()
    head = nn.Linear(n_out, 1, bias=False).double()
    net = nn.Sequential(layer, nn.Flatten(), head)
    R = LRP(composite={"0": RULES[name](), "2": None}).explain(net, x)

    W = _dense_matrix(layer, in_shape)
    b = _bias_vector(layer, in_shape)
    c = head.weight.detach().numpy()[0]
    with torch.no_grad():
        y = layer(x).reshape(n_samples, -1).numpy()
    n_in = W.shape[1]
    low, high = np.full(n_in, -2.0), np.full(n_in, 2.5)
    expected = np.stack(
        [literal(name, W, b, x[s].reshape(-1).numpy(), y[s] * c, low, high)
         for s in range(n_samples)]
    )
    np.testing.assert_allclose(R.reshape(n_samples, -1).numpy(), expected,
                               rtol=1e-7, atol=1e-9)
    # these rules conserve: their denominators never vanish
    if name in ("flat", "wsquare", "zbox"):
        np.testing.assert_allclose(expected.sum(1), (y * c).sum(1), rtol=1e-6)


@pytest.mark.parametrize("name", list(RULES))
def test_rule_on_linear_matches_literal_formula(name, rng):
    _check(name, nn.Linear(5, 4), (5,), rng)


@pytest.mark.parametrize("name", list(RULES))
def test_rule_on_conv1d_matches_literal_formula(name, rng):
    _check(name, nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 7), rng)


@pytest.mark.parametrize("name", ["zplus", "epsilon", "zbox"])
def test_rule_on_conv3d_matches_literal_formula(name, rng):
    _check(name, nn.Conv3d(1, 2, 2, padding=1), (1, 2, 3, 2), rng)


@pytest.mark.parametrize("name", ["alpha2_beta1", "gamma", "flat"])
def test_rule_on_conv2d_matches_literal_formula(name, rng):
    _check(name, nn.Conv2d(2, 2, 3, padding=1, bias=False), (2, 3, 4), rng)


@pytest.mark.parametrize("name", BIAS_RULES)
def test_bias_options_on_conv3d_match_literal_formula(name, rng):
    _check(name, nn.Conv3d(1, 2, 2, padding=1), (1, 2, 3, 2), rng)


@pytest.mark.parametrize("name", ["zplus", "alpha2_beta1", "wsquare"])
def test_bias_option_changes_the_result_when_biases_are_large(name, rng):
    """The default ignores biases (today's results); bias=True counts them."""
    layer = nn.Linear(5, 4).double()
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([2.0, -2.0, 1.5, -1.0]))
    net = nn.Sequential(layer, nn.Linear(4, 1, bias=False).double())
    x = torch.as_tensor(rng.uniform(-1.0, 1.0, (3, 5)))
    off, on = (LRP(composite={"0": RULES[key](), "1": None}).explain(net, x)
               for key in (name, name + "_bias"))
    assert not torch.allclose(off, on, atol=1e-3)


def test_generalized_gamma_differs_on_negative_outputs_only(rng):
    """Both gamma forms agree on non-negative inputs with positive outputs;
    on a neuron with negative output the original rule favours positive
    weights, the generalised one negative contributions."""
    layer = nn.Linear(4, 1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.3]]))
        layer.bias.fill_(0.1)
    net = nn.Sequential(layer, nn.Linear(1, 1, bias=False).double())
    pos = torch.tensor([[1.0, 0.1, 1.0, 1.0]], dtype=torch.float64)   # output > 0
    neg = torch.tensor([[0.2, 1.0, 0.1, 0.1]], dtype=torch.float64)   # output < 0
    for x, same in ((pos, True), (neg, False)):
        orig, gen = (LRP(composite={"0": Gamma(0.5, generalized=g), "1": None})
                     .explain(net, x) for g in (False, True))
        assert torch.allclose(orig, gen) is same


def test_norm_on_average_pooling_is_proportional(rng):
    x = torch.as_tensor(rng.uniform(0.1, 1.0, (2, 1, 6)))
    net = nn.Sequential(nn.AvgPool1d(3), nn.Flatten(), nn.Linear(2, 1, bias=False)).double()
    R = LRP(composite={"0": Norm(), "2": None}).explain(net, x).numpy()
    c = net[2].weight.detach().numpy()[0]
    xs = x.numpy()[:, 0]
    expected = np.zeros_like(xs)
    for s in range(2):
        for j in range(2):
            window = xs[s, 3 * j: 3 * j + 3]
            R_j = window.mean() * c[j]
            expected[s, 3 * j: 3 * j + 3] = window / 3 / window.mean() * R_j
    np.testing.assert_allclose(R[:, 0], expected, rtol=1e-7)


def test_pass_hands_relevance_through_tanh(rng):
    x = torch.as_tensor(rng.normal(size=(4, 3)))
    net = nn.Sequential(nn.Tanh(), nn.Linear(3, 1, bias=False)).double()
    R = LRP(composite={"0": Pass(), "1": None}).explain(net, x)
    expected = torch.tanh(x) * net[1].weight.detach()[0]
    torch.testing.assert_close(R, expected, rtol=1e-7, atol=1e-9)
    # without Pass, tanh's gradient would not conserve relevance
    R0 = LRP(composite={"0": None, "1": None}).explain(net, x)
    assert not torch.allclose(R0, expected, atol=1e-3)


def test_max_pooling_is_winner_take_all():
    x = torch.tensor([[[1.0, 3.0, -2.0, 0.5]]], dtype=torch.float64)
    net = nn.Sequential(nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor([[2.0, -1.0]]))
    R = LRP(composite="epsilon", epsilon=1e-12).explain(net, x)
    torch.testing.assert_close(R, torch.tensor([[[0.0, 6.0, 0.0, -0.5]]],
                                               dtype=torch.float64))


class _DeclaredSum(nn.Module):
    lrp_role = "sum"  # the protocol: no import of the library needed

    def forward(self, a, b):
        return a + b


class _UndeclaredSum(nn.Module):
    def forward(self, a, b):
        return a + b


def test_modules_declaring_a_sum_get_the_norm_rule_without_an_import():
    from sklearn_relevance.explainers.lrp import make_composite
    from sklearn_relevance.modules.spectrum import Add

    net = nn.ModuleDict({"declared": _DeclaredSum(), "plain": _UndeclaredSum(),
                         "add": Add()})
    plan = make_composite("epsilon").resolve(net)
    assert isinstance(plan[net["declared"]][0], Norm)
    assert isinstance(plan[net["add"]][0], Norm)
    assert net["plain"] not in plan


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("make_rule", [lambda: ZPlus(), lambda: AlphaBeta(2.0, 1.0)])
def test_split_rules_on_signed_inputs_equal_the_dense_layer_of_the_convolution(
        dims, groups, make_rule):
    # inputs of both signs take the rules' two terms (x+ with one weight sign,
    # x- with the other); the convolution, written as the dense matrix it is,
    # must get the same relevance, whichever way the terms are computed
    from sklearn_relevance.explainers.lrp import LRP

    torch.manual_seed(dims * 10 + groups)
    conv = getattr(torch.nn, f"Conv{dims}d")(4, 4, 3, stride=2, padding=1, groups=groups,
                                              bias=False).double()
    shape = (4,) + (5,) * dims
    X = torch.randn(3, *shape, dtype=torch.float64)
    out_shape = conv(X[:1]).shape[1:]
    W = torch.autograd.functional.jacobian(lambda x: conv(x.reshape(1, *shape)).reshape(-1),
                                           torch.zeros(int(np.prod(shape)), dtype=torch.float64))
    dense = torch.nn.Linear(W.shape[1], W.shape[0], bias=False).double()
    with torch.no_grad():
        dense.weight.copy_(W)
    head = torch.nn.Linear(int(np.prod(out_shape)), 1, bias=False).double()
    net_conv = torch.nn.Sequential(conv, torch.nn.Flatten(), head)
    net_dense = torch.nn.Sequential(torch.nn.Flatten(), dense, head)
    rule = make_rule()
    lrp = LRP(composite={type(conv): rule, torch.nn.Linear: rule}, conservation="off")
    R_conv = lrp.explain(net_conv, X, 0)
    lrp = LRP(composite={torch.nn.Linear: make_rule()}, conservation="off")
    R_dense = lrp.explain(net_dense, X, 0).reshape(X.shape)
    torch.testing.assert_close(R_conv, R_dense, rtol=1e-9, atol=1e-12)
