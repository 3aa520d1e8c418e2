"""What a cached copy of a network depends on: everything that can change
its forward pass.

:func:`forward_state_key` walks every submodule (each registration, so a
module swapped for another, even one without parameters, changes the key)
and records:

* its name, identity, type and ``training`` flag;
* each parameter and each buffer, persistent or not: identity, version
  counter (raised by every in-place change through PyTorch: an optimizer
  step, ``copy_``, ``fill_``, ``load_state_dict``), storage address, dtype,
  device, shape and strides, ``requires_grad``;
* the set of non-persistent buffers;
* its hooks (each hook dict, by key and function identity);
* every other attribute in its ``__dict__``: Python scalars, strings,
  ``None``, dtypes and devices by value; tuples, lists and dicts by value
  (nested up to three levels, up to 64 items, their items as here);
  tensors as parameters are; any other object (a function, a module kept
  outside ``_modules``) by identity;
* the process-wide module hooks.

Not seen: writes through ``tensor.data`` or ``.detach()`` (PyTorch raises
no version counter for them: ``p.data.mul_(2)`` leaves ``p._version``
unchanged), changes inside an object kept by identity, and module-level
globals the forward reads. After such a change, call
:func:`sklearn_relevance._inference.clear_inference_copies` (or change a
parameter the usual way).
"""

from __future__ import annotations

import enum

import torch
from torch.nn.modules import module as _module_globals

from ._copy_proof import GLOBAL_HOOK_DICTS, HOOK_DICTS

__all__ = ["forward_state_key", "tensor_key"]

_OWN = {"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
        "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks", "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs",
        "_is_full_backward_hook", *HOOK_DICTS}

_SCALARS = (bool, int, str, bytes, complex, type(None), torch.dtype, torch.device,
            torch.memory_format, torch.layout, enum.Enum)


def tensor_key(t):
    """Identity, version, storage, dtype, device, shape and strides of ``t``."""
    try:
        ptr = t.data_ptr()
    except Exception:  # noqa: BLE001 - tensors without storage
        ptr = None
    return ("tensor", id(t), t._version, ptr, t.dtype, str(t.device), tuple(t.shape),
            tuple(t.stride()) if t.layout == torch.strided else None, t.requires_grad)


def _value_key(v, depth=0):
    if isinstance(v, float):
        return ("float", v.hex())
    if isinstance(v, _SCALARS):
        return (type(v), v)
    if torch.is_tensor(v):
        return tensor_key(v)
    if isinstance(v, (tuple, list)) and depth < 3 and len(v) <= 64:
        return (type(v), tuple(_value_key(x, depth + 1) for x in v))
    if isinstance(v, dict) and depth < 3 and len(v) <= 64:
        return (type(v), tuple((_value_key(k, depth + 1), _value_key(x, depth + 1))
                               for k, x in v.items()))
    return ("object", type(v), id(v))


def _hooks_key(m):
    return tuple(tuple((k, id(fn)) for k, fn in getattr(m, name, {}).items())
                 for name in HOOK_DICTS)


def forward_state_key(module):
    """A hashable, comparable key of everything in ``module`` that can change
    its forward pass (see the module docstring for what is not seen)."""
    parts = [tuple(tuple((k, id(fn)) for k, fn in getattr(_module_globals, name, {}).items())
                   for name in GLOBAL_HOOK_DICTS)]
    for name, m in module.named_modules(remove_duplicate=False):
        params = tuple((k, None if p is None else tensor_key(p))
                       for k, p in m._parameters.items())
        buffers = tuple((k, None if b is None else tensor_key(b))
                        for k, b in m._buffers.items())
        attrs = tuple((k, _value_key(v)) for k, v in m.__dict__.items() if k not in _OWN)
        parts.append((name, id(m), type(m), params, buffers,
                      tuple(sorted(m._non_persistent_buffers_set)), _hooks_key(m), attrs))
    return tuple(parts)
