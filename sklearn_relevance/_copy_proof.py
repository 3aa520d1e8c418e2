"""Proofs that a rewrite of a network is exact for every input.

The inference copy (:mod:`sklearn_relevance._inference`) rewrites a network
only where a proof says the rewrite cannot change what the network computes,
whatever the input; no rewrite is kept because it gave the same numbers on a
few samples. A proof rests on three facts:

1. **No hooks.** Hooks see and may change what a layer passes on, and a
   backward hook acts on the gradients a rewrite merges or reorders. A
   network with any hook on any submodule (forward, forward-pre, backward,
   full-backward), or with a global module hook registered
   (``torch.nn.modules.module.register_module_*_hook``), is not rewritten at
   all (:func:`hooks_anywhere`).
2. **A graph of the forward** (``torch.fx``, traced without patching
   anything outside a copy: :mod:`sklearn_relevance._private_trace`). A
   forward traces only if its Python control flow depends on no tensor's
   values or shape: a branch such as ``if x.max() > t`` or a read of
   ``x.shape[0]`` in a condition stops the trace, and a network without a
   graph is not rewritten. The graph shows every read of the input and
   which layer feeds which.
3. **One real forward pass** of a copy of one input row
   (:func:`observe_forward`), which must agree with the graph: the same
   sequence of leaf layers; no tensor value turned into a Python value
   (``bool(t)``, ``t.item()``, ``t.tolist()``, ``t.numpy()``...), which
   would let later inputs take another branch than the one traced; and the
   input handed to nothing but the layer the graph says reads it. (fx traces
   with proxies, which a forward could tell apart from tensors with
   ``isinstance``; the real pass closes that gap for the branches the graph
   relies on.)

Each rewrite then states, in terms of the graph, the conditions under which
it is exact by construction (:class:`GraphFacts`). ``torch.nn`` layers
(fx's leaf modules) are taken as functions of their arguments; a
subclass, which may compute something else, never qualifies for a rewrite
(exact types only).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module_globals
from torch.overrides import TorchFunctionMode

__all__ = ["GraphFacts", "hooks_anywhere", "observe_forward", "HOOK_DICTS",
           "GLOBAL_HOOK_DICTS"]

#: Per-module hook dicts (each present in the torch versions supported).
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
              "_backward_pre_hooks")

#: Process-wide module hooks (``register_module_forward_hook`` and kin).
GLOBAL_HOOK_DICTS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                     "_global_backward_hooks", "_global_backward_pre_hooks")

AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)

# tensor -> Python value: a later input could branch otherwise
_VALUE_READS = {"__bool__", "item", "tolist", "__int__", "__float__", "__index__",
                "__complex__", "numpy", "__array__", "__dlpack__", "data_ptr",
                "untyped_storage", "storage", "_typed_storage", "__reduce_ex__"}
# reads of the memory layout: a channels-last copy could compute otherwise
_LAYOUT_READS = {"stride", "is_contiguous", "as_strided", "as_strided_",
                 "data_ptr", "storage_offset", "untyped_storage", "storage"}


def hooks_anywhere(module):
    """Whether any submodule of ``module`` has a hook, or a global module
    hook is registered."""
    for name in GLOBAL_HOOK_DICTS:
        if getattr(_module_globals, name, None):
            return True
    for m in module.modules():
        for name in HOOK_DICTS:
            if getattr(m, name, None):
                return True
    return False


def registrations(module):
    """How often each submodule is registered in ``module`` (by identity)."""
    counts = {}
    for _, m in module.named_modules(remove_duplicate=False):
        counts[id(m)] = counts.get(id(m), 0) + 1
    return counts


def _fx_leaf(m):
    return ((type(m).__module__.startswith("torch.nn")
             or type(m).__module__.startswith("torch.ao.nn"))
            and not isinstance(m, nn.Sequential))


class _Recorder(TorchFunctionMode):
    """Records, in this thread only, the torch calls of one forward pass."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe
        self.in_stem = 0
        self.stem_reads = 0
        self.other_reads = []
        self.value_reads = []
        self.layout_reads = []

    def _has_probe(self, args, kwargs):
        stack = list(args) + list((kwargs or {}).values())
        while stack:
            a = stack.pop()
            if a is self.probe:
                return True
            if isinstance(a, (list, tuple)):
                stack.extend(a)
        return False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _VALUE_READS:
            self.value_reads.append(name)
        if name in _LAYOUT_READS:
            self.layout_reads.append(name)
        if self.probe is not None and self._has_probe(args, kwargs):
            if self.in_stem:
                self.stem_reads += 1
            else:
                self.other_reads.append(name)
        return func(*args, **(kwargs or {}))


