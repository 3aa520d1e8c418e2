"""What the metrics that explain again share: the model, the target, the
explainer, seeded draws, and batched explanation and forward passes.

Robustness and randomisation metrics explain perturbed inputs or changed
networks; the faithfulness metrics of :mod:`.faithfulness` run the network
on perturbed inputs. Every pass here takes a chunk of rows bounded by a
memory budget of :data:`sklearn_relevance._batching.MEMORY_BUDGETS`
(``explain_pass_input`` for explanations, ``forward_pass_input`` for
forwards) or by ``internal_batch_size`` rows, never one sample at a time.
"""

from __future__ import annotations

import contextlib
import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

from .._batching import DEFAULT_MEMORY_BUDGET, MEMORY_BUDGETS, chunk_size_for, iter_slices, sample_nbytes
from .._inference import rows_per_sample
from .._module_access import module_access, shares_module
from .._nets import final_input, input_dtype, module_and_device
from .._targets import encode_labels
from .._tensors import forward
from .._validation import as_batch, check_int

__all__ = ["Model", "seed_of", "generator", "step_draws", "check_relevance"]


def seed_of(random_state):
    """An int seed from ``random_state`` (an int is kept as is, so that a
    seed means the same as quantus' ``seed``)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def generator(seed, device):
    """A torch generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed) % (2**63 - 1))


def step_draws(draw, seed, steps, device):
    """``torch.stack([draw(generator(seed, s)) for s in steps])``: the draws of
    step ``s`` depend on ``(seed, s)`` only, so results do not depend on how
    steps are chunked into passes."""
    return torch.stack([draw(generator((int(seed) * 1_000_003 + s) % (2**62), device))
                        for s in steps])


def check_relevance(relevance, X, owner, *, name="relevance"):
    """``relevance`` as a float tensor of X's shape (broadcast from one channel)."""
    rel = as_batch(relevance, name, device=X.device, dtype=torch.float32)
    if rel.shape == X.shape:
        return rel
    if (rel.shape[0] == X.shape[0] and rel.ndim == X.ndim
            and all(r in (1, x) for r, x in zip(rel.shape[1:], X.shape[1:]))):
        return rel.expand(X.shape).contiguous()
    if rel.shape[0] == X.shape[0] and rel.numel() == X.numel():
        return rel.reshape(X.shape)
    raise ValueError(
        f"The '{name}' parameter of {owner} must have X's shape {tuple(X.shape)} (or "
        f"one channel of it). Got shape {tuple(rel.shape)} instead."
    )


