"""Symbolic traces (``torch.fx`` graphs) that change nothing outside themselves.

``torch.fx.Tracer.trace`` patches ``nn.Module.__call__`` and
``nn.Module.__getattr__`` for the whole process while it runs: a forward
pass in any other thread meanwhile goes through the tracer and fails
(``NameError: module is not installed as a submodule``). The library traces
networks to prove its rewrites of them (:mod:`sklearn_relevance._copy_proof`)
while other threads may be predicting with them, so it traces differently:

* the network is copied (its module objects only: parameters, buffers and
  tensor attributes are shared, not duplicated);
* each module of the copy gets a class of its own, a subclass of its class
  whose ``__call__`` and ``__getattr__`` report to the tracer. Only the
  copy's objects change class; ``nn.Module`` and every other module in the
  process are left as they are;
* the trace is then fx's own (placeholders, proxies, leaf modules, the
  graph), without the global patches. fx's automatic wrapping of ``math``
  functions and of ``torch.fx.wrap``-registered functions, which also
  patches module globals, is not done: a forward that calls them on a
  traced value fails to trace, and is then not rewritten.

A forward with data-dependent control flow (``if x.max() > t``, a branch on
a shape) fails to trace, as with fx itself: :func:`trace_graph` returns None.
"""

from __future__ import annotations

import copy
import itertools
import threading

import torch
from torch import fx, nn

__all__ = ["trace_graph"]

_TRACER_ATTRIBUTE = "_sklearn_relevance_private_tracer"
_CLASSES: dict = {}
_CLASSES_LOCK = threading.Lock()

try:  # the tensor-like attribute types that fx records as constants
    from torch.fx._symbolic_trace import _constant_attribute_types as _CONSTANT_TYPES
except ImportError:  # pragma: no cover - older / newer torch
    _CONSTANT_TYPES = (torch.Tensor,)


def _traced_class(cls):
    """A subclass of ``cls`` whose instances report calls and attribute
    reads to the tracer recorded on them (made once per class)."""
    with _CLASSES_LOCK:
        sub = _CLASSES.get(cls)
        if sub is not None:
            return sub

        def __call__(mod, *args, **kwargs):  # noqa: N807
            tracer = mod.__dict__[_TRACER_ATTRIBUTE]
            if tracer.concrete:  # inside a leaf's example run
                return nn.Module.__call__(mod, *args, **kwargs)

            def forward(*a, **k):
                return nn.Module.__call__(mod, *a, **k)

            return tracer.call_module(mod, forward, args, kwargs)

        def __getattr__(mod, attr):  # noqa: N807 - called when lookup fails
            value = nn.Module.__getattr__(mod, attr)
            tracer = mod.__dict__.get(_TRACER_ATTRIBUTE)
            if tracer is None or tracer.concrete:
                return value
            return tracer.getattr(attr, value, tracer.parameter_proxies)

        sub = type(cls.__name__, (cls,), {
            "__call__": __call__, "__getattr__": __getattr__,
            "__module__": cls.__module__, "__qualname__": cls.__qualname__})
        _CLASSES[cls] = sub
        return sub


class _Batch(int):
    """A size that differs between the two example batches (a batch size,
    or a product of one): arithmetic keeps both values; any comparison,
    truth test or conversion stops the trace (control flow that depends on
    the batch size could read the input otherwise for other batches)."""

    def __new__(cls, a, b):
        self = int.__new__(cls, a)
        self.pair = (a, b)
        return self

    def _refuse(self, *args):
        raise fx.proxy.TraceError("control flow on a batch-dependent size")

    __bool__ = __index__ = __int__ = __float__ = __eq__ = __ne__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __truediv__ = __rtruediv__ = __hash__ = _refuse


def _batch_op(op):
    def apply(self, other):
        o = other.pair if isinstance(other, _Batch) else (other, other)
        if not isinstance(o[0], int):
            raise fx.proxy.TraceError("batch-dependent size in a float expression")
        return _size(op(self.pair[0], o[0]), op(self.pair[1], o[1]))
    return apply


for _name, _op in (("add", int.__add__), ("sub", int.__sub__), ("mul", int.__mul__),
                   ("floordiv", int.__floordiv__), ("mod", int.__mod__)):
    setattr(_Batch, f"__{_name}__", _batch_op(_op))
    setattr(_Batch, f"__r{_name}__", _batch_op(lambda a, b, op=_op: op(b, a)))
_Batch.__neg__ = lambda self: _size(-self.pair[0], -self.pair[1])


def _size(a, b):
    return int(a) if a == b else _Batch(a, b)


class _ConcreteProxy(fx.Proxy):
    """A proxy that knows its value on two example batches: its shape,
    number of axes, dtype and device are Python values (the sizes that
    differ between the batches as :class:`_Batch`), so a forward that
    checks or adapts to its input's shape traces. Reads of these on the
    forward's input are counted (``tracer.input_meta_reads``)."""

    def _pair(self):
        tracer = self.tracer
        if self.node.op == "placeholder":
            tracer.input_meta_reads += 1
        return tracer.values[self.node]

    @property
    def shape(self):
        a, b = self._pair()
        if not (torch.is_tensor(a) and torch.is_tensor(b) and a.ndim == b.ndim):
            raise fx.proxy.TraceError("shape of a value that is not one tensor")
        return tuple(_size(i, j) for i, j in zip(a.shape, b.shape))

    def size(self, dim=None):
        shape = self.shape
        return shape if dim is None else shape[dim]

    @property
    def ndim(self):
        return len(self.shape)

    def dim(self):
        return len(self.shape)

    def numel(self):
        n = 1
        for s in self.shape:
            n = s * n
        return n

    @property
    def dtype(self):
        return self._pair()[0].dtype

    @property
    def device(self):
        return self._pair()[0].device