class Observation:
    """What one real forward pass did (see :func:`observe_forward`).

    Attributes
    ----------
    leaf_calls : list of str
        The fx leaf layers called, by name, in order (calls inside another
        leaf not counted).
    value_reads, layout_reads : list of str
    other_reads : list of str
        Calls outside the first leaf layer that took the input itself.
    first_takes_input : bool
        Whether the first leaf layer called took the input as its first
        argument.
    """

    def __init__(self):
        self.leaf_calls = []
        self.first_takes_input = False
        self.recorder = None


def observe_forward(module, probe):
    """Run ``module`` on ``probe`` (a tensor the caller made for this) and
    record what the forward did. ``module`` must be a private copy: hooks
    are placed on it for the pass and removed afterwards.

    Returns
    -------
    Observation, or None where the forward raised.
    """
    obs = Observation()
    names = {id(m): name for name, m in module.named_modules()}
    leaves = [m for m in module.modules() if _fx_leaf(m)]
    tensor = torch.is_tensor(probe)
    recorder = _Recorder(probe if tensor else None)
    obs.recorder = recorder
    depth = [0]

    def pre(m, args):
        if depth[0] == 0:
            obs.leaf_calls.append(names[id(m)])
            if len(obs.leaf_calls) == 1:
                obs.first_takes_input = bool(tensor and args and args[0] is probe)
                recorder.in_stem = 1
        depth[0] += 1

    def post(m, args, out):
        depth[0] -= 1
        if depth[0] == 0:
            recorder.in_stem = 0

    handles = []
    try:
        for m in leaves:
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        with torch.no_grad(), recorder:
            module(**probe) if isinstance(probe, dict) else module(probe)
    except Exception:  # noqa: BLE001 - a forward that fails is not rewritten
        return None
    finally:
        for h in handles:
            h.remove()
    return obs


