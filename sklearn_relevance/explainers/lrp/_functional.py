"""LRP rules for operations written as code, not as layers.

Clinical and transformer networks multiply, divide, normalise and attend in
their ``forward`` code (MONAI's squeeze-and-excitation ``x * y``, attention
``einsum`` and ``softmax``, ``F.layer_norm``). Forward hooks never see those
operations, so :class:`FunctionRules`, a ``TorchFunctionMode`` active during
the LRP forward pass (thread-local, like every torch function mode), rewrites
them when *both* operands depend on the explained input:

* products with a gate, a sigmoid's output (through reshapes) or a broadcast
  operand (squeeze-and-excitation, attention gates): the gate is a constant
  (gated LRP / AttnLRP), all relevance goes to the gated signal, whatever the
  spatial size (an SE gate on a 1 x 1 x 1 map is still a gate);
* element-wise products of same-shape activations and matrix products
  (``matmul``, ``bmm``, ``einsum``): the uniform rule of AttnLRP (each
  operand gets ``1/k`` of the relevance);
* division by an activation: the divisor is a constant (normalisations);
* ``layer_norm`` / ``group_norm`` / ``instance_norm``: the standard deviation
  is a constant (AttnLRP's identity rule on the normalisation, linear rule
  on centring and affine part);
* element-wise non-linearities (GELU, SiLU, tanh, ...): the identity rule;
* ``scaled_dot_product_attention`` and ``multi_head_attention_forward`` are
  decomposed into the above (softmax keeps its gradient, which is AttnLRP's
  softmax rule in gradient x input form).

Operations whose gradient already passes relevance as LRP prescribes
(reshapes, concatenation, sums, average and max pooling, ReLU, dropout,
convolutions and linear maps, which hooks rule) run unchanged. Any other
operation on two input-dependent operands, or any unknown operation on an
input-dependent tensor, raises naming the operation and the layer: LRP never
returns a map through an operation it has no rule for.

Everything is a modified gradient: forward values are unchanged and the
backward is made of differentiable operations, so ``create_graph=True``
still differentiates the relevance.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from ._relay import relay, stabilize

__all__ = ["FunctionRules", "UnsupportedOperationError"]


class UnsupportedOperationError(ValueError):
    """An operation LRP has no rule for met the explained input."""


class _Gated(torch.autograd.Function):
    """``a * g`` whose backward reaches ``a`` only (``g`` is a constant gate)."""

    @staticmethod
    def forward(ctx, a, g):
        ctx.save_for_backward(g)
        ctx.shape = a.shape
        return a * g

    @staticmethod
    def backward(ctx, grad):
        (g,) = ctx.saved_tensors
        ga = grad * g
        if ga.shape != ctx.shape:
            ga = ga.sum_to_size(ctx.shape)
        return ga, None


class _Scaled(torch.autograd.Function):
    """Identity whose backward multiplies the gradient by ``factor``."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.clone()  # not a view: in-place additions may follow

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


_REFLECTED = frozenset({"__radd__", "__rsub__", "__rmul__", "__rtruediv__",
                        "__rdiv__", "__rmatmul__", "__rpow__", "__rfloordiv__"})


def _name(func):
    """``func``'s name without underscores (``__rmul__`` -> ``mul``)."""
    name = getattr(func, "__name__", str(func))
    if name in _REFLECTED:
        name = "__" + name[3:]
    return name.strip("_")


#: Linear, routing or positively homogeneous operations: their gradient is
#: LRP-0 / pass-through in gradient x input form (or a hook rules them).
_PLAIN = frozenset("""
view view_as reshape reshape_as flatten unflatten permute transpose t swapaxes
swapdims movedim moveaxis squeeze unsqueeze expand expand_as repeat tile
repeat_interleave contiguous clone detach to float double half bfloat16 type
type_as cpu cuda cat concat concatenate stack hstack vstack dstack split
split_with_sizes chunk tensor_split unbind narrow select getitem setitem
index_select gather take take_along_dim roll flip fliplr flipud index_put
index_put_ masked_fill masked_fill_ masked_select where add add_ iadd sub sub_
isub rsub neg negative pos sum nansum mean nanmean cumsum diff
avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d
adaptive_avg_pool3d max_pool1d max_pool2d max_pool3d max_pool1d_with_indices
max_pool2d_with_indices max_pool3d_with_indices adaptive_max_pool1d
adaptive_max_pool2d adaptive_max_pool3d max amax min amin maximum minimum
relu relu_ leaky_relu leaky_relu_ prelu rrelu threshold threshold_ hardtanh
hardtanh_ relu6 clamp clamp_ clamp_min clamp_min_ clamp_max abs
dropout dropout_ dropout1d dropout2d dropout3d alpha_dropout
feature_alpha_dropout native_dropout conv1d conv2d conv3d conv_transpose1d
conv_transpose2d conv_transpose3d linear embedding pad constant_pad_nd
interpolate upsample upsample_nearest upsample_bilinear pixel_shuffle
pixel_unshuffle unfold fold softmax log_softmax batch_norm get set
flatten_dense_tensors unsafe_view as_strided narrow_copy squeeze_ unsqueeze_
""".split())

