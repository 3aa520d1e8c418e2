"""One random stream per fit: a torch generator of its own for every ``fit``.

torch draws weight initialisation, dropout masks and the data loader's
shuffling from one process-wide generator. Two fits running in two threads
(``GridSearchCV`` with the threading backend, a user's thread pool) then
take numbers from each other's stream, and the same ``random_state`` gives
different networks. A fit therefore draws from a generator of its own:

- :class:`FitRandomness` is a :class:`~torch.overrides.TorchFunctionMode`
  entered by the fit's thread only (torch keeps the mode stack per thread).
  Every torch call of that thread that draws random numbers and takes a
  ``generator`` (``torch.rand*``, ``Tensor.uniform_`` / ``normal_`` /
  ``bernoulli_`` / ``random_``, the ``torch.nn.init`` functions, ...) gets
  the fit's generator when none is given. ``F.dropout`` (``nn.Dropout``)
  takes no generator: it is computed here from a Bernoulli mask drawn
  from the fit's generator (the same distribution). The few random
  functions left (feature and alpha dropout, RReLU, Gumbel softmax,
  fractional max pooling) run under a process-wide lock on torch's global
  generator, seeded from the fit's generator for each call, so fits never
  share draws.
- The mode costs a Python call per torch call. Inside a training or
  validation step it is left out when nothing there can draw random
  numbers: a network made only of layer types listed in
  :data:`_DETERMINISTIC_LAYERS` (exact types, no hooks), the estimators'
  own step, a built-in loss and a deterministic penalty explainer
  (:func:`step_needs_mode`); the optimizer's step likewise for torch's own
  optimizers (exact types). Anything else keeps the mode: exactness first.

A penalty explainer without a seed (SmoothGrad with ``random_state=None``
would draw from numpy's global stream) gets a ``RandomState`` seeded from
the fit's generator (:meth:`FitRandomness.seed_explainer`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import zlib

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["FitRandomness", "deterministic_optimizer", "fit_seed", "inside", "outside",
           "step_needs_mode"]

#: process-wide lock for the random functions that only draw from torch's
#: global generator (seeded from the fit's generator under it)
_GLOBAL_STREAM = threading.RLock()


def fit_seed(random_state):
    """The seed of a fit's generator: from ``random_state``, or, for
    ``None``, from the state of torch's global CPU generator, read without
    advancing it (as the forked global stream fits used before: unseeded
    fits follow ``torch.manual_seed`` and leave the global stream alone)."""
    from sklearn.utils import check_random_state

    if random_state is None:
        probe = torch.Generator()
        probe.set_state(torch.get_rng_state())
        return int(torch.randint(2**62, (1,), generator=probe).item())
    return int(check_random_state(random_state).randint(2**31 - 1))


# ------------------------------------------------------------- the actions
_GENERATOR_TAKERS = (
    torch.rand, torch.randn, torch.randint, torch.randperm, torch.rand_like,
    torch.randn_like, torch.randint_like, torch.bernoulli, torch.normal, torch.poisson,
    torch.multinomial, torch.binomial, torch._standard_gamma,
    torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.bernoulli_,
    torch.Tensor.bernoulli, torch.Tensor.random_, torch.Tensor.exponential_,
    torch.Tensor.geometric_, torch.Tensor.cauchy_, torch.Tensor.log_normal_,
    torch.Tensor.multinomial,
)
_PLAIN_DROPOUT = (F.dropout, torch.dropout, torch.dropout_)
_GLOBAL_ONLY = tuple(f for f in (
    F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
    torch.alpha_dropout, torch.alpha_dropout_, torch.feature_dropout,
    torch.feature_dropout_, torch.feature_alpha_dropout, torch.feature_alpha_dropout_,
    F.rrelu, F.rrelu_, torch.rrelu, torch.rrelu_, F.gumbel_softmax,
    F.fractional_max_pool2d, F.fractional_max_pool3d,
    getattr(F, "fractional_max_pool2d_with_indices", None),
    getattr(F, "fractional_max_pool3d_with_indices", None),
) if f is not None)

_ACTIONS = {}
_ACTIONS_LOCK = threading.Lock()


_SIGNATURES = {}


def _signature(func):
    try:
        return _SIGNATURES[func]
    except (KeyError, TypeError):
        pass
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        sig = None
    try:
        _SIGNATURES[func] = sig
    except TypeError:  # unhashable
        pass
    return sig


def _action(func):
    """What the mode does with ``func``: "generator", "dropout", "global" or None."""
    try:
        return _ACTIONS[func]
    except KeyError:
        pass
    except TypeError:  # unhashable callable
        return None
    if any(func is f for f in _PLAIN_DROPOUT):
        action = "dropout"
    elif any(func is f for f in _GLOBAL_ONLY):
        action = "global"
    elif any(func is f for f in _GENERATOR_TAKERS):
        action = "generator"
    else:
        sig = _signature(func)
        action = "generator" if sig is not None and "generator" in sig.parameters else None
    with _ACTIONS_LOCK:
        _ACTIONS[func] = action
    return action


def _device_of(args, kwargs):
    device = kwargs.get("device")
    if device is not None:
        return torch.device(device)
    for a in args:
        if torch.is_tensor(a):
            return a.device
    return torch.get_default_device()


class FitRandomness(TorchFunctionMode):
    """Route the random draws of torch calls in this thread to a fit's generators.

    Parameters
    ----------
    seed : int
        Seeds the CPU generator; a generator of another device is seeded
        from ``seed`` and the device.
    """

    def __init__(self, seed):
        super().__init__()
        self.seed = int(seed)
        self._generators = {}

    # ------------------------------------------------------------- state
    def generator(self, device):
        """The fit's generator for ``device`` (made on first use)."""
        device = torch.device(device)
        key = (device.type, device.index)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            # str hashes vary between processes: a fixed checksum of the device
            salt = zlib.crc32(f"{device.type}:{device.index}".encode())
            gen.manual_seed(self.seed if device.type == "cpu"
                            else (self.seed * 1_000_003 + salt) % 2**63)
            self._generators[key] = gen
        return gen

    def state(self):
        """Picklable generator states, to continue the stream (``partial_fit``)."""
        return {"seed": self.seed,
                "states": {k: g.get_state() for k, g in self._generators.items()}}

    @classmethod
    def from_state(cls, state):
        """A mode continuing the stream saved by :meth:`state`."""
        mode = cls(state["seed"])
        for (kind, index), value in state["states"].items():
            mode.generator(torch.device(kind, index) if index is not None
                           else torch.device(kind)).set_state(value)
        return mode

    def draw_seed(self):
        """A seed drawn from the fit's CPU generator (for numpy-seeded parts)."""
        return int(torch.randint(2**31 - 1, (1,), generator=self.generator("cpu")).item())

    def seed_explainer(self, explainer):
        """Give an explainer without a seed (``random_state=None``, e.g.
        SmoothGrad's noise in a penalty) a stream drawn from the fit's."""
        get = getattr(explainer, "get_params", None)
        if get is None:
            return
        if "random_state" in get(deep=False) and get(deep=False)["random_state"] is None:
            explainer.set_params(random_state=np.random.RandomState(self.draw_seed()))

    # ---------------------------------------------------------- dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        action = _action(func)
        if action is None:
            return func(*args, **kwargs)
        if action == "generator":
            return self._with_generator(func, args, kwargs)
        if action == "dropout":
            return self._dropout(func, args, kwargs)
        return self._on_global_stream(func, args, kwargs)

    def _with_generator(self, func, args, kwargs):
        if kwargs.get("generator") is None:
            sig = _signature(func)
            if sig is not None:
                try:
                    bound = sig.bind(*args, **kwargs)
                except TypeError:
                    return func(*args, **kwargs)  # torch words the error
                if bound.arguments.get("generator") is not None:
                    return func(*args, **kwargs)
            kwargs = {**kwargs, "generator": self.generator(_device_of(args, kwargs))}
        return func(*args, **kwargs)

    def _dropout(self, func, args, kwargs):
        if func is F.dropout:
            sig = _signature(func).bind(*args, **kwargs)
            sig.apply_defaults()
            x, p, training, inplace = (sig.arguments[k] for k in
                                       ("input", "p", "training", "inplace"))
        else:  # torch.dropout(input, p, train), torch.dropout_
            names = ("input", "p", "train")
            given = dict(zip(names, args), **kwargs)
            x, p, training = given["input"], given["p"], given["train"]
            inplace = func is torch.dropout_
        if not training or not 0 < p < 1 or not torch.is_floating_point(x):
            return func(*args, **kwargs)  # no draw (identity, zeros) or torch's error
        keep = torch.empty_like(x).bernoulli_(1 - p, generator=self.generator(x.device))
        keep.div_(1 - p)
        return x.mul_(keep) if inplace else x * keep

    def _on_global_stream(self, func, args, kwargs):
        device = _device_of(args, kwargs)
        seed = int(torch.randint(2**62, (1,), generator=self.generator("cpu")).item())
        devices = [device] if device.type == "cuda" else []
        with _GLOBAL_STREAM, torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return func(*args, **kwargs)


