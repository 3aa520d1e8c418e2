"""One LRP explanation's state: the rules per layer, the input leaves of
input-layer rules, the canonizers' handles and the forward hooks that relay
relevance (see :mod:`._relay`); and the RNG states a recording pass restores."""

from __future__ import annotations

import torch

from ..._module_access import hook_acts
from ._functional import GATE_MODULES, mark_gate
from ._layers import LayerView
from ._relay import relay, shares

__all__ = ["_Session", "_rng_states", "_set_rng_states"]


class _Session:
    """Hooks of one explanation: rules per layer, input leaves, canonizers.

    In ``"record"`` mode (first pass of ``create_graph=True``) the hooks keep
    each ruled call's relevance shares computed on the ordinary forward graph
    and change nothing; in ``"relay"`` mode they replace ruled outputs by
    relays, using recorded shares when there are some (so the relevance is
    exactly differentiable), or shares of this pass, detached, otherwise.
    """

    def __init__(self, plan, sources, handles, owner):
        self.plan = plan
        self.sources = sources
        self.handles = handles
        self.leaves = []  # (source index, leaf)
        self.mode = "relay"
        self.records = {}
        self.owner = owner  # hooks act in this thread only (see hook_owner)
        self.calls = []  # names of the layers running now (for errors)

    def where(self):
        """The dotted name of the innermost layer running now."""
        return self.calls[-1][0] if self.calls else "(top level)"

    def plain_here(self):
        """Whether the composite keeps the plain gradient of the innermost
        layer running now (a ``{name: None}`` entry)."""
        return bool(self.calls) and self.plan.get(self.calls[-1][1]) == (None, None)

    def _source_of(self, x):
        for k, src in enumerate(self.sources):
            if x is src or (torch.is_tensor(x) and x._base is src):
                return k
        return None

    def input_leaf(self, x, fill):
        """A constant of ``x``'s shape whose relevance is added to ``X``'s."""
        k = self._source_of(x)
        src = self.sources[k].detach()
        if isinstance(fill, str):
            reduce = torch.amin if fill == "min" else torch.amax
            value = reduce(src, dim=tuple(range(1, src.ndim)), keepdim=True)
        else:
            value = torch.as_tensor(fill, dtype=src.dtype, device=src.device)
        value = torch.broadcast_to(value, src.shape).reshape(x.shape)
        if self.mode == "record":
            return value
        leaf = value.clone().requires_grad_(True)
        self.leaves.append((k, leaf))
        return leaf

    def _rule(self, name, module, inputs):
        rule, first = self.plan[module]
        is_input = any(self._source_of(x) is not None for x in inputs)
        if first is not None and is_input:
            rule = first
        if rule is not None and rule.input_layer_only and not is_input:
            raise ValueError(
                f"The {type(rule).__name__} rule applies only to layers that "
                f"receive the explained input X; layer {name!r} "
                f"({type(module).__name__}) does not."
            )
        return rule

    def hook(self, name):
        def _hook(module, inputs, output):
            if not hook_acts(self.owner):
                return None
            # rules compute on the ordinary graph, outside the functional rules
            with torch._C.DisableTorchFunction():
                out = _rule_output(module, inputs, output)
            if isinstance(module, GATE_MODULES):  # a sigmoid's output is a gate
                mark_gate(output if out is None else out)
            return out

        def _rule_output(module, inputs, output):
            if any(h.absorbs(module) for h in self.handles):
                return None
            rule = self._rule(name, module, inputs)
            if rule is None:
                return None
            params = next(
                (p for h in self.handles if (p := h.params(module)) is not None), None
            )
            layer = LayerView(module, inputs, output, params)
            if rule.needs_weight and layer.weight is None:
                raise ValueError(
                    f"The {type(rule).__name__} rule needs a layer with weights; "
                    f"layer {name!r} is a {type(module).__name__}."
                )
            terms = rule.terms(layer, self)
            if terms is None:
                return None
            queue = self.records.setdefault(module, [])
            if self.mode == "record":
                queue.append(shares(output, terms))
                return None
            if queue:
                cs = queue.pop(0)
            else:
                cs = shares(output.detach(), [(c, z.detach(), e) for c, z, e in terms])
            return relay(output, cs, [z for _, z, _ in terms])

        return _hook

    def attach(self, module, stack):
        names = {sub: name for name, sub in module.named_modules()}
        for sub in self.plan:
            handle = sub.register_forward_hook(self.hook(names[sub]))
            stack.callback(handle.remove)
        for sub, name in names.items():
            def enter(mod, __, name=name):
                if hook_acts(self.owner):
                    self.calls.append((name, mod))

            def leave(_, __, ___):
                if hook_acts(self.owner) and self.calls:
                    self.calls.pop()

            for handle in (sub.register_forward_pre_hook(enter),
                           sub.register_forward_hook(leave, always_call=True)):
                stack.callback(handle.remove)


def _rng_states(devices):
    states = [("cpu", torch.get_rng_state())]
    for device in devices:
        if device.type == "cuda":
            states.append((device, torch.cuda.get_rng_state(device)))
    return states


def _set_rng_states(states):
    for device, state in states:
        if device == "cpu":
            torch.set_rng_state(state)
        else:
            torch.cuda.set_rng_state(state, device)