_IDENTITY = frozenset("""
gelu silu elu selu celu mish softplus tanh sigmoid hardswish hardsigmoid
logsigmoid tanhshrink softsign exp erf sqrt rsqrt pow square
""".split())

#: Operations whose gradient is zero (steps, signs, rounding).
_ZERO_GRAD = frozenset("sign sgn floor ceil round trunc frac heaviside".split())

_MUL = frozenset({"mul", "multiply", "imul"})
#: Sigmoid outputs are gates; reshapes of a gate stay one.
_GATES = frozenset({"sigmoid", "hardsigmoid"})
GATE_MODULES = (torch.nn.Sigmoid, torch.nn.Hardsigmoid)
_RESHAPES = frozenset("""view view_as reshape reshape_as flatten unflatten squeeze
unsqueeze expand expand_as contiguous clone to float double type_as""".split())
_DIV = frozenset({"div", "truediv", "true_divide", "divide", "itruediv", "idiv"})
_MATMUL = frozenset({"matmul", "bmm", "mm", "einsum"})
_NORM = frozenset({"layer_norm", "group_norm", "instance_norm", "rms_norm"})


class FunctionRules(TorchFunctionMode):
    """Apply LRP rules to functional operations of one forward pass.

    Parameters
    ----------
    sources : list of Tensor
        The explained input's leaves (and input leaves of rules): tensors
        "depend on the input" when their autograd graph reaches one.
    where : callable
        Returns the dotted name of the layer running now (for errors).
    epsilon : float
        Stabiliser of the identity rule's ratio ``y / x``.
    plain : callable or None
        Returns True inside layers whose plain gradient the composite keeps.
    attention : {"attnlrp", "cp"}
        ``"attnlrp"``: softmax keeps its gradient and both operands of the
        attention product share relevance (uniform rule). ``"cp"``:
        conservative propagation (Ali et al. 2022): attention weights (softmax
        outputs) are constants, all relevance goes to the values; relevance
        is then conserved through attention (the weights are detached, so
        ``create_graph=True`` does not differentiate through them).
    """

    def __init__(self, sources, where, epsilon=1e-9, plain=None, attention="attnlrp"):
        super().__init__()
        self.plain = plain
        self.attention = attention
        self.sources = sources
        self.where = where
        self.epsilon = epsilon
        self._memo = {}

    def depends(self, t):
        if not (torch.is_tensor(t) and t.requires_grad):
            return False
        if t.grad_fn is None:
            return any(t is s for s in self.sources)
        return self._node_depends(t.grad_fn)

    def _node_depends(self, root):
        memo = self._memo
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node is None or node in memo:
                continue
            var = getattr(node, "variable", None)
            if var is not None:  # AccumulateGrad of a leaf
                memo[node] = any(var is s for s in self.sources)
                continue
            children = [c for c, _ in node.next_functions if c is not None]
            if expanded:
                memo[node] = any(memo.get(c, False) for c in children)
                continue
            stack.append((node, True))
            stack.extend((c, False) for c in children if c not in memo)
        return memo[root]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        out = self._dispatch(func, name, args, kwargs)
        if name in _GATES or (
                name in _RESHAPES and args and getattr(args[0], "_lrp_gate", False)):
            mark_gate(out)
        return out

    def _dispatch(self, func, name, args, kwargs):
        if name in _PLAIN or (self.plain is not None and self.plain()):
            out = func(*args, **kwargs)
            if name == "softmax" or (
                args and getattr(args[0], "_lrp_softmax", False)
                and torch.is_tensor(out) and out.shape == args[0].shape
            ):
                _mark(out)  # attention weights (through dropout, casts, ...)
            return out
        tensors = [a for a in _flat(args, kwargs) if torch.is_tensor(a)]
        dependent = [t for t in tensors if self.depends(t)]
        if not dependent:
            return func(*args, **kwargs)
        fname = getattr(func, "__name__", "")
        in_place = (fname.endswith("_") and not fname.endswith("__")) or (
            fname.startswith("__i"))
        if name in _IDENTITY:
            if len(dependent) != 1 or in_place:
                raise self._unsupported(func, "an in-place or two-activation form")
            return self._identity(func, args, kwargs, dependent[0])
        if name in _MUL or name in _DIV:
            a, b = args[0], args[1]
            if fname in _REFLECTED:
                a, b = b, a
            if len(dependent) == 1:
                if name in _DIV and self.depends(b):
                    # a constant over an activation: the divisor is a constant
                    return a / b.detach()
                return func(*args, **kwargs)
            if in_place:
                raise self._unsupported(func, "an in-place product of two activations")
            if name in _DIV:
                return _Gated.apply(a, torch.reciprocal(b))
            return self._product(a, b)
        if name in _MATMUL:
            if self.attention == "cp" and any(
                getattr(t, "_lrp_softmax", False) for t in dependent
            ):
                args = [_constant_weights(a) for a in args]
                if name == "einsum" and len(args) == 2 and isinstance(args[1], (list, tuple)):
                    args[1] = [_constant_weights(a) for a in args[1]]
                dependent = [t for t in _flat(args, {}) if self.depends(t)]
            out = func(*args, **kwargs)
            return _Scaled.apply(out, 1.0 / len(dependent)) if len(dependent) > 1 else out
        if name in _NORM:
            return self._norm(name, args, kwargs)
        if name == "scaled_dot_product_attention":
            return self._sdpa(*args, **kwargs)
        if name == "multi_head_attention_forward":
            return self._mha(*args, **kwargs)
        out = func(*args, **kwargs)
        results = out if isinstance(out, (tuple, list)) else (out,)
        if name in _ZERO_GRAD or not any(
            torch.is_tensor(r) and r.requires_grad for r in results
        ):
            return out
        raise self._unsupported(func, "no LRP rule")

    def _unsupported(self, func, why):
        return UnsupportedOperationError(
            f"LRP has no rule for the operation {getattr(func, '__name__', func)!r} "
            f"({why}) applied to the explained input's activations in layer "
            f"{self.where()!r}. Give that layer a rule in the composite "
            "({layer name: rule}), or use a gradient explainer."
        )

    def _identity(self, func, args, kwargs, x):
        y = func(*args, **kwargs)
        if not torch.is_tensor(y) or y.shape != x.shape:
            return y
        return relay(y, [y / stabilize(x, self.epsilon)], [x])

    def _product(self, a, b):
        if not (torch.is_tensor(a) and torch.is_tensor(b)):
            return a * b
        gate_a, gate_b = (getattr(t, "_lrp_gate", False) for t in (a, b))
        if gate_a != gate_b:
            return _Gated.apply(a, b) if gate_b else _Gated.apply(b, a)
        shape = torch.broadcast_shapes(a.shape, b.shape)
        if a.shape == b.shape:
            return _Scaled.apply(a * b, 0.5)
        if tuple(a.shape) == tuple(shape) and b.numel() < a.numel():
            return _Gated.apply(a, b)
        if tuple(b.shape) == tuple(shape) and a.numel() < b.numel():
            return _Gated.apply(b, a)
        return _Scaled.apply(a * b, 0.5)

    def _norm(self, name, args, kwargs):
        if name == "layer_norm":
            x, shape = args[0], args[1]
            weight = args[2] if len(args) > 2 else kwargs.get("weight")
            bias = args[3] if len(args) > 3 else kwargs.get("bias")
            eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
            dims = tuple(range(x.ndim - len(shape), x.ndim))
            centred = x - x.mean(dims, keepdim=True)
            var = centred.detach().pow(2).mean(dims, keepdim=True)
            y = _Gated.apply(centred, torch.rsqrt(var + eps))
            if weight is not None:
                y = y * weight
            return y if bias is None else y + bias
        if name == "rms_norm":
            x, shape = args[0], args[1]
            weight = args[2] if len(args) > 2 else kwargs.get("weight")
            eps = args[3] if len(args) > 3 else kwargs.get("eps")
            eps = torch.finfo(x.dtype).eps if eps is None else eps
            dims = tuple(range(x.ndim - len(shape), x.ndim))
            ms = x.detach().pow(2).mean(dims, keepdim=True)
            y = _Gated.apply(x, torch.rsqrt(ms + eps))
            return y if weight is None else y * weight
        if name == "group_norm":
            x, groups = args[0], args[1]
            weight = args[2] if len(args) > 2 else kwargs.get("weight")
            bias = args[3] if len(args) > 3 else kwargs.get("bias")
            eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
        else:  # instance_norm: running statistics are not supported
            x, groups = args[0], args[0].shape[1]
            if kwargs.get("use_input_stats", True) is False:
                return F.instance_norm(*args, **kwargs)
            weight, bias = kwargs.get("weight"), kwargs.get("bias")
            if len(args) > 3:
                weight = args[3]
            if len(args) > 4:
                bias = args[4]
            eps = kwargs.get("eps", 1e-5)
        n, c = x.shape[:2]
        g = x.reshape(n, groups, -1)
        centred = g - g.mean(-1, keepdim=True)
        var = centred.detach().pow(2).mean(-1, keepdim=True)
        y = _Gated.apply(centred, torch.rsqrt(var + eps)).reshape(x.shape)
        view = (1, c) + (1,) * (x.ndim - 2)
        if weight is not None:
            y = y * weight.reshape(view)
        return y if bias is None else y + bias.reshape(view)

    def _attention(self, q, k, v, mask=None, scale=None, is_causal=False,
                   dropout_p=0.0, training=False):
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        scores = self._mm(q, k.transpose(-2, -1)) * scale
        L, S = scores.shape[-2:]
        if is_causal:
            causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        if mask is not None:
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, float("-inf"))
            else:
                scores = scores + mask
        attn = torch.softmax(scores, dim=-1)
        if dropout_p and training:
            attn = F.dropout(attn, dropout_p)
        if self.attention == "cp":
            return torch.matmul(attn.detach(), v), attn
        return self._mm(attn, v), attn

    def _mm(self, a, b):
        out = torch.matmul(a, b)
        k = int(self.depends(a)) + int(self.depends(b))
        return _Scaled.apply(out, 1.0 / k) if k > 1 else out

    def _sdpa(self, query, key, value, attn_mask=None, dropout_p=0.0,
              is_causal=False, scale=None, enable_gqa=False):
        if enable_gqa and key.shape[-3] != query.shape[-3]:
            rep = query.shape[-3] // key.shape[-3]
            key = key.repeat_interleave(rep, -3)
            value = value.repeat_interleave(rep, -3)
        out, _ = self._attention(query, key, value, attn_mask, scale, is_causal,
                                 dropout_p, training=dropout_p > 0)
        return out

    def _mha(self, query, key, value, embed_dim_to_check, num_heads,
             in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
             dropout_p, out_proj_weight, out_proj_bias, training=True,
             key_padding_mask=None, need_weights=True, attn_mask=None,
             use_separate_proj_weight=False, q_proj_weight=None,
             k_proj_weight=None, v_proj_weight=None, static_k=None,
             static_v=None, average_attn_weights=True, is_causal=False):
        if (bias_k is not None or bias_v is not None or add_zero_attn
                or static_k is not None or static_v is not None):
            raise self._unsupported(F.multi_head_attention_forward,
                                    "bias_k / bias_v / add_zero_attn / static keys")
        batched = query.dim() == 3
        if not batched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
        L, n, e = query.shape
        S = key.shape[0]
        if use_separate_proj_weight:
            ws = (q_proj_weight, k_proj_weight, v_proj_weight)
        else:
            ws = in_proj_weight.chunk(3)
        bs = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
        q, k, v = (F.linear(t, w, b) for t, w, b in zip((query, key, value), ws, bs))
        h, d = num_heads, e // num_heads

        def heads(t, length):
            return t.reshape(length, n * h, d).transpose(0, 1).reshape(n, h, length, d)

        q, k, v = heads(q, L), heads(k, S), heads(v, S)
        mask = None
        if attn_mask is not None:
            mask = attn_mask if attn_mask.dim() == 2 else attn_mask.reshape(n, h, L, S)
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=q.dtype,
                                   device=q.device).masked_fill(mask, float("-inf"))
        if key_padding_mask is not None:
            pad = key_padding_mask.reshape(n, 1, 1, S)
            if pad.dtype == torch.bool:
                pad = torch.zeros(pad.shape, dtype=q.dtype,
                                  device=q.device).masked_fill(pad, float("-inf"))
            mask = pad if mask is None else mask + pad
        out, attn = self._attention(q, k, v, mask, None, is_causal and mask is None,
                                    dropout_p, training)
        out = out.permute(2, 0, 1, 3).reshape(L, n, e)
        out = F.linear(out, out_proj_weight, out_proj_bias)
        weights = None
        if need_weights:
            weights = attn.mean(1) if average_attn_weights else attn
        if not batched:
            out = out.squeeze(1)
            weights = None if weights is None else weights.squeeze(0)
        return out, weights


def _mark(t, attr="_lrp_softmax"):
    if torch.is_tensor(t):
        setattr(t, attr, True)


def mark_gate(t):
    _mark(t, "_lrp_gate")


def _constant_weights(t):
    """Attention weights detached (a constant for CP-LRP); others as they are."""
    return t.detach() if getattr(t, "_lrp_softmax", False) else t


def _flat(args, kwargs):
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a
