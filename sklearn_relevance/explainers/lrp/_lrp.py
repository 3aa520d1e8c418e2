"""The LRP explainer: rules attached by forward hooks, relevance by autograd."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack

import torch

from ..._module_access import frozen_batchnorm_stats, hook_acts, hook_owner
from ..._tensors import flatten_inputs, forward, no_dependence_error, select_output
from ..._validation import check_real
from .._base import BaseExplainer
from ._conservation import (
    LayerProbe,
    conservation_message,
    layer_relevance,
    relevance_sums,
    report,
    violations,
)
from ._absorption import diagnose
from ._functional import FunctionRules
from ._session import _rng_states, _Session, _set_rng_states
from .canonizers import Canonizer, MergeBatchNorm
from .composites import Composite, composite_error, composite_from_dict, make_composite
from .rules import _check_bool

__all__ = ["LRP"]


class LRP(BaseExplainer):
    r"""Layer-wise relevance propagation, native and differentiable.

    Rules (:mod:`~sklearn_relevance.explainers.lrp.rules`) are attached to
    layers by a composite and implemented as modified gradients: each ruled
    layer's output is replaced in the forward pass by an identity whose
    backward distributes the layer's relevance as its rule prescribes, and
    relevance is read off as ``X * grad``. The whole batch runs in one
    forward and one backward pass on the module's device; hooks and
    canonizers are removed afterwards (also on error), parameters are
    never written and BatchNorms in training mode do not update their running
    statistics. With ``create_graph=True`` the relevance can be
    differentiated with respect to the module's parameters.

    The relevance of each sample sums to its explained output (the logit of
    ``target``) up to what biases, stabilisers and dead neurons absorb:
    exactly on bias-free ReLU networks with ``epsilon -> 0``, and with
    ``alpha1_beta0`` / ``epsilon_plus`` also with biases wherever neurons
    have positive contributions.

    Parameters
    ----------
    composite : str, dict or Composite, default="epsilon_plus"
        ``"epsilon"``, ``"alpha1_beta0"``, ``"epsilon_plus"`` (epsilon on
        dense layers, z+ on convolutions; the default, as recommended by
        Kohlbrenner et al. 2020 for CNNs), ``"epsilon_alpha2_beta1"``,
        ``"epsilon_gamma_box"``; a dict ``{module name or layer type: rule}``
        (layers not covered keep their plain gradient, i.e. LRP-0); or a
        :class:`Composite`.
    epsilon : float, default=1e-6
        Stabiliser of the epsilon rule in named composites and dicts.
    gamma : float, default=0.25
        Parameter of the gamma rule (``"epsilon_gamma_box"``).
    low, high : float, array-like or None, default=None
        Input bounds of the box rule (``"epsilon_gamma_box"``); None takes
        each sample's minimum / maximum.
    bias : bool, default=False
        Whether the z+ and alpha-beta rules of the named composites count
        the layers' biases. ``True`` equals zennit's rules and composites
        (``EpsilonPlus``, ``EpsilonAlpha2Beta1``); relevance is then
        conserved only up to what the biases absorb.
    generalized_gamma : bool, default=False
        Use the generalised gamma rule (zennit's ``Gamma``, which treats
        negative inputs and negative outputs separately) in
        ``"epsilon_gamma_box"``.
    canonizers : "auto", list of Canonizer or None, default="auto"
        ``"auto"`` merges BatchNorm into the preceding Linear / Conv layer
        of ``nn.Sequential`` containers (eval mode) with
        :class:`MergeBatchNorm`.
    conservation : {"warn", "raise", "off"}, default="warn"
        The conservation check (see Notes): warn or raise when a sample's
        relevance sum is not within ``conservation_rtol`` of its explained
        output, naming the innermost layer that created relevance. Relevance
        that is not finite always raises. Not run with ``create_graph=True``
        (training penalties).
    conservation_rtol : float, default=9.0
        Allowed relative difference between a sample's relevance sum and its
        explained output. The default flags only relevance created by a
        missing or wrong rule (sums beyond ten times the output, or of the
        other sign and beyond eight times it): biases, stabilisers and the
        beta terms of alpha-beta rules legitimately move the sum, on
        explained outputs near zero even past zero. Use e.g. ``0.05`` to
        audit a bias-free network or measure absorption.
    attention : {"attnlrp", "cp"}, default="attnlrp"
        Softmax attention: ``"attnlrp"`` (Achtibat et al. 2024) keeps the
        softmax's gradient and splits the products of two activations
        uniformly; the softmax rule's bias term absorbs relevance of either
        sign, possibly more than the output (see "Where the relevance of a
        transformer goes" in the LRP guide). ``"cp"`` (conservative
        propagation, Ali et al. 2022) treats the attention weights as
        constants, so relevance reaches the values only and is conserved
        through attention (not differentiated through the weights with
        ``create_graph=True``).

    Notes
    -----
    Operations written in ``forward`` code rather than as layers get rules
    too (see :mod:`~sklearn_relevance.explainers.lrp._functional`): products
    with a broadcast gate (squeeze-and-excitation, attention gates) treat the
    gate as a constant, products of two activations and attention's matrix
    products take AttnLRP's uniform rule, LayerNorm / GroupNorm /
    InstanceNorm treat the standard deviation as a constant, GELU / SiLU and
    other element-wise non-linearities the identity rule. An operation with
    no rule applied to the input's activations raises naming the layer.
    BatchNorm not merged into a preceding layer (pre-activation BatchNorm,
    as in DenseNet) takes the epsilon rule of its per-channel affine map
    (the identity rule in the z+ / alpha-beta composites with ``bias=False``,
    which ignore biases and so its shift).

    The conservation check costs one sum per sample; a failed check runs a
    second, diagnostic pass that measures each layer's relevance in and out
    (on the first failing sample alone when no layer is in training mode)
    and says where that sample's relevance went: biases and epsilon, constants
    added in the network's code, AttnLRP's softmax rule, or no rule at all.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import LRP
    >>> from sklearn_relevance.modules import ImageCNN
    >>> net = ImageCNN((1, 8, 8, 8), 2, channels=(4, 8)).eval()
    >>> X = torch.rand(3, 1, 8, 8, 8)
    >>> R = LRP(composite="alpha1_beta0").explain(net, X, target=1)
    >>> R.shape
    torch.Size([3, 1, 8, 8, 8])
    """

    @property
    def uses_layers(self):
        """False for the named composites, whose rules are chosen by layer
        type and which fold BatchNorm themselves; True for a composite object
        (see :class:`~sklearn_relevance.explainers.BaseExplainer`)."""
        return not isinstance(self.composite, str)

    @property
    def copy_options(self):
        """``{"fold_batchnorms": True}`` with the default canonizers, which
        merge every BatchNorm into the layer before it anyway (the copy then
        does it once); nothing otherwise."""
        return {"fold_batchnorms": True} if self.canonizers == "auto" else {}

    def __init__(self, composite="epsilon_plus", *, epsilon=1e-6, gamma=0.25,
                 low=None, high=None, bias=False, generalized_gamma=False,
                 canonizers="auto", conservation="warn", conservation_rtol=9.0,
                 attention="attnlrp"):
        self.composite = composite
        self.epsilon = epsilon
        self.gamma = gamma
        self.low = low
        self.high = high
        self.bias = bias
        self.generalized_gamma = generalized_gamma
        self.canonizers = canonizers
        self.conservation = conservation
        self.conservation_rtol = conservation_rtol
        self.attention = attention

    def _make_composite(self):
        check_real(self.epsilon, "epsilon", "LRP", low=0, closed="neither")
        check_real(self.gamma, "gamma", "LRP", low=0, closed="left")
        _check_bool("LRP", "bias", self.bias)
        _check_bool("LRP", "generalized_gamma", self.generalized_gamma)
        composite = self.composite
        if isinstance(composite, str):
            return make_composite(composite, epsilon=self.epsilon, gamma=self.gamma,
                                  low=self.low, high=self.high, bias=self.bias,
                                  generalized_gamma=self.generalized_gamma)
        if isinstance(composite, Mapping):
            return composite_from_dict(composite, epsilon=self.epsilon)
        if isinstance(composite, Composite):
            return composite
        raise composite_error(type(composite).__name__)

    def _make_canonizers(self):
        value = self.canonizers
        if value is None:
            return []
        if isinstance(value, str) and value == "auto":
            return [MergeBatchNorm()]
        if isinstance(value, (list, tuple)) and all(
            isinstance(c, Canonizer) for c in value
        ):
            return list(value)
        raise ValueError(
            "The 'canonizers' parameter of LRP must be 'auto', None or a list of "
            f"Canonizer objects. Got {value!r} instead."
        )

    def _explain(self, module, X, target, *, create_graph):
        action = self._check_conservation_params()
        relevance, scores = self._run(module, X, target, create_graph=create_graph)
        if create_graph:
            return relevance
        sums = relevance_sums(relevance)
        finite = torch.isfinite(sums)
        if action == "off" and bool(finite.all()):
            return relevance
        rtol = float(self.conservation_rtol)
        bad = violations(sums, scores, rtol)
        if not bad:
            return relevance
        note = ""
        if torch.is_tensor(X) and not any(m.training for m in module.modules()):
            # one sample alone: exact sums, and where its relevance went
            worst, note = diagnose(self, module, X, target, bad[0])
        else:  # batch statistics or several inputs: the whole batch
            probe = LayerProbe(module, lambda: hook_acts(hook_owner(module)))
            self._run(module, X, target, create_graph=False, probe=probe)
            worst = probe.worst(bad)
        message = conservation_message(bad, sums, scores, worst, rtol, module) + note
        if not bool(finite.all()):
            raise ValueError(message.replace("does not sum", "is not finite and "
                                             "does not sum"))
        if action != "off":
            report(action, message)
        return relevance

    def layer_relevance(self, module, X, target=None):
        """Relevance into and out of every layer, per sample: a conservation audit.

        Runs the explanation of ``explain(module, X, target)`` once on
        ``module`` as given and measures, for every submodule call, the
        relevance of its output (``out * dscore/dout``, what the layers
        above hand down) and of its inputs (what it hands on). A layer's
        ``out - in`` is what it absorbed (biases, epsilon, stabilisers); a
        layer whose ``in`` exceeds its ``out`` created relevance.

        Parameters
        ----------
        module, X, target
            As for :meth:`explain`.

        Returns
        -------
        dict of str to (Tensor, Tensor)
            For each submodule name (as in ``module.named_modules()``) whose
            input and output relevance were both seen: the per-sample
            float64 sums ``(relevance_in, relevance_out)``, each of shape
            ``(n,)`` (summed over the calls of a module called several times).

        Examples
        --------
        >>> import torch
        >>> from sklearn_relevance.explainers import LRP
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.ReLU(),
        ...                           torch.nn.Linear(3, 2, bias=False)).double()
        >>> X = torch.rand(5, 4, dtype=torch.float64)
        >>> sums = LRP(composite="epsilon", epsilon=1e-12).layer_relevance(net, X, target=0)
        >>> sorted(sums)
        ['0', '1', '2']
        >>> r_in, r_out = sums["2"]
        >>> torch.allclose(r_out, net(X)[:, 0]), torch.allclose(r_in, r_out)
        (True, True)
        """
        return layer_relevance(self, module, X, target)

    def _check_conservation_params(self):
        if self.conservation not in ("warn", "raise", "off"):
            raise ValueError(
                "The 'conservation' parameter of LRP must be 'warn', 'raise' or "
                f"'off'. Got {self.conservation!r} instead."
            )
        check_real(self.conservation_rtol, "conservation_rtol", "LRP", low=0,
                   closed="neither")
        if self.attention not in ("attnlrp", "cp"):
            raise ValueError(
                "The 'attention' parameter of LRP must be 'attnlrp' or 'cp'. Got "
                f"{self.attention!r} instead."
            )
        return self.conservation

    def _run(self, module, X, target, *, create_graph, probe=None):
        plan = self._make_composite().resolve(module)
        canonizers = self._make_canonizers()
        tensors, rebuild = flatten_inputs(X)
        sources = [
            t if t.requires_grad else t.detach().requires_grad_(True) for t in tensors
        ]
        with ExitStack() as stack:
            stack.enter_context(frozen_batchnorm_stats(module))
            handles = [stack.enter_context(c.apply(module)) for c in canonizers]
            session = _Session(plan, sources, handles, hook_owner(module))
            session.attach(module, stack)
            if probe is not None:
                probe.attach(stack, sources[0].shape[0], sources)
            with torch.enable_grad():
                if create_graph:
                    # first pass: shares on the ordinary graph (same dropout masks)
                    states = _rng_states({t.device for t in sources})
                    session.mode = "record"
                    forward(module, rebuild(sources))
                    _set_rng_states(states)
                    session.mode = "relay"
                with FunctionRules(sources, session.where, self.epsilon,
                                   plain=session.plain_here,
                                   attention=self.attention):
                    out = forward(module, rebuild(sources))
                scores = select_output(out, target)
                score = scores.sum()
                leaves = [leaf for _, leaf in session.leaves]
                if not score.requires_grad:
                    raise no_dependence_error(module)
                grads = torch.autograd.grad(
                    score, sources + leaves, create_graph=create_graph,
                    allow_unused=True,
                )
                if all(g is None for g in grads):
                    raise no_dependence_error(module)
        n = len(sources)
        relevance = [
            torch.zeros_like(t) if g is None else t * g
            for t, g in zip(tensors, grads[:n])
        ]
        for (k, leaf), g in zip(session.leaves, grads[n:]):
            if g is not None:
                relevance[k] = relevance[k] + (leaf.detach() * g).reshape(
                    tensors[k].shape
                )
        return rebuild(relevance), scores.detach()
