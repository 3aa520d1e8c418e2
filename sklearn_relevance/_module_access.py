"""Sharing one module between threads that explain with it.

Explainers run forward and backward passes of a module that other threads may
be explaining with at the same time (a web service, a thread-pool
evaluation). Passes that only *call* the module (gradient, integrated
gradients, occlusion) can run side by side; passes that *change* it while
they run cannot: guided backpropagation, Grad-CAM and LRP attach forward
hooks, LRP's canonizers override ``forward``, captum's methods attach hooks
of their own, and explaining a module with BatchNorms in training mode
switches their ``track_running_stats`` off (so that no explanation writes
the running statistics). The estimators' ``explain`` also puts the module in
eval mode for the duration of the call.

:func:`module_access` is a per-module reader/writer lock with these rules:

* a call whose explainer declares ``shares_module = True`` takes the lock
  *shared*; any other call (hooks, forward overrides, unknown explainer
  objects) takes it *exclusive*;
* a shared call is upgraded to exclusive when the module, in the mode the
  call runs it in, has training-mode BatchNorms that track statistics
  (freezing them is a change of the module);
* shared holders agree on the module's mode: a call asking for eval mode
  (the estimators' ``explain``) shares with others asking for it, and with
  calls taking the module as it is when it is already in eval mode. The
  first of them switches the module to eval mode and the last one restores
  every submodule's own training flag;
* a thread that already holds the lock of a module (an explainer calling
  another one, as SmoothGrad and XRAI do) passes through;
* waiting exclusive calls go first, so that a stream of shared calls does
  not starve them.

Hooks that the library attaches also act only in the thread that attached
them (:func:`hook_owner`), so forward passes of the module in other threads
that do not take the lock (a plain ``module(X)``) are not changed by them;
``nn.DataParallel``, which runs replicas in threads of its own, is
the exception. Backward
passes run by autograd on other threads (CUDA) need no rule: the modified
backward steps are autograd functions recorded in the forward pass of the
thread that owns them.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager

import torch

__all__ = ["eval_mode", "frozen_batchnorm_stats", "hook_acts", "hook_owner",
           "module_access", "shares_module"]

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()
_HELD = threading.local()


def shares_module(explainer) -> bool:
    """Whether ``explainer`` only calls the module (no hooks, no state change).

    Objects without the ``shares_module`` attribute are assumed to change it.
    """
    try:
        return bool(getattr(explainer, "shares_module", False))
    except Exception:  # a property that cannot be resolved (bad parameter)
        return False


def hook_owner(module):
    """The thread in which hooks placed now on ``module`` should act.

    The calling thread, or None (every thread) for a module that contains
    ``nn.DataParallel``, whose replicas run their forward passes in threads
    of their own.
    """
    if any(isinstance(m, torch.nn.DataParallel) for m in module.modules()):
        return None
    return threading.get_ident()


def hook_acts(owner):
    """Whether a hook placed for ``owner`` (see :func:`hook_owner`) acts here."""
    return owner is None or owner == threading.get_ident()


def _tracking_batchnorms(module):
    """Training-mode BatchNorms that would update their running statistics."""
    return [
        m for m in module.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        and m.training and m.track_running_stats
    ]


def _any_training(module):
    return any(m.training for m in module.modules())


class _ModuleLock:
    def __init__(self):
        self.cond = threading.Condition()
        self.readers = 0
        self.switched = None  # training flags saved when readers switched to eval
        self.writer = None
        self.writers_waiting = 0


def _lock_of(module):
    with _LOCKS_GUARD:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = _ModuleLock()
        return lock


def _held():
    held = getattr(_HELD, "modules", None)
    if held is None:
        held = _HELD.modules = {}
    return held


def _to_eval(module):
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    return flags


def _restore(flags):
    for m, training in flags:
        m.training = training


@contextmanager
def frozen_batchnorm_stats(module):
    """Keep training-mode BatchNorms from updating their running statistics.

    Explanations that run extra forward passes of a network in training mode
    (a training penalty with IG or LRP, say) must not write BatchNorm
    buffers: the write bumps their version and breaks the pending backward
    of the training forward, and it would count the extra passes in the
    running statistics. Inside this context, training-mode BatchNorms still
    normalise with batch statistics but leave their buffers alone.
    """
    changed = _tracking_batchnorms(module)
    for m in changed:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in changed:
            m.track_running_stats = True


@contextmanager
def module_access(module, *, shared=False, eval_mode=False):
    """Run explanation passes of ``module`` under its reader/writer lock.

    Inside the context the module is in eval mode when ``eval_mode`` is
    True (as it was otherwise), and training-mode BatchNorms do not update
    their running statistics. On exit every training flag and
    ``track_running_stats`` is what it was.

    Parameters
    ----------
    module : torch.nn.Module
    shared : bool, default=False
        The passes only call the module (no hooks, no change of it) and may
        run alongside other such passes.
    eval_mode : bool, default=False
        Put the module in eval mode for the duration.
    """
    held = _held()
    key = id(module)
    mine = held.get(key)
    if mine is not None:
        if mine == "shared" and not shared:
            raise RuntimeError(
                "An explainer that changes the module (hooks) was called inside one "
                "that declares shares_module=True on the same module; declare "
                "shares_module=False on the outer explainer."
            )
        yield module
        return
    lock = _lock_of(module)
    if shared and _enter_shared(lock, module, eval_mode):
        held[key] = "shared"
        try:
            yield module
        finally:
            del held[key]
            _leave_shared(lock)
        return
    flags = _enter_exclusive(lock, module, eval_mode)
    held[key] = "exclusive"
    try:
        with frozen_batchnorm_stats(module):
            yield module
    finally:
        del held[key]
        with lock.cond:
            if flags is not None:
                _restore(flags)
            lock.writer = None
            lock.cond.notify_all()


@contextmanager
def eval_mode(module, *, no_grad=True):
    """Run plain forward passes of ``module`` in eval mode, then restore it.

    The one eval-mode context of the package: it takes ``module``'s lock
    shared with ``eval_mode=True`` (:func:`module_access`), so that the
    module is in eval mode inside the context even when other threads
    explain with it, and on exit every submodule has its own training flag
    back (not the root's flag copied down).

    Parameters
    ----------
    module : torch.nn.Module
    no_grad : bool, default=True
        Also disable autograd inside the context.
    """
    with module_access(module, shared=True, eval_mode=True):
        if no_grad:
            with torch.no_grad():
                yield module
        else:
            yield module


def _enter_shared(lock, module, eval_mode):
    """Take the lock shared; False (nothing taken) when it must be exclusive."""
    with lock.cond:
        while not (
            lock.writer is None and lock.writers_waiting == 0 and (
                lock.readers == 0
                or (eval_mode and not _any_training(module))
                or (not eval_mode and lock.switched is None)
            )
        ):
            lock.cond.wait()
        if lock.readers == 0 and eval_mode and _any_training(module):
            lock.switched = _to_eval(module)
        elif _tracking_batchnorms(module):
            # running the module as it is would update BatchNorm statistics
            return False
        lock.readers += 1
        return True


def _leave_shared(lock):
    with lock.cond:
        lock.readers -= 1
        if lock.readers == 0:
            if lock.switched is not None:
                _restore(lock.switched)
                lock.switched = None
            lock.cond.notify_all()


def _enter_exclusive(lock, module, eval_mode):
    """Take the lock exclusive; return the training flags to restore, or None."""
    with lock.cond:
        lock.writers_waiting += 1
        try:
            while lock.writer is not None or lock.readers:
                lock.cond.wait()
        finally:
            lock.writers_waiting -= 1
        lock.writer = threading.get_ident()
        if eval_mode and _any_training(module):
            return _to_eval(module)
        return None