@contextlib.contextmanager
def inside(mode):
    """Enter ``mode`` unless it is already the innermost mode."""
    from torch.overrides import _get_current_function_mode

    if mode is None or _get_current_function_mode() is mode:
        yield
        return
    with mode:
        yield


@contextlib.contextmanager
def outside(mode):
    """Leave ``mode`` for the duration when it is the innermost mode (else no-op)."""
    from torch.overrides import _get_current_function_mode, _pop_mode_temporarily

    if mode is None or _get_current_function_mode() is not mode:
        yield
        return
    with _pop_mode_temporarily():
        yield


# --------------------------------------------------- steps without draws
_DETERMINISTIC_LAYERS = {
    nn.Linear, nn.Bilinear, nn.Identity, nn.Flatten, nn.Unflatten, nn.Sequential,
    nn.ModuleList, nn.ModuleDict,
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softmax, nn.LogSoftmax, nn.PReLU,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.Upsample, nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d,
    nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
}
#: optimizers whose ``step`` draws nothing (exact types)
_DETERMINISTIC_OPTIMIZERS = {
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad,
    torch.optim.Adadelta, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam,
    torch.optim.RMSprop, torch.optim.Rprop,
}
_DETERMINISTIC_LOSSES = {
    nn.CrossEntropyLoss, nn.NLLLoss, nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss,
    nn.HuberLoss, nn.BCEWithLogitsLoss, nn.BCELoss,
}


