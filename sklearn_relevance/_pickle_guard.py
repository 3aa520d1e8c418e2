"""Pickling a fitted network while other threads explain with it.

LRP, Grad-CAM and guided backpropagation attach hooks (local closures) to
the fitted module for the duration of a call, and calls in eval mode switch
the module's training flags. A pickle, ``copy.deepcopy`` or
``joblib.dump`` taken at that moment would fail on the closures ("Can't
pickle local object") or store the switched flags. :func:`settled` waits
until no call changes the module (the module's lock of
:mod:`~sklearn_relevance._module_access` has no writer and no switched
flags) and keeps new ones out while the state is taken.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ._module_access import _held, _lock_of

__all__ = ["settled"]


@contextmanager
def settled(module):
    """Hold ``module`` free of hooks and flag switches for the duration.

    A thread that is itself inside an explanation of ``module`` passes
    through (it cannot wait for itself).
    """
    if not isinstance(module, torch.nn.Module) or id(module) in _held():
        yield
        return
    lock = _lock_of(module)
    with lock.cond:
        while lock.writer is not None or lock.switched is not None:
            lock.cond.wait()
        yield