class GraphFacts:
    """What the fx graph of ``module`` shows, for the rewrites' conditions.

    Names are those fx gives (a module's first name in ``named_modules``);
    a layer qualifies for a rewrite only if it is registered once and
    called once in the graph, so its name is unique.
    """

    def __init__(self, module, graph):
        self.module = module
        self.graph = graph
        self.modules = dict(module.named_modules())
        self.counts = registrations(module)
        self.calls = {}
        self.get_attrs = []
        self.placeholders = []
        for node in graph.nodes:
            if node.op == "call_module":
                self.calls.setdefault(node.target, []).append(node)
            elif node.op == "get_attr":
                self.get_attrs.append(node.target)
            elif node.op == "placeholder":
                self.placeholders.append(node)

    def leaf_sequence(self):
        """The ``call_module`` targets in graph order."""
        return [n.target for n in self.graph.nodes if n.op == "call_module"]

    def once(self, name):
        """The one ``call_module`` node of a layer registered once, or None."""
        nodes = self.calls.get(name, [])
        mod = self.modules.get(name)
        if len(nodes) != 1 or mod is None or self.counts.get(id(mod)) != 1:
            return None
        return nodes[0]

    def _attrs_read(self, name):
        prefix = name + "."
        return any(t == name or t.startswith(prefix) for t in self.get_attrs)

    def reads_layout(self):
        """Whether the graph reads strides or storage (channels-last could
        then change what it computes)."""
        for node in self.graph.nodes:
            target = getattr(node.target, "__name__", node.target)
            if node.op in ("call_method", "call_function") and target in _LAYOUT_READS:
                return True
        return False

    def stem(self):
        """The name of the affine layer that alone reads the input, or None.

        The first placeholder (the forward's input) must have one user, a
        layer of exactly a type of :data:`AFFINE` registered and called
        once, taking the input as its only argument.
        """
        if not self.placeholders or getattr(self.graph, "input_meta_reads", 0):
            return None
        x = self.placeholders[0]
        users = list(x.users)
        if len(users) != 1:
            return None
        node = users[0]
        if node.op != "call_module" or tuple(node.args) != (x,) or node.kwargs:
            return None
        if type(self.modules.get(node.target)) not in AFFINE or self.once(node.target) is None:
            return None
        return node.target

    def foldable_batchnorms(self):
        """``(layer name, BatchNorm name)`` pairs exact to fold.

        The layer (exactly Linear / Conv1d/2d/3d) feeds the BatchNorm
        (exactly BatchNorm1d/2d/3d, eval mode, running statistics) and
        nothing else; both are registered and called once and neither's
        parameters are read elsewhere in the graph; the BatchNorm is a child
        of a Sequential (where the copy puts an ``nn.Identity``).
        """
        pairs = []
        for bn_name, nodes in self.calls.items():
            bn = self.modules.get(bn_name)
            if type(bn) not in BATCHNORMS or bn.training or bn.running_mean is None \
                    or bn.running_var is None:
                continue
            parent = self.modules.get(bn_name.rpartition(".")[0])  # "": the root
            if not isinstance(parent, nn.Sequential):
                continue
            node = self.once(bn_name)
            if node is None or node.kwargs or len(node.args) != 1:
                continue
            src = node.args[0]
            if not (hasattr(src, "op") and src.op == "call_module"):
                continue
            layer = self.modules.get(src.target)
            if type(layer) not in AFFINE or self.once(src.target) is None:
                continue
            if len(src.users) != 1 or self._attrs_read(src.target) or self._attrs_read(bn_name):
                continue
            out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
            if out != bn.num_features:
                continue
            pairs.append((src.target, bn_name))
        return pairs

    def inplace_relus(self, folded):
        """ReLU names exact to make in-place: each takes, through folded
        BatchNorms only, the fresh output of a Linear / Conv layer that
        nothing else uses (those layers keep no output for backward, and
        the output is never the caller's input)."""
        names = []
        for name, nodes in self.calls.items():
            relu = self.modules.get(name)
            if type(relu) is not nn.ReLU or relu.inplace:
                continue
            node = self.once(name)
            if node is None or node.kwargs or len(node.args) != 1:
                continue
            src = node.args[0]
            while hasattr(src, "op") and src.op == "call_module" and src.target in folded:
                if len(src.users) != 1 or len(src.args) != 1:
                    src = None
                    break
                src = src.args[0]
            if not (hasattr(src, "op") and src.op == "call_module"):
                continue
            if type(self.modules.get(src.target)) not in AFFINE or len(src.users) != 1:
                continue
            names.append(name)
        return names

    def pool_relu_swaps(self):
        """``(Sequential name, index)`` of ``ReLU, MaxPool`` children exact to
        swap: the ReLU (exactly ``nn.ReLU``) feeds the pooling (exactly
        MaxPool1d/2d/3d without indices) and nothing else, both registered
        and called once; an in-place ReLU only where its input feeds
        nothing else (it wrote into it)."""
        swaps = []
        for seq_name, seq in self.modules.items():
            if not isinstance(seq, nn.Sequential):
                continue
            keys = list(seq._modules)
            i = 0
            while i < len(keys) - 1:
                relu, pool = seq._modules[keys[i]], seq._modules[keys[i + 1]]
                prefix = seq_name + "." if seq_name else ""
                rn, pn = prefix + keys[i], prefix + keys[i + 1]
                if (type(relu) is nn.ReLU and type(pool) in MAX_POOLS
                        and not pool.return_indices and self._feeds_only(rn, pn, relu)):
                    swaps.append((seq_name, i))
                    i += 2
                else:
                    i += 1
        return swaps

    def _feeds_only(self, rn, pn, relu):
        rnode, pnode = self.once(rn), self.once(pn)
        if rnode is None or pnode is None or pnode.kwargs or rnode.kwargs:
            return False
        if tuple(pnode.args) != (rnode,) or len(rnode.users) != 1 or len(rnode.args) != 1:
            return False
        if relu.inplace:
            src = rnode.args[0]
            return hasattr(src, "users") and len(src.users) == 1 and src.op != "placeholder"
        return True
