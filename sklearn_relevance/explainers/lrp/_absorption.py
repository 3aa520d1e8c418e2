"""Where an LRP explanation's relevance goes: the relevance budget per sample.

Relevance that does not reach the input is absorbed on the way, and LRP's
rules say where: by the biases and the epsilon stabilisers of ruled layers,
by constants that the network's code adds to its activations (a ViT's
position embeddings and class token, the in-projection biases of
``F.multi_head_attention_forward``), and, under AttnLRP, by the bias term of
the softmax rule (Achtibat et al. 2024, Proposition 3.1: the softmax is
linearised at its input ``x``, ``R_x = x * (R_s - s * sum(R_s))``, and its
relevance ``sum(R_s) - sum(R_x)`` is absorbed; it may exceed the explained
output and have either sign). :func:`relevance_budget` measures each share
separately, one sample at a time, so that

    output = relevance sum + layers + constants + softmax + residual

with a residual that is zero up to rounding when every operation on the
path has a rule (the tests check this on MONAI's ViT and on
``nn.TransformerEncoder``). A diagnostic, not a hot path: one LRP pass per
sample.

Relevance travels in gradient x activation form (see ``_relay``): the
relevance of a tensor ``t`` is ``t * dL/dt``; an operation's absorption is
its output's relevance minus its inputs'.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch.overrides import TorchFunctionMode

from ..._module_access import hook_acts, hook_owner
from ._conservation import ConservationWarning, LayerProbe, on_gradient
from ._functional import FunctionRules, _name

__all__ = ["AbsorptionProbe", "relevance_budget", "diagnose", "BUDGET_KEYS"]

#: The shares of :func:`relevance_budget`, in the order of its equation.
BUDGET_KEYS = ("output", "sum", "layers", "constants", "softmax", "residual")

#: Functional operations that are linear in their input-dependent operands:
#: whatever they absorb is the relevance of their constant operands.
_LINEAR = frozenset("""
add sub rsub cat concat concatenate stack linear conv1d conv2d conv3d
""".split())


class AbsorptionProbe(LayerProbe):
    """:class:`LayerProbe` (totals of one sample) plus functional operations.

    Leaf modules' relevance in and out is recorded per call as by
    :class:`LayerProbe`; outside leaf modules, softmax calls and the linear
    functional operations of ``_LINEAR`` record their absorption (relevance
    of the output minus that of their input-dependent operands, each operand
    through a view of its own so that only this operation's share counts).
    Run one sample at a time: every sum is over the whole tensor.
    """

    def __init__(self, module, owner_acts):
        super().__init__(module, owner_acts)
        # the root is no leaf here: its relevance in and out are the sum and
        # the output (a root without children: see ``shares``)
        self.leaves = {m for m, name in self.names.items()
                       if name and not list(m.children())}
        self.root_is_leaf = not list(module.children())
        self.root = module
        self.inside = 0  # leaf modules running now
        self.functions = {"constants": torch.zeros((), dtype=torch.float64),
                          "softmax": torch.zeros((), dtype=torch.float64)}

    @staticmethod
    def _sum(value, g):  # totals of one sample, infinite entries counting zero
        return _relevance(value, g)

    def _credit(self, key, sign, t):
        def add(value, g):
            self.functions[key] = self.functions[key] + sign * _relevance(value, g)
        on_gradient(t, add)

    def attach(self, stack, n=None, sources=None):
        if sources is None:
            raise ValueError("The AbsorptionProbe needs the explained input's leaves "
                             "('sources').")
        super().attach(stack, None)  # totals: no per-sample split
        for m in self.leaves | ({self.root} if self.root_is_leaf else set()):
            def enter(*_):
                if self.acts():
                    self.inside += 1

            def leave(*_):
                if self.acts() and self.inside:
                    self.inside -= 1

            self.handles.append(m.register_forward_pre_hook(enter))
            self.handles.append(m.register_forward_hook(leave, always_call=True))
        # entered before the LRP pass's FunctionRules, so this mode sees the
        # operations those rules hand on (attention decomposed into softmax)
        stack.enter_context(_FunctionProbe(self, FunctionRules(sources, lambda: "")))

    def shares(self, total, output):
        """``{"layers", "constants", "softmax"}``: absorbed relevance (float64)
        of a sample whose relevance sums to ``total`` for ``output``."""
        if self.root_is_leaf:  # one layer: it absorbed the whole difference
            return {"layers": torch.as_tensor(output - total, dtype=torch.float64),
                    "constants": self.functions["constants"],
                    "softmax": self.functions["softmax"]}
        layers = torch.zeros((), dtype=torch.float64)
        softmax = self.functions["softmax"]
        for m in self.leaves:
            name = self.names[m]
            if name not in self.record:
                continue
            r_in, r_out = self.record[name]
            if isinstance(m, torch.nn.Softmax):
                softmax = softmax + (r_out - r_in)
            else:
                layers = layers + (r_out - r_in)
        return {"layers": torch.as_tensor(layers, dtype=torch.float64),
                "constants": self.functions["constants"],
                "softmax": torch.as_tensor(softmax, dtype=torch.float64)}


def _relevance(t, g):
    """``sum(t * g)`` in float64; entries where ``t`` is infinite (masked
    attention scores, whose gradient is zero) count zero, as in lxt."""
    r = t.detach().double() * g.detach().double()
    return torch.where(torch.isfinite(t.detach()), r, 0.0).sum()


class _FunctionProbe(TorchFunctionMode):
    def __init__(self, probe, rules):
        super().__init__()
        self.probe = probe
        self.rules = rules  # only its ``depends``

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        probe = self.probe
        key = "softmax" if name in ("softmax", "_softmax") else (
            "constants" if name in _LINEAR else None)
        fname = getattr(func, "__name__", "")
        if (key is None or probe.inside or not probe.acts()
                or fname.endswith("_") and not fname.endswith("__")
                or fname.startswith("__i")):
            return func(*args, **kwargs)
        views = []

        def swap(obj):
            if torch.is_tensor(obj) and self.rules.depends(obj):
                v = obj.view_as(obj)
                views.append(v)
                return v
            if isinstance(obj, (list, tuple)):
                return type(obj)(swap(o) for o in obj)
            return obj

        args = swap(tuple(args))
        kwargs = {k: swap(v) for k, v in kwargs.items()}
        out = func(*args, **kwargs)
        if views and torch.is_tensor(out) and out.requires_grad:
            probe._credit(key, 1.0, out)
            for v in views:
                probe._credit(key, -1.0, v)
        return out


def relevance_budget(lrp, module, X, target):
    """Measure where each sample's relevance goes (see the module docstring).

    Parameters
    ----------
    lrp : LRP
        The explainer (its composite, epsilon and ``attention``).
    module : torch.nn.Module
        The explained network, in the mode it is explained in.
    X : Tensor of shape (n, ...)
    target : int or LongTensor of shape (n,)

    Returns
    -------
    dict of str to Tensor of shape (n,), float64
        ``BUDGET_KEYS``: the explained output, the relevance sum, what ruled
        leaf layers absorbed (biases, epsilon), what constants added in code
        absorbed (class token, position embeddings, functional biases), the
        softmax rule's bias term, and the residual ``output - sum - layers -
        constants - softmax`` (zero up to rounding where every operation has
        a rule).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, relevance_budget
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Linear(3, 2)).double()
    >>> b = relevance_budget(LRP(composite="epsilon"), net, torch.randn(5, 4).double(), 0)
    >>> closes = b["output"] - b["sum"] - b["layers"] - b["constants"] - b["softmax"]
    >>> bool(torch.allclose(closes, b["residual"])), float(b["residual"].abs().max()) < 1e-12
    (True, True)
    """
    if not torch.is_tensor(X) or X.ndim < 1:
        raise ValueError("The 'X' parameter of relevance_budget must be a tensor of "
                         f"shape (n, ...). Got {type(X).__name__} instead.")
    n = X.shape[0]
    if torch.is_tensor(target) and target.numel() != n:
        raise ValueError("The 'target' parameter of relevance_budget must be an int "
                         f"or a tensor of {n} targets. Got {target.numel()} instead.")
    rows = {key: [] for key in BUDGET_KEYS}
    owner = hook_owner(module)
    for i in range(n):
        probe = AbsorptionProbe(module, lambda: hook_acts(owner))
        t = target[i:i + 1] if torch.is_tensor(target) else target
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConservationWarning)
            R, scores = lrp._run(module, X[i:i + 1], t, create_graph=False,
                                 probe=probe)
        total = R.detach().double().sum()
        output = scores.double().reshape(())
        shares = probe.shares(total, output)
        rows["output"].append(output)
        rows["sum"].append(total)
        for key in ("layers", "constants", "softmax"):
            rows[key].append(shares[key])
        rows["residual"].append(output - total - sum(shares.values()))
    return {key: torch.stack(v) for key, v in rows.items()}



def diagnose(lrp, module, X, target, i):
    """``(worst, note)`` for the conservation message, from one LRP pass on
    sample ``i`` alone (whole-tensor sums: no axis is mistaken for the batch
    axis, as a ``(3, n, ...)`` query-key-value stack would be when ``n`` is
    3): the innermost layer creating relevance (see ``LayerProbe.worst``)
    and a sentence saying where the sample's relevance went."""
    t = target[i:i + 1] if torch.is_tensor(target) and target.ndim else target
    probe = AbsorptionProbe(module, lambda: hook_acts(hook_owner(module)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConservationWarning)
        R, scores = lrp._run(module, X[i:i + 1], t, create_graph=False, probe=probe)
    total, output = float(R.detach().double().sum()), float(scores.double().sum())
    shares = {k: float(v) for k, v in probe.shares(total, output).items()}
    residual = output - total - sum(shares.values())
    probe.record = {name: [torch.as_tensor(v, dtype=torch.float64).reshape(1)
                           for v in entry] for name, entry in probe.record.items()}
    worst = probe.worst([0])
    if not all(math.isfinite(v) for v in (total, residual)):
        return worst, ""
    parts = [f"biases and epsilon of ruled layers absorbed {shares['layers']:.4g}"]
    if shares["constants"]:
        parts.append("constants added in the network's code (class token, position "
                     f"embeddings, functional biases) {shares['constants']:.4g}")
    if shares["softmax"]:
        parts.append(f"the bias term of AttnLRP's softmax rule {shares['softmax']:.4g} "
                     "(attention='cp' conserves through attention)")
    parts.append(f"{residual:.4g} is not accounted for by any rule")
    return worst, f" Where sample {i}'s relevance went: " + "; ".join(parts) + "."