class _PrivateTracer(fx.Tracer):
    """fx's tracer, run on a copy whose modules report to it (no patches),
    with each value computed on two example batches alongside."""

    def __init__(self, examples):
        super().__init__(autowrap_modules=(), autowrap_functions=())
        self.parameter_proxies = {}
        self.examples = examples  # placeholder position or name -> (a, b)
        self.values = {}
        self.placeholders = 0
        self.concrete = False
        self.input_meta_reads = 0

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None,
                     proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr,
                                     proxy_factory_fn)
        node = proxy.node
        if kind == "placeholder":
            pos = self.placeholders
            self.placeholders += 1
            pair = self.examples.get(pos, self.examples.get(target))
            if pair is None:
                if not node.args:
                    raise fx.proxy.TraceError(f"no example for input {target!r}")
                pair = (node.args[0], node.args[0])
            self.values[node] = pair
        else:
            self.values[node] = (self._run(node, 0), self._run(node, 1))
        if type(proxy) is fx.Proxy:
            proxy.__class__ = _ConcreteProxy
        return proxy

    def trace_copy(self, root):
        self.root = root
        fn = type(root).forward
        self.root_module_name = root._get_name()
        self.submodule_paths = {mod: name for name, mod in root.named_modules()}
        self.graph = fx.Graph(tracer_cls=type(self))
        self.tensor_attrs = {}

        def collect(m, prefix):
            for k, v in m.__dict__.items():
                if isinstance(v, _CONSTANT_TYPES):
                    self.tensor_attrs[v] = ".".join(prefix + [k])
            for k, v in m.named_children():
                collect(v, prefix + [k])

        collect(root, [])
        fn, args = self.create_args_for_root(fn, True, None)
        self.create_node("output", "output", (self.create_arg(fn(*args)),), {})
        self.submodule_paths = None
        return self.graph

    def _run(self, node, k):
        def load(a):
            if isinstance(a, fx.Node):
                if a not in self.values and a.op == "get_attr":  # made by create_arg
                    value = self._attribute(a.target)
                    self.values[a] = (value, value)
                return self.values[a][k]
            if isinstance(a, _Batch):
                return a.pair[k]
            return a

        args = fx.node.map_aggregate(node.args, load)
        kwargs = fx.node.map_aggregate(node.kwargs, load)
        self.concrete = True
        try:
            with torch.no_grad():
                if node.op == "call_function":
                    return node.target(*args, **kwargs)
                if node.op == "call_method":
                    return getattr(args[0], node.target)(*args[1:], **kwargs)
                if node.op == "call_module":
                    mod = self.root.get_submodule(node.target)
                    return nn.Module.__call__(mod, *args, **kwargs)
                if node.op == "get_attr":
                    return self._attribute(node.target)
        finally:
            self.concrete = False
        return None

    def _attribute(self, target):
        self.concrete = True
        try:
            obj = self.root
            for part in target.split("."):
                obj = getattr(obj, part)
            return obj
        finally:
            self.concrete = False

def _shallow_module_copy(module):
    """A copy of ``module``'s module objects sharing its tensors (all of it
    for a module with a submodule in training mode, whose example runs
    could write BatchNorm statistics)."""
    if any(m.training for m in module.modules()):
        return copy.deepcopy(module)
    shared = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    for m in module.modules():
        for v in m.__dict__.values():
            if torch.is_tensor(v):
                shared[id(v)] = v
    return copy.deepcopy(module, shared)


def trace_graph(module, X):
    """The ``torch.fx`` graph of ``module``'s forward, or None where it
    cannot be traced.

    Traced on a copy of ``module``'s module objects whose classes report to
    the tracer: nothing outside the copy changes, so other threads may call
    ``module`` (or any other module) meanwhile. Leaf modules are fx's:
    those of ``torch.nn`` (except ``Sequential``), which appear as
    ``call_module`` nodes named by their path in ``module``; every other
    module is traced through. Each value is also computed on two example
    batches (copies of the first row and the first two rows of ``X``), so that
    shapes, numbers of axes, dtypes and devices are known while tracing:
    a forward may check or adapt to them. A size that differs between the
    two batches (the batch size) may be computed with and passed on, but
    a comparison or conversion of it stops the trace, as does any
    tensor's value in a condition (data-dependent control flow).

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode (the examples run through it).
    X : Tensor or dict of Tensors
        Inputs as the forward takes them (a dict as keyword arguments).

    Returns
    -------
    torch.fx.Graph or None
        With ``graph.input_meta_reads``: how often the forward read the
        shape, number of axes, dtype or device of its input.
    """
    try:
        if isinstance(X, dict):
            examples = {k: (_rows(v, 1), _rows(v, 2)) for k, v in X.items()}
        else:
            examples = {0: (_rows(X, 1), _rows(X, 2))}
        shadow = _shallow_module_copy(module)
        tracer = _PrivateTracer(examples)
        for m in shadow.modules():
            m.__class__ = _traced_class(type(m))
            object.__setattr__(m, _TRACER_ATTRIBUTE, tracer)
        graph = tracer.trace_copy(shadow)
        graph.input_meta_reads = tracer.input_meta_reads
        return graph
    except Exception:  # noqa: BLE001 - no graph, no proof: the module runs as it is
        return None


def _rows(x, n):
    """``n`` rows made from ``x``'s first rows (repeated where it has fewer)."""
    idx = torch.arange(n, device=x.device) % max(len(x), 1)
    return x.detach()[idx].clone()