class Model:
    """The network, its device, X on it and the explained target of one call.

    Parameters
    ----------
    estimator : fitted estimator, Pipeline or torch.nn.Module
    X : array-like or Tensor
    owner : str
        The public function's name (for error messages).
    explainer : str, explainer object or None
        ``None``: the estimator's ``relevance_explainer`` with its
        ``relevance_explainer__*`` parameters, else ``"gradient"``.
    target, y
        ``target`` None means ``"true"`` with y and ``"predicted"``
        without; an int or one int per sample is an output index.
    internal_batch_size : int or None
        Rows per pass; ``None`` sizes passes by the memory budgets.
    """

    def __init__(self, estimator, X, owner, *, explainer=None, target=None, y=None,
                 internal_batch_size=None, need_explainer=True):
        self.owner = owner
        self.final, X = final_input(estimator, X)
        if isinstance(X, dict):
            raise ValueError(f"{owner} applies to array inputs, not dict (multimodal) X.")
        self.module, self.device = module_and_device(self.final)
        self.X = as_batch(X, "X", device=self.device, dtype=input_dtype(self.module))
        self.n = self.X.shape[0]
        if internal_batch_size is not None:
            internal_batch_size = check_int(internal_batch_size, "internal_batch_size", owner)
        self.rows = internal_batch_size
        self.explainer = None
        if need_explainer:
            from .._request import resolve_explainer

            defaults = None
            if explainer is None and getattr(self.final, "relevance_explainer", None):
                # the estimator's explainer as its explain() makes it: with its
                # relevance_explainer__* parameters (steps, baseline, noise...)
                explainer = self.final.relevance_explainer
                defaults = self.final.get_params_for("relevance_explainer")
            self.explainer = resolve_explainer(explainer or "gradient", defaults=defaults)
        self._target_arg, self._y = target, y
        self.target = None

    # ---- contexts ---------------------------------------------------------
    def access(self, module=None):
        """The module's lock (eval mode) for the explainer's passes."""
        module = self.module if module is None else module
        shared = True if self.explainer is None else shares_module(self.explainer)
        return module_access(module, shared=shared, eval_mode=True)

    def resolve_target(self, module=None):
        """Resolve the target once (inside :meth:`access`): LongTensor or None."""
        t, y, n = self._target_arg, self._y, self.n
        if t is None:
            t = "true" if y is not None else "predicted"
        if isinstance(t, str):
            if t not in ("true", "predicted"):
                raise ValueError(
                    f"The 'target' parameter of {self.owner} must be None, 'true', "
                    f"'predicted', an int or {n} ints. Got {t!r} instead.")
            if t == "true":
                if y is None:
                    raise ValueError(f"target='true' needs the true labels: pass y to {self.owner}.")
                idx = encode_labels(getattr(self.final, "classes_", None), y, n)
                self.target = torch.as_tensor(idx, device=self.device)
            else:
                out = self.forward(self.X, module)
                self.target = None if out.shape[1] == 1 else out.argmax(1)
            return self.target
        arr = np.asarray(t.detach().cpu() if torch.is_tensor(t) else t)
        if not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1 or (
                arr.ndim == 1 and arr.shape[0] != n):
            raise ValueError(
                f"The 'target' parameter of {self.owner} must be None, 'true', "
                f"'predicted', an int or {n} ints. Got {t!r} instead.")
        self.target = torch.as_tensor(np.broadcast_to(arr, (n,)).astype(np.int64),
                                      device=self.device)
        return self.target

    # ---- passes -------------------------------------------------------------
    def _budget(self, budget_name):
        if budget_name == "forward_pass_input":
            # forwards of perturbed copies: the perturbation curves' sizing
            # (small passes stay in cache on a CPU)
            from .._inference import cpu_pass_budget

            if self.device.type == "cpu":
                return cpu_pass_budget(self.module, MEMORY_BUDGETS["curve_pass_input_cpu"])
            return DEFAULT_MEMORY_BUDGET
        return MEMORY_BUDGETS[budget_name]

    def _chunk(self, Xrows, budget_name, multiplier=1):
        return chunk_size_for(sample_nbytes(Xrows[:1]), multiplier, batch_size=self.rows,
                              budget=self._budget(budget_name))

    def forward(self, Xrows, module=None):
        """Outputs (rows, k) of ``module`` on ``Xrows``, in budgeted chunks."""
        module = self.module if module is None else module
        chunk = self._chunk(Xrows, "forward_pass_input")
        outs = []
        with torch.no_grad():
            for sl in iter_slices(Xrows.shape[0], chunk):
                out = forward(module, Xrows[sl])
                if isinstance(out, tuple):
                    out = out[0]
                outs.append(out.reshape(sl.stop - sl.start, -1).float())
        return torch.cat(outs)

    def response(self, Xrows, target_rows, response="logit", module=None):
        """The target's logit (or softmax probability) per row of ``Xrows``."""
        out = self.forward(Xrows, module)
        if response == "proba":
            out = out.softmax(1)
        if target_rows is None:
            return out[:, 0]
        return out.gather(1, target_rows[:, None])[:, 0]

    def explain(self, Xrows, target_rows, module=None):
        """Relevance of ``Xrows`` for ``target_rows`` on ``module``, in chunks."""
        module = self.module if module is None else module
        chunk = self._chunk(Xrows, "explain_pass_input", rows_per_sample(self.explainer))
        parts = []
        for sl in iter_slices(Xrows.shape[0], chunk):
            t = None if target_rows is None else target_rows[sl]
            rel = self.explainer.explain(module, Xrows[sl], t)
            parts.append(rel.detach().float().reshape(Xrows[sl].shape)
                         if rel.numel() == Xrows[sl].numel()
                         else rel.detach().float().expand(Xrows[sl].shape))
        return torch.cat(parts)

    def step_chunks(self, n_steps, budget_name="explain_pass_input", rows_per_step=1):
        """Slices of steps such that steps x ``rows_per_step`` x samples rows
        fit one budgeted pass."""
        mult = rows_per_step * (rows_per_sample(self.explainer)
                                if budget_name == "explain_pass_input" else 1)
        rows = chunk_size_for(sample_nbytes(self.X[:1]), mult, batch_size=self.rows,
                              budget=self._budget(budget_name))
        return iter_slices(n_steps, max(rows // self.n, 1))


@contextlib.contextmanager
def forked_rng(device):
    """Restore torch's global RNG state (and the device's) on exit."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield
