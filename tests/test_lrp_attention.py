"""LRP through attention: AttnLRP's rules against an explicit reference, and
the relevance budget (output = relevance sum + absorptions) on MONAI's ViT
(2D, 3D) and an ``nn.TransformerEncoder`` classifier, in float64.

The reference writes the rules of AttnLRP (Achtibat et al. 2024) as the
authors' package lxt states them (``lxt/explicit/functional.py``): epsilon
rule for linear maps and additions, ``R_x = x * (R_s - s * sum(R_s))`` for
the softmax (Proposition 3.1), the epsilon rule with halved relevance for
the matrix product of two activations (Proposition 3.3), the identity rule
for GELU and for LayerNorm's division by the standard deviation; CP-LRP
(Ali et al. 2022) treats the attention weights as constants.
"""

import math

import pytest
import torch
from torch import nn

from sklearn_relevance.explainers import LRP
from sklearn_relevance.explainers.lrp._absorption import relevance_budget

EPS = 1e-12


class _Block(nn.Module):
    """A pre-norm transformer block with one head, a class-token readout."""

    def __init__(self, d=6, hidden=10, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.fc1 = nn.Linear(d, hidden, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, d, bias=False)
        self.head = nn.Linear(d, 2, bias=False)
        with torch.no_grad():
            for ln in (self.ln1, self.ln2):
                ln.weight.uniform_(0.5, 1.5)
                ln.bias.normal_(0, 0.1)
        self.scale = 1 / math.sqrt(d)

    def forward(self, x):
        h = self.ln1(x)
        s = torch.softmax(self.q(h) @ self.k(h).transpose(-1, -2) * self.scale, -1)
        x = x + self.o(s @ self.v(h))
        x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
        return self.head(x[:, 0])


def _lin(x, w, R):
    """Epsilon rule of ``x @ w.T``."""
    return x * ((R / (x @ w.T)) @ w)


def _add(a, b, R):
    return a * R / (a + b), b * R / (a + b)


def _matmul(a, b, R):
    """AttnLRP's rule for ``a @ b`` of two activations (each half)."""
    Rn = R / (2 * (a @ b))
    return (Rn @ b.transpose(-1, -2)) * a, (a.transpose(-1, -2) @ Rn) * b


def _layer_norm(x, ln, R):
    """Identity rule on the division by the deviation, epsilon rule on the
    centring and on the affine map (its bias absorbs)."""
    c = x - x.mean(-1, keepdim=True)
    std = torch.sqrt(c.pow(2).mean(-1, keepdim=True) + ln.eps)
    y_hat = c / std * ln.weight
    Rc = y_hat * R / (y_hat + ln.bias)
    r = Rc / c
    return x * (r - r.mean(-1, keepdim=True))


def _reference(block, x, target, attention):
    """Relevance of ``x`` and the softmax's absorption, rule by rule."""
    W = {name: getattr(block, name).weight.detach() for name in "qkvo"}
    with torch.no_grad():
        h = block.ln1(x)
        q, k, v = h @ W["q"].T, h @ W["k"].T, h @ W["v"].T
        z = q @ k.transpose(-1, -2) * block.scale
        s = torch.softmax(z, -1)
        sv = s @ v
        a = sv @ W["o"].T
        x1 = x + a
        h2 = block.ln2(x1)
        u = h2 @ block.fc1.weight.T
        g = block.act(u)
        m = g @ block.fc2.weight.T
        x2 = x1 + m
        R2 = torch.zeros_like(x2)
        R2[:, 0] = x2[:, 0] * block.head.weight[target]
        R1, Rm = _add(x1, m, R2)
        Ru = _lin(g, block.fc2.weight, Rm)  # GELU: identity rule
        R1 = R1 + _layer_norm(x1, block.ln2, _lin(h2, block.fc1.weight, Ru))
        Rx, Ra = _add(x, a, R1)
        Rsv = _lin(sv, W["o"], Ra)
        if attention == "cp":
            Rv = (s.transpose(-1, -2) @ (Rsv / sv)) * v
            Rh = _lin(h, W["v"], Rv)
            absorbed = torch.zeros(len(x), dtype=x.dtype)
        else:
            Rs, Rv = _matmul(s, v, Rsv)
            Rz = z * (Rs - s * Rs.sum(-1, keepdim=True))  # Proposition 3.1
            Rq, RkT = _matmul(q, k.transpose(-1, -2), Rz)  # the scale: a constant
            Rh = (_lin(h, W["q"], Rq) + _lin(h, W["k"], RkT.transpose(-1, -2))
                  + _lin(h, W["v"], Rv))
            absorbed = (Rs.sum((1, 2)) - Rz.sum((1, 2)))
            # the bias term as docs/lrp.rst writes it
            closed = Rs * (1 - z + (s * z).sum(-1, keepdim=True))
            torch.testing.assert_close(closed.sum((1, 2)), absorbed)
        Rx = Rx + _layer_norm(x, block.ln1, Rh)
    return Rx, absorbed


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_lrp_follows_the_reference_rules_on_an_attention_block(attention):
    block = _Block().double().eval()
    x = torch.randn(4, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref, absorbed = _reference(block, x, 1, attention)
    lrp = LRP(composite="epsilon", epsilon=EPS, attention=attention, conservation="off")
    R = lrp.explain(block, x, 1)
    torch.testing.assert_close(R, ref, rtol=1e-7, atol=1e-9)
    # the budget measures the softmax rule's absorption as the reference has it
    budget = relevance_budget(lrp, block, x, 1)
    torch.testing.assert_close(budget["softmax"], absorbed, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(budget["sum"], ref.sum((1, 2)), rtol=1e-7, atol=1e-9)


def _vit(dims, **kw):
    nets = pytest.importorskip("monai.networks.nets", reason="monai is not installed")
    from sklearn_relevance.modules import SelectOutput

    size = 16 if dims == 3 else 32
    torch.manual_seed(0)
    vit = nets.ViT(in_channels=1, img_size=size, patch_size=8, hidden_size=16,
                   mlp_dim=32, num_layers=2, num_heads=2, classification=True,
                   num_classes=2, spatial_dims=dims, post_activation=None, **kw)
    X = torch.randn(3, 1, *(size,) * dims, generator=torch.Generator().manual_seed(2))
    return SelectOutput(vit, output=0).double().eval(), X.double()


class _Encoder(nn.Module):
    """A small transformer classifier (``nn.MultiheadAttention`` inside)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                           batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.encoder(x.reshape(x.shape[0], 8, 8)).mean(1))


class _Sdpa(nn.Module):
    """Fused attention (``F.scaled_dot_product_attention``), two heads."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 8)
        self.norm, self.head = nn.LayerNorm(8), nn.Linear(8, 2)

    def forward(self, x):
        x = x.reshape(x.shape[0], 8, 8)
        q, k, v = self.qkv(self.norm(x)).reshape(x.shape[0], 8, 3, 2, 4).permute(
            2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out(a.transpose(1, 2).reshape(x.shape))
        return self.head(x.mean(1))


def _net(case):
    if case in ("encoder", "sdpa"):
        X = torch.randn(3, 64, generator=torch.Generator().manual_seed(2))
        return (_Encoder() if case == "encoder" else _Sdpa()).double().eval(), X.double()
    return _vit(3 if case == "vit3d" else 2)


CASES = ["vit2d", "vit3d", "encoder", "sdpa"]


def _zero_constants(net):
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias") or "position" in name or "cls_token" in name:
                p.zero_()


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
@pytest.mark.parametrize("case", CASES)
def test_relevance_sum_is_the_output_less_the_measured_absorption(case, attention):
    net, X = _net(case)
    lrp = LRP(composite="epsilon", epsilon=EPS, attention=attention, conservation="off")
    b = relevance_budget(lrp, net, X, 1)
    torch.testing.assert_close(b["output"], net(X)[:, 1].detach())
    torch.testing.assert_close(b["sum"], lrp.explain(net, X, 1).sum(
        tuple(range(1, X.ndim))))
    # within 5% of the output once the absorption is subtracted (it closes
    # to rounding: every operation on the path has a rule)
    explained = b["sum"] + b["layers"] + b["constants"] + b["softmax"]
    assert torch.all((explained - b["output"]).abs() <= 1e-8 * b["output"].abs() + 1e-10)
    if attention == "cp":
        assert torch.all(b["softmax"] == 0)
    else:  # the softmax rule's bias term, not zero on these networks
        assert torch.all(b["softmax"].abs() > 1e-3 * b["output"].abs())


@pytest.mark.parametrize("case", CASES)
def test_without_biases_and_constants_only_the_softmax_absorbs(case):
    net, X = _net(case)
    _zero_constants(net)
    out = net(X)[:, 0].detach()
    cp = LRP(composite="epsilon", epsilon=EPS, attention="cp", conservation="raise",
             conservation_rtol=1e-8)
    torch.testing.assert_close(cp.explain(net, X, 0).sum(tuple(range(1, X.ndim))), out,
                               rtol=1e-8, atol=1e-10)
    b = relevance_budget(LRP(composite="epsilon", epsilon=EPS), net, X, 0)
    assert torch.all(b["layers"].abs() <= 1e-8 * out.abs())
    assert torch.all(b["constants"].abs() <= 1e-8 * out.abs())
    torch.testing.assert_close(b["sum"] + b["softmax"], out, rtol=1e-8, atol=1e-10)


class _Doubled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


def test_the_budget_shows_relevance_a_missing_rule_creates():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4, bias=False), nn.Linear(4, 1, bias=False)

        def forward(self, x):
            return self.b(_Doubled.apply(self.a(x)))

    torch.manual_seed(0)
    net = Net().double()
    X = torch.rand(3, 4, dtype=torch.float64)
    b = relevance_budget(LRP(composite="epsilon", epsilon=EPS, conservation="off"),
                         net, X, 0)
    torch.testing.assert_close(b["residual"], -b["output"])


def test_a_single_biased_layer_absorbs_the_whole_difference():
    torch.manual_seed(0)
    net = nn.Linear(3, 2).double()
    X = torch.rand(4, 3, dtype=torch.float64)
    b = relevance_budget(LRP(composite="epsilon", epsilon=EPS), net, X, 1)
    # LRP-epsilon's input relevance sums to w.x: the bias absorbs the rest
    torch.testing.assert_close(b["layers"], net.bias[1].detach().expand(4))
    assert torch.all(b["residual"] == 0)


def test_relevance_budget_validates_its_input():
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="'X' parameter of relevance_budget"):
        relevance_budget(LRP(), net, [[1.0, 2.0, 3.0]], 0)
    with pytest.raises(ValueError, match="'target' parameter of relevance_budget"):
        relevance_budget(LRP(), net, torch.rand(2, 3), torch.tensor([0, 1, 1]))


def test_conservation_message_says_where_the_relevance_went():
    net, X = _net("vit2d")
    with pytest.raises(ValueError, match="bias term of AttnLRP's softmax rule") as err:
        LRP(composite="epsilon", conservation="raise", conservation_rtol=0.05).explain(
            net, X, torch.tensor([0, 1, 1]))
    assert "is not accounted for by any rule" in str(err.value)
    # MONAI stacks queries, keys and values as (3, n, ...): with n = 3 a
    # whole-batch probe took that axis for the samples and blamed a Rearrange
    assert "Rearrange" not in str(err.value)
    with pytest.raises(ValueError, match="biases and epsilon of ruled layers") as err:
        LRP(composite="epsilon", attention="cp", conservation="raise",
            conservation_rtol=0.05).explain(net, X, 1)
    assert "softmax" not in str(err.value)