@functools.lru_cache(maxsize=None)
def _library_layers():
    """The library's own module classes, whose ``forward`` draws nothing
    (listed one by one: a new class is not trusted until added here)."""
    from .modules import MLP, FusionNet, ImageCNN, SpectrumCNN
    from .modules.spectrum import Add, LocallyConnected1d, ResidualBlock1d

    return frozenset({MLP, FusionNet, ImageCNN, SpectrumCNN, Add, LocallyConnected1d,
                      ResidualBlock1d})


def _global_hooks():
    from torch.nn.modules import module as m

    names = ("_global_forward_hooks", "_global_forward_pre_hooks",
             "_global_backward_hooks", "_global_backward_pre_hooks")
    return any(len(getattr(m, n, {})) for n in names)


def _hooked(module):
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
             "_backward_pre_hooks")
    return any(len(getattr(module, n, {}) or {}) for n in names)


def deterministic_module(module):
    """True when no layer of ``module`` can draw random numbers in ``forward``
    (exact types of :data:`_DETERMINISTIC_LAYERS` or the library's layers,
    dropout only with ``p=0``, no hooks)."""
    if not isinstance(module, nn.Module) or _global_hooks():
        return False
    allowed = _DETERMINISTIC_LAYERS | _library_layers()
    for m in module.modules():
        if _hooked(m):
            return False
        if type(m) in allowed or (type(m) is nn.Dropout and m.p == 0):
            continue
        return False
    return True


def step_needs_mode(net):
    """Whether a training / validation step of ``net`` may draw random numbers."""
    from .explainers.gradient import (
        Gradient,
        GradientXInput,
        IntegratedGradients,
        SmoothGrad,
    )
    from .penalties import RelevancePenalty, RightReasonsPenalty

    if not vars(type(net)).get("_steps_draw_nothing", False):
        return True  # a subclass may override a step (set on the exact class only)
    if type(getattr(net, "criterion_", None)) not in _DETERMINISTIC_LOSSES:
        return True
    if not deterministic_module(getattr(net, "module_", None)):
        return True
    if net._penalized():
        term = net._penalty()
        explainer = getattr(term, "explainer", None)
        if type(term) not in (RelevancePenalty, RightReasonsPenalty):
            return True
        if type(explainer) not in (Gradient, GradientXInput, IntegratedGradients,
                                   SmoothGrad):
            return True
        if callable(getattr(explainer, "baselines", None)):
            return True
    return False


def deterministic_optimizer(net):
    """Whether ``net``'s optimizer step (outside the loss closure) draws nothing."""
    return type(getattr(net, "optimizer_", None)) in _DETERMINISTIC_OPTIMIZERS
