"""Differential tests of the inference copy on generated networks.

A seeded generator builds small float64 networks from the constructs that
can defeat a rewrite: hooks (forward, forward-pre, backward), a second read
of the input (always, or behind a data-dependent branch), in-place
operations, one module used twice, parametrizations
(``torch.nn.utils.parametrize``, weight norm), max pooling on tied values,
tuple outputs, BatchNorm in train or eval mode, on 1D, 2D and 3D inputs.
For each, every input-level explainer through the copy
(:func:`~sklearn_relevance._inference.inference_copy`, the cached copy and
:func:`~sklearn_relevance._inference.module_for_explainer`) must equal the
same explainer on the module as it is, in float64, and captum in float64
(integrated gradients, saliency and SmoothGrad's mean of saliency maps on
the same noisy inputs). The default run covers 16 networks; the slow sweep
300.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from sklearn_relevance import _inference
from sklearn_relevance._inference import (
    cached_inference_copy,
    inference_copy,
    module_for_explainer,
)
from sklearn_relevance.explainers import (
    Gradient,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
)

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_SIZE = {1: 8, 2: 6, 3: 4}


class _Scale(nn.Module):
    """A parametrization: the weight times 1.5."""

    def forward(self, w):
        return 1.5 * w


class _Generated(nn.Module):
    """A network drawn by :func:`_draw`: stem, body, head, and options."""

    def __init__(self, spec):
        super().__init__()
        nd, c = spec["ndim"], spec["channels"]
        self.spec = spec
        conv, bn, pool = _CONV[nd], _BN[nd], _POOL[nd]
        self.stem = conv(2, c, 3, padding=1)
        layers = []
        if spec["bn"]:
            layers.append(bn(c))
        # in place where the network itself allows it (a Tanh keeps its output)
        layers.append(nn.ReLU(inplace=spec["inplace"] and spec["bn"] and not spec["bn_train"]))
        if spec["pool"]:
            layers.append(pool(2))
        layers += [conv(c, c, 3, padding=1), bn(c), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.shared = nn.Tanh()
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        h = self.stem(x)
        if self.spec["shared"]:
            h = self.shared(h)
        h = self.body(h)
        if self.spec["shared"]:
            h = self.shared(h) + h
        if self.spec["relu_"]:
            h = torch.relu_(h - 0.1)
        out = self.head(h.flatten(2).mean(2))
        if self.spec["second_read"] == "always":
            out = out + x.flatten(1).mean(1, keepdim=True)
        elif self.spec["second_read"] == "guarded":
            if h.abs().max() > 1e6:  # never on these inputs: fx cannot trace it
                out = out + x.flatten(1).mean(1, keepdim=True)
        if self.spec["tuple"]:
            return out, h
        return out


def _draw(seed):
    rng = np.random.default_rng(seed)
    spec = {
        "ndim": int(rng.integers(1, 4)),
        "channels": int(rng.integers(2, 5)),
        "bn": bool(rng.integers(2)),
        "bn_train": bool(rng.random() < 0.15),
        "inplace": bool(rng.integers(2)),
        "pool": bool(rng.integers(2)),
        "shared": bool(rng.random() < 0.3),
        "relu_": bool(rng.random() < 0.3),
        "second_read": str(rng.choice(["no", "no", "always", "guarded"])),
        "tuple": bool(rng.random() < 0.25),
        "hook": str(rng.choice(["none"] * 5 + ["forward", "pre", "backward", "stem"])),
        "param": str(rng.choice(["none"] * 5 + ["parametrize", "weight_norm"])),
        "ties": bool(rng.integers(2)),
    }
    torch.manual_seed(seed)
    net = _Generated(spec).double()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    net.eval()
    if spec["bn_train"]:
        net.body[-2].train()
    if spec["hook"] == "forward":
        net.body[-1].register_forward_hook(lambda m, a, o: o * 1.25)
    elif spec["hook"] == "pre":
        net.head.register_forward_pre_hook(lambda m, a: (a[0] - 0.05,))
    elif spec["hook"] == "backward":
        net.body[-1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0.5,))
    elif spec["hook"] == "stem":
        net.stem.register_forward_hook(lambda m, a, o: o.tanh())
    if spec["param"] == "parametrize":
        parametrize.register_parametrization(net.stem, "weight", _Scale())
    elif spec["param"] == "weight_norm":
        net.body[-3] = nn.utils.parametrizations.weight_norm(net.body[-3])
    shape = (2,) + (_SIZE[spec["ndim"]],) * spec["ndim"]
    g = torch.Generator().manual_seed(seed)
    if spec["ties"]:  # integers: tied maxima in pooling windows
        X = torch.randint(-2, 3, (5, *shape), generator=g).double()
    else:
        X = torch.randn(5, *shape, generator=g, dtype=torch.float64)
    return net, X, spec


class _First(nn.Module):
    """captum wants one tensor out: the first of a tuple output."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _explainers():
    return {
        "ig": IntegratedGradients(n_steps=6),
        "ig_chunked": IntegratedGradients(n_steps=6, internal_batch_size=4),
        "smoothgrad": SmoothGrad(n_samples=4, stdevs=0.3, random_state=0),
        "smoothgrad_chunked": SmoothGrad(n_samples=4, stdevs=0.3, random_state=0,
                                         internal_batch_size=3),
        "gradient": Gradient(),
        "gradient_x_input": GradientXInput(),
    }


