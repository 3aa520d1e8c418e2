"""The conservation check of LRP: relevance sums against the explained output.

LRP promises that each sample's relevance sums to the explained output up to
what biases and stabilisers absorb. Absorption only moves the sum towards
zero, so a sum of the other sign or more than ``1 + rtol`` times the output
is no absorption: a rule is missing or wrong for some layer. The check costs
one reduction per sample; when it fails, a second pass measures every
layer's relevance in and out (``x * grad`` of its inputs and outputs) and
names the innermost layer where relevance was created.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["ConservationWarning", "relevance_sums", "violations", "LayerProbe",
           "conservation_message", "layer_relevance", "on_gradient"]


class ConservationWarning(UserWarning):
    """LRP relevance does not sum to the explained output (see ``LRP``)."""


def relevance_sums(relevance):
    """Per-sample sums of a tensor or a dict / tuple of tensors (float64)."""
    parts = relevance.values() if isinstance(relevance, dict) else (
        relevance if isinstance(relevance, (list, tuple)) else [relevance])
    total = None
    for r in parts:
        s = r.detach().reshape(r.shape[0], -1).double().sum(1)
        total = s if total is None else total + s
    return total


def violations(sums, outputs, rtol, atol=1e-6):
    """Indices of samples whose sum is not within ``rtol`` of the output."""
    outputs = outputs.detach().double().reshape(-1)
    bad = (sums - outputs).abs() > rtol * outputs.abs() + atol
    return torch.nonzero(bad).reshape(-1).tolist()


def on_gradient(t, add):
    """Call ``add(value, g)`` with ``t``'s values as they are now and the
    gradient ``g`` that reaches ``t`` (if any): the forward may change ``t``
    in place later (MONAI's ``out += residual``), while the hook gets the
    gradient of this version."""
    value = t.detach().clone()

    def grad_hook(g):
        if g is not None:
            add(value, g)
    t.register_hook(grad_hook)


class LayerProbe:
    """Hooks measuring each layer call's relevance in and out, per sample.

    The relevance of a tensor ``t`` is ``t * dL/dt`` (relevance travels in
    gradient x activation form). Each module input is replaced by a view of
    itself, so its gradient is the module's own share even when the tensor
    also feeds a residual branch.
    """

    def __init__(self, module, owner_acts):
        self.names = {m: n for n, m in module.named_modules()}
        self.acts = owner_acts
        self.record = {}  # name -> [in, out] per-sample float64 sums
        self.handles = []
        self.n = None  # samples; tensors of another leading size are skipped

    @staticmethod
    def _sum(value, g):
        """The relevance ``value * g`` of one record, per sample (float64)."""
        return (value * g.detach()).reshape(value.shape[0], -1).double().sum(1)

    def _add(self, name, slot, t):
        if self.n is not None and t.shape[0] != self.n:
            return

        def add(value, g):
            entry = self.record.setdefault(name, [0.0, 0.0])
            entry[slot] = entry[slot] + self._sum(value, g)
        on_gradient(t, add)

    def attach(self, stack, n=None, sources=None):
        """Hook every named submodule (removed when ``stack`` closes); ``n``:
        the number of samples; ``sources``: the explained input's leaves
        (unused here, for probes that follow functional operations)."""
        self.n = n
        for m, name in self.names.items():
            if not name:
                continue

            def pre(mod, args, name=name):
                if not self.acts():
                    return None
                new = tuple(
                    a.view_as(a) if torch.is_tensor(a) and a.requires_grad else a
                    for a in args
                )
                for a in new:
                    if torch.is_tensor(a) and a.requires_grad and a.ndim:
                        self._add(name, 0, a)
                return new

            def post(mod, args, out, name=name):
                if self.acts() and torch.is_tensor(out) and out.requires_grad and out.ndim:
                    self._add(name, 1, out)

            self.handles.append(m.register_forward_pre_hook(pre))
            self.handles.append(m.register_forward_hook(post))
        stack.callback(self.remove)

    def remove(self):
        while self.handles:
            self.handles.pop().remove()

    def worst(self, samples, atol=1e-6):
        """The innermost layer creating relevance, as ``(name, r_in, r_out)``:
        among layers whose relevance in exceeds half again their relevance
        out (or is not finite), the innermost with the largest excess."""
        bad = []
        for name, (r_in, r_out) in self.record.items():
            if not torch.is_tensor(r_in) or not torch.is_tensor(r_out):
                continue
            r_in, r_out = r_in[samples], r_out[samples]
            excess = ((r_in - r_out).abs() - 0.5 * r_out.abs()) / (r_out.abs() + atol)
            excess = torch.where(torch.isfinite(r_in), excess, torch.inf)
            k = int(torch.argmax(excess))
            if excess[k] > 0:
                bad.append((float(excess[k]), name, float(r_in[k]), float(r_out[k])))
        if not bad:
            return None
        names = [b[1] for b in bad]
        inner = [b for b in bad if not any(n.startswith(b[1] + ".") for n in names)]
        return max(inner)[1:]


def conservation_message(samples, sums, outputs, worst, rtol, module):
    """The error / warning text for failed conservation."""
    i = samples[0]
    where = (
        f" The innermost layer creating relevance is {worst[0]!r} "
        f"({type(dict(module.named_modules())[worst[0]]).__name__}): relevance "
        f"{worst[1]:.4g} in for {worst[2]:.4g} out."
        if worst else ""
    )
    return (
        f"LRP relevance does not sum to the explained output for {len(samples)} "
        f"sample(s) (sample {i}: relevance sum {float(sums[i]):.6g}, output "
        f"{float(outputs.reshape(-1)[i]):.6g}; allowed: within conservation_rtol="
        f"{rtol} of the output).{where} Give that layer a rule in the composite, "
        "or set conservation='off' to accept it."
    )


def report(action, message):
    """Raise or warn ``message`` as ``action`` says."""
    if action == "raise":
        raise ValueError(message)
    warnings.warn(message, ConservationWarning, stacklevel=4)


def layer_relevance(lrp, module, X, target):
    """What :meth:`LRP.layer_relevance` returns (see there): ``lrp``'s
    explanation of ``module`` (as given, no inference copy) with a
    :class:`LayerProbe` attached, after the checks ``explain`` makes."""
    from ..._batching import batch_len
    from ..._module_access import hook_acts, hook_owner, module_access, shares_module
    from ..._module_calls import check_not_empty
    from ..._targets import check_target
    from ..._tensors import check_module_input, module_errors

    lrp._validate_params()
    lrp._check_conservation_params()
    check_not_empty(X)
    lrp._check_explain(X)
    check_module_input(module, X)
    target = check_target(target, batch_len(X))
    probe = LayerProbe(module, lambda: hook_acts(hook_owner(module)))
    with module_access(module, shared=shares_module(lrp)), module_errors(X):
        lrp._run(module, X, target, create_graph=False, probe=probe)
    return {name: (r_in, r_out) for name, (r_in, r_out) in probe.record.items()
            if torch.is_tensor(r_in) and torch.is_tensor(r_out)}
