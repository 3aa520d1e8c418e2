"""Composites: which rule each layer of a network gets.

A :class:`Composite` maps layer types (and, optionally, module names) to
rules, plus an optional rule for the layers that receive the explained input.
Named composites (:func:`make_composite`) follow the LRP literature:

======================== ============== ================== ================
name                     Linear         Conv1d/2d/3d       input layer
======================== ============== ================== ================
``epsilon``              Epsilon        Epsilon            (same)
``alpha1_beta0``         AlphaBeta(1,0) AlphaBeta(1,0)     (same)
``epsilon_plus``         Epsilon        ZPlus              (same)
``epsilon_alpha2_beta1`` Epsilon        AlphaBeta(2,1)     (same)
``epsilon_gamma_box``    Epsilon        Gamma              ZBox(low, high)
======================== ============== ================== ================

``make_composite(..., bias=True)`` makes the z+ and alpha-beta rules count
biases, and ``generalized_gamma=True`` uses the generalised gamma rule: with
both, the named composites equal zennit's ``EpsilonPlus``,
``EpsilonAlpha2Beta1`` and ``EpsilonGammaBox`` (same epsilon and
stabilisers). The defaults keep the rules as first published here.

Every composite also gets the structural rules: BatchNorm that is not
merged by a canonizer -> Epsilon (its per-channel affine map; Pass, which
ignores its shift, in the z+ / alpha-beta composites with ``bias=False``),
average pooling and element-wise sums
(any module class that declares ``lrp_role = "sum"``, such as the residual
``Add`` of :mod:`sklearn_relevance.modules.spectrum`) -> Norm (proportional
split), element-wise activations that are not
positively homogeneous (tanh, sigmoid, GELU, ...) -> Pass. ReLU, dropout,
flatten and max pooling keep their gradient, which already passes relevance
through (winner takes all for max pooling).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ._layers import CONV, DENSE, WEIGHTED
from .rules import AlphaBeta, Epsilon, Gamma, Norm, Pass, Rule, ZBox, ZPlus

__all__ = ["Composite", "make_composite", "COMPOSITES"]

#: Names accepted by :func:`make_composite` and ``LRP(composite=...)``.
COMPOSITES = (
    "epsilon",
    "alpha1_beta0",
    "epsilon_plus",
    "epsilon_alpha2_beta1",
    "epsilon_gamma_box",
)

POOLING = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
)
ACTIVATIONS = (
    nn.Tanh, nn.Sigmoid, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Softplus, nn.Softsign, nn.Hardtanh, nn.ReLU6, nn.Hardswish,
    nn.Hardsigmoid, nn.LogSigmoid, nn.Tanhshrink,
)


class _RoleMeta(type):
    """``isinstance(m, cls)`` holds for modules whose class declares ``cls.role``."""

    def __instancecheck__(cls, obj):
        declared = getattr(type(obj), "lrp_role", None) == cls.role
        return declared or super().__instancecheck__(obj)


class SumLayer(nn.Module, metaclass=_RoleMeta):
    """Layer type that matches every module adding its inputs element-wise.

    A module class declares itself a sum with the class attribute
    ``lrp_role = "sum"`` (no import of this package needed); composites then
    give it the Norm rule, which splits relevance among the summands in
    proportion to their contributions (residual connections). Use
    ``SumLayer`` as a key of a composite's ``layer_map`` to give such
    modules another rule.
    """

    role = "sum"


def _structural(epsilon, batchnorm=None):
    return [
        # pre-activation BatchNorm (no layer to merge into): the epsilon rule
        # of its affine map, so the shift absorbs its share; the identity rule
        # would make an epsilon layer below divide gamma * z + beta's relevance
        # by z (DenseNet121 with trained statistics: sums 1e3-1e4x the logit).
        # Composites whose z+ / alpha-beta rules ignore biases ignore the
        # shift too: the identity rule (see make_composite)
        (nn.modules.batchnorm._BatchNorm, batchnorm or Epsilon(epsilon)),
        (POOLING, Norm()),
        (SumLayer, Norm()),
        (ACTIVATIONS, Pass()),
    ]


def _check_rule(rule, where):
    if rule is not None and not isinstance(rule, Rule):
        raise ValueError(
            f"The rule for {where} must be an LRP Rule (e.g. Epsilon(), ZPlus()) "
            f"or None. Got {type(rule).__name__} instead."
        )
    if rule is not None:
        rule._validate()


class Composite:
    """Rules mapped onto layers.

    Parameters
    ----------
    layer_map : list of (type or tuple of types, Rule) or dict, default=None
        Rules per layer type, first match wins (``isinstance``).
    first : Rule or None, default=None
        Rule for Linear / Conv layers that receive the explained input
        (or a view of it), e.g. :class:`ZBox`.
    names : dict of {str: Rule or None}, default=None
        Rules per module name (as in ``module.named_modules()``); they win
        over ``layer_map`` and ``first``. ``None`` keeps a layer's plain
        gradient (LRP-0 for linear layers).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import Composite, Epsilon, LRP, ZPlus
    >>> composite = Composite([(torch.nn.Linear, Epsilon(1e-3))],
    ...                       names={"0": ZPlus()})
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Linear(3, 2))
    >>> LRP(composite=composite).explain(net, torch.randn(5, 4), target=0).shape
    torch.Size([5, 4])
    """

    def __init__(self, layer_map=None, *, first=None, names=None):
        self.layer_map = layer_map
        self.first = first
        self.names = names

    def __repr__(self):
        return (
            f"Composite(layer_map={self.layer_map!r}, first={self.first!r}, "
            f"names={self.names!r})"
        )

    def _entries(self):
        entries = self.layer_map or []
        if isinstance(entries, Mapping):
            entries = list(entries.items())
        out = []
        for types, rule in entries:
            group = types if isinstance(types, tuple) else (types,)
            if not group or not all(
                isinstance(t, type) and issubclass(t, nn.Module) for t in group
            ):
                raise ValueError(
                    "The layer_map of a Composite must map nn.Module subclasses (or "
                    f"tuples of them) to rules. Got key {types!r} instead."
                )
            _check_rule(rule, f"layers of type {types!r}")
            out.append((group, rule))
        return out

    def resolve(self, module):
        """Validate against ``module`` and return ``{submodule: (rule, first)}``.

        Raises
        ------
        ValueError
            For a rule that is not a :class:`Rule`, invalid rule parameters, or
            a name that is no submodule of ``module``.
        """
        entries = self._entries()
        _check_rule(self.first, "the input layer")
        names = dict(self.names or {})
        known = dict(module.named_modules())
        missing = sorted(set(names) - set(known))
        if missing:
            raise ValueError(
                f"The composite names layers {missing} that are not submodules of "
                f"{type(module).__name__}. Known names include {sorted(known)[:10]}."
            )
        for name, rule in names.items():
            _check_rule(rule, f"layer {name!r}")
        plan = {}
        for name, sub in known.items():
            if name in names:
                plan[sub] = (names[name], None)
                continue
            rule = next((r for types, r in entries if isinstance(sub, types)), None)
            first = self.first if isinstance(sub, WEIGHTED) else None
            if rule is not None or first is not None:
                plan[sub] = (rule, first)
        return plan


def composite_error(got):
    """The ValueError for a ``composite`` that is none of the accepted kinds."""
    return ValueError(
        f"The 'composite' parameter of LRP must be one of {list(COMPOSITES)}, a dict "
        f"{{layer name or type: rule}} or a Composite. Got {got} instead."
    )


def make_composite(name, *, epsilon=1e-6, gamma=0.25, low=None, high=None,
                   bias=False, generalized_gamma=False):
    """A named composite (see the table in the module docstring).

    Parameters
    ----------
    name : {"epsilon", "alpha1_beta0", "epsilon_plus", "epsilon_alpha2_beta1", \
"epsilon_gamma_box"}
    epsilon : float, default=1e-6
        Stabiliser of the epsilon rule (dense layers, unmerged BatchNorm).
    gamma : float, default=0.25
        Parameter of the gamma rule (``epsilon_gamma_box``).
    low, high : float, array-like or None, default=None
        Input bounds of the box rule (``epsilon_gamma_box``); None takes each
        sample's minimum / maximum.
    bias : bool, default=False
        Whether the z+ and alpha-beta rules count the layers' biases
        (``True`` is zennit's default; see :class:`~.rules.ZPlus`).
    generalized_gamma : bool, default=False
        Use the generalised gamma rule (zennit's; see :class:`~.rules.Gamma`).

    Returns
    -------
    Composite

    Examples
    --------
    >>> from sklearn_relevance.explainers.lrp import make_composite
    >>> make_composite("epsilon_gamma_box", low=-1.0, high=1.0).first
    ZBox(high=1.0, low=-1.0)
    """
    if name not in COMPOSITES:
        raise composite_error(repr(name))
    eps = Epsilon(epsilon)
    dense, conv, first = {
        "epsilon": (eps, eps, None),
        "alpha1_beta0": (AlphaBeta(1.0, 0.0, bias=bias),
                         AlphaBeta(1.0, 0.0, bias=bias), None),
        "epsilon_plus": (eps, ZPlus(bias=bias), None),
        "epsilon_alpha2_beta1": (eps, AlphaBeta(2.0, 1.0, bias=bias), None),
        "epsilon_gamma_box": (eps, Gamma(gamma, generalized=generalized_gamma),
                              ZBox(low, high)),
    }[name]
    # an unmerged BatchNorm's shift is a bias: ignored where the rules ignore biases
    ignores_bias = name in ("alpha1_beta0", "epsilon_plus", "epsilon_alpha2_beta1") and not bias
    return Composite([(DENSE, dense), (CONV, conv),
                      *_structural(epsilon, Pass() if ignores_bias else eps)], first=first)


def composite_from_dict(rules, *, epsilon=1e-6):
    """A composite from ``{layer name or type: rule}`` plus structural rules."""
    names, types = {}, []
    for key, rule in rules.items():
        if isinstance(key, str):
            names[key] = rule
        else:
            types.append((key, rule))
    return Composite([*types, *_structural(epsilon)], names=names)