def _captum_references(net, X, target):
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import Saliency
    from sklearn.utils import check_random_state

    from sklearn_relevance.explainers._smoothgrad import _standard_noise

    wrapped = _First(net)
    refs = {"ig": CaptumIG(wrapped).attribute(X, target=target, n_steps=6),
            "gradient": Saliency(wrapped).attribute(X, target=target, abs=False)}
    seeds = check_random_state(0).randint(0, 2**31 - 1, size=4)
    total = torch.zeros_like(X)
    for j in range(4):
        (eps,) = _standard_noise([X], seeds[j], j)
        total += Saliency(wrapped).attribute(X + 0.3 * eps, target=target, abs=False)
    refs["smoothgrad"] = total / 4
    return refs


def _check(seed):
    net, X, spec = _draw(seed)
    target = torch.arange(len(X)) % 3
    before = X.clone()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    copies = {"inference_copy": inference_copy(net, X),
              "folded, channels-last": inference_copy(net, X, channels_last=True,
                                                      fold_batchnorms=True),
              "cached": cached_inference_copy(net, X),
              "module_for_explainer": module_for_explainer(net, X, IntegratedGradients())}
    # where no proof is possible the module runs as it is
    if spec["hook"] != "none" or spec["second_read"] == "guarded" or spec["bn_train"]:
        assert copies["inference_copy"] is net, spec
        assert copies["folded, channels-last"] is net, spec
    explainers = _explainers()
    wants = {name: e.explain(net, X, target) for name, e in explainers.items()}
    # nothing written into the caller's input or module
    assert torch.equal(X, before)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    refs = _captum_references(copy.deepcopy(net), X, target)
    for name, e in explainers.items():
        want = wants[name]
        for path, fast in copies.items():
            got = e.explain(fast, X, target)
            assert _rel(got, want) < 1e-10, (seed, spec, name, path)
        base = name.split("_chunked")[0]
        # a training-mode BatchNorm normalises over the pass's rows, which
        # captum chunks otherwise
        if base in refs and not spec["bn_train"]:
            # captum keeps its integration weights in float32
            tol = 1e-6 if base == "ig" else 1e-10
            assert _rel(e.explain(copies["cached"], X, target), refs[base]) < tol, (
                seed, spec, name)


@pytest.fixture(autouse=True)
def _copy_always(monkeypatch):
    monkeypatch.setattr(_inference, "INFERENCE_COPY_MIN_BYTES", 0)


@pytest.mark.parametrize("seed", range(16))
def test_generated_networks_explain_alike_through_the_copy(seed):
    _check(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16, 316))
def test_generated_networks_sweep(seed):
    _check(seed)


def test_the_generator_covers_what_it_promises():
    specs = [_draw(s)[2] for s in range(16)]
    for key, values in {"ndim": {1, 2, 3}, "hook": {"none", "forward", "pre", "backward",
                                                     "stem"},
                        "second_read": {"no", "always", "guarded"},
                        "param": {"none", "parametrize", "weight_norm"}}.items():
        assert {s[key] for s in specs} >= values, key
    for flag in ("bn", "bn_train", "inplace", "pool", "shared", "relu_", "tuple", "ties"):
        assert any(s[flag] for s in specs) and not all(s[flag] for s in specs), flag
    # and the copy is made for some of them (the proofs are not vacuous)
    made = sum(inference_copy(*_draw(s)[:2]) is not _draw(s)[0] for s in range(16))
    assert made > 0


def test_copies_are_not_shared_between_networks_that_differ():
    a, X, _ = _draw(0)
    b = copy.deepcopy(a)
    assert cached_inference_copy(a, X) is not cached_inference_copy(b, X) or (
        cached_inference_copy(a, X) is a)
