"""Explainers at clinical image sizes against captum (and LRP against zennit).

A ResNet-18-like 2D network (BatchNorm, residual blocks) on 3 x 224 x 224
images and a 3D CNN (``ImageCNN``, BatchNorm) on 1 x 64^3 volumes, in eval
mode with BatchNorm statistics set away from the identity. For integrated
gradients, SmoothGrad, occlusion, LRP (epsilon-plus) and Grad-CAM it times
``estimator.explain`` at its default settings (the explainer's default pass
sizes, the estimator's cached inference copy) against captum at its default
and at the best of a few ``internal_batch_size`` values (for SmoothGrad
``nt_samples_batch_size``, for occlusion ``perturbations_per_eval``), and LRP
against zennit. Ours and the peer run interleaved (ours, peer, ours, ...) so
that the load of the shared machine hits both alike; each figure is the best
of ``--repeat`` runs and the ratio is ours / peer.

Values are compared in the same run (max |difference| / max |value|):
captum's IG, occlusion and Grad-CAM; for SmoothGrad captum's ``Saliency``
averaged over the same noisy inputs as ours (``NoiseTunnel`` draws its own
noise); zennit's relevance for LRP.

Times are taken with the ordinary allocator. Peak memory is measured in a
child process (one per case) in which glibc is told to return large blocks
on free, so that each call is measured on its own: the rise of the peak
resident set size over the process before the call (the peak is reset
through ``/proc/self/clear_refs``), or ``torch.cuda.max_memory_allocated``
on CUDA. (Timing under that allocator setting, as an earlier version of
this script did, slows every call by page faults, ours and the peer's
alike: about 1.6x at 224 x 224.)

``--cases mlp20000 --only IG SmoothGrad`` times a spectrum MLP (20,000
features, hidden layers of 512 and 64, 200 spectra), whose wide first layer
integrated gradients and SmoothGrad run once per spectrum through the split
input layer (see ``sklearn_relevance.inference``).

``--profile`` splits one call of ours and of the peer's best setting into
time in convolutions and the rest; ``--ablation`` times IG and SmoothGrad
on the inference copy without the input-layer split, with it, and with the
split trunk's rewrites (``inference_copy(split_stem=..., trunk_rewrites=...)``).

Run ``python benchmarks/bench_clinical_sizes.py`` (about 5 minutes on 2 CPU
cores; ``--quick`` about 2, ``--full`` adds 4 images / volumes per batch,
the inference-copy breakdown, and the memory of a 512 x 512 image and a
128^3 volume, which ``--large-memory --cases`` measures alone). CUDA is
used when present (``--device`` overrides).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

from pathlib import Path

# this checkout's package, whatever else is installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import _timing  # noqa: E402

warnings.filterwarnings("ignore")

# glibc: return freed blocks above 128 KiB to the system at once (so the peak
# of one call does not hide in memory kept from an earlier one)
_MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


# --------------------------------------------------------------------------
# zennit needs two torchvision classes at import: the tests' stub gives them
# --------------------------------------------------------------------------
def _stub_torchvision():
    threads = torch.get_num_threads()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import conftest  # noqa: F401  (stubs torchvision on import; sets one thread)

    torch.set_num_threads(threads)


# --------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------
class Block(nn.Module):
    """ResNet basic block; BatchNorms inside Sequentials (foldable)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                          nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out else nn.Identity())
        self.out = nn.ReLU()

    def forward(self, x):
        return self.out(self.body(x) + self.shortcut(x))


def resnet18_like(in_channels=3, n_outputs=2):
    """ResNet-18's layout: a 7x7 stem, max pooling, 8 basic blocks, average pooling."""
    layers = [nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
              nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    c_in = 64
    for c_out, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1),
                          (512, 2), (512, 1)]:
        layers.append(Block(c_in, c_out, stride))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, n_outputs)]
    return nn.Sequential(*layers)


def _with_statistics(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return module.eval()


def make_case(name, n, device):
    """``(label, estimator, module, X, target, gradcam layer name, sizes)``."""
    from sklearn_relevance import RelevanceNetClassifier
    from sklearn_relevance.modules import ImageCNN

    torch.manual_seed(0)
    if name.startswith("mlp"):
        # a spectrum classifier: 100 spectra per image in the batch
        features, n = int(name[len("mlp"):]), 100 * n
        shape, layer = (features,), None
        module = nn.Sequential(nn.Linear(features, 512), nn.ReLU(), nn.Linear(512, 64),
                               nn.ReLU(), nn.Linear(64, 2))
        label = f"spectrum MLP (512, 64), {n} x {features:,}"
    elif name.startswith("resnet"):
        size = int(name[len("resnet"):])
        shape, module, layer = (3, size, size), resnet18_like(), "8"
        label = f"ResNet-18-like, {n} x 3 x {size} x {size}"
    else:
        size = int(name[len("cnn3d"):])
        shape = (1, size, size, size)
        module, layer = ImageCNN(shape, 2), "features.12"
        label = f"3D CNN (ImageCNN), {n} x 1 x {size}^3"
    X = torch.rand(n, *shape)
    target = torch.arange(n) % 2
    # a fitted estimator around this module (no epoch: weights stay as built)
    est = RelevanceNetClassifier(module, max_epochs=0, device=device, random_state=0)
    est.fit(torch.rand(2, *shape).numpy(), np.array([0, 1]))
    module = _with_statistics(est.module_)
    return label, est, module, X.to(device), target.to(device), layer


# --------------------------------------------------------------------------
# measurement helpers
# --------------------------------------------------------------------------
def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _status_mib(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib(fn, device):
    """Rise of the peak memory over the memory before ``fn()``."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return float("nan")
    before = _status_mib("VmRSS")
    fn()
    return _status_mib("VmHWM") - before


def noise_stdev(X):
    """SmoothGrad's noise scale in every case: 15% of the batch's range, one
    ``stdevs`` that both libraries take."""
    return 0.15 * float(X.amax() - X.amin())


def rel_diff(a, b):
    a = torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a.detach().cpu())
    b = torch.as_tensor(np.asarray(b) if not torch.is_tensor(b) else b.detach().cpu())
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def best_of(fn, repeats):
    """Best seconds of ``repeats`` calls by the chosen clock, and the last result."""
    clock = time.perf_counter if CLOCK[0] == "wall" else time.process_time
    return _timing.best_of(fn, repeats, clock)


CLOCK = ["wall"]


def timed(fn, device):
    def run():
        out = fn()
        _sync(device)
        return out
    return run


# --------------------------------------------------------------------------
# the methods: ours (estimator.explain, defaults) and the peer's settings
# --------------------------------------------------------------------------
def methods(case, args):
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import LayerAttribution, LayerGradCam, NoiseTunnel, Saliency
    from captum.attr import Occlusion as CaptumOcclusion

    from sklearn_relevance.explainers import (
        LRP,
        GradCAM,
        IntegratedGradients,
        Occlusion,
        SmoothGrad,
    )

    label, est, module, X, t, layer = case
    X_np, t_np = X.cpu().numpy(), t.cpu().numpy()
    n, steps, samples = len(X), args.steps, args.samples
    spatial = X.shape[2:]
    window = tuple(max(s // 4, 1) for s in spatial)  # 4 windows per axis, stride = window
    stdev = noise_stdev(X)
    mode = "bilinear" if X.ndim == 4 else "trilinear"

    def ours(explainer):
        # one call over the whole batch (SmoothGrad noise is drawn per call)
        return lambda: est.explain(X_np, explainer=explainer, target=t_np, batch_size=-1)

    def captum_ig(ibs):
        return lambda: CaptumIG(module).attribute(X, target=t, n_steps=steps,
                                                  internal_batch_size=ibs)

    def captum_sg(per_pass):
        return lambda: NoiseTunnel(Saliency(module)).attribute(
            X, nt_samples=samples, stdevs=stdev, target=t, abs=False,
            nt_samples_batch_size=per_pass)

    def captum_occ(per_eval):
        return lambda: CaptumOcclusion(module).attribute(
            X, sliding_window_shapes=(X.shape[1],) + window, strides=(X.shape[1],) + window,
            target=t,
            perturbations_per_eval=per_eval)

    def captum_gradcam():
        def run():
            layer_module = dict(module.named_modules())[layer]
            cam = LayerGradCam(module, layer_module).attribute(
                X, target=t, relu_attributions=True)
            return LayerAttribution.interpolate(cam, spatial, mode).expand_as(X)
        return run

    def sg_reference():
        return saliency_on_our_noise(module, X, t, samples, stdev)

    def zennit_lrp():
        from zennit import rules as zr
        from conftest import zennit_residual_sums  # tests/ (stubs torchvision)
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.composites import LayerMapComposite
        from zennit.layer import Sum
        from zennit.types import AvgPool, Convolution

        composite = LayerMapComposite(
            [(Convolution, zr.ZPlus(1e-9, zero_params="bias")),
             (nn.Linear, zr.Epsilon(1e-6)), (AvgPool, zr.Norm(1e-9)), (Sum, zr.Norm(1e-9))],
            canonizers=[SequentialMergeBatchNorm(), zennit_residual_sums(Block)])

        def run():
            with composite.context(module) as modified:
                x = X.clone().requires_grad_(True)
                out = modified(x)
                onehot = torch.zeros_like(out)
                onehot[torch.arange(n), t] = 1.0
                (rel,) = torch.autograd.grad(out, x, grad_outputs=out.detach() * onehot)
            return rel
        return run

    rows_ig = sorted({r for r in (n, 2 * n, 5 * n, 10 * n) if r < n * steps})
    per_pass_sg = sorted({p for p in (1, 2, 5, 10) if p < samples})
    return [
        ("IG", f"{steps} steps", ours(IntegratedGradients(n_steps=steps)),
         ("captum default (one pass)", captum_ig(None)),
         [(f"internal_batch_size={r}", captum_ig(r)) for r in rows_ig], None),
        ("SmoothGrad", f"{samples} samples",
         ours(SmoothGrad(n_samples=samples, stdevs=stdev, random_state=0)),
         ("captum NoiseTunnel default (one pass)", captum_sg(None)),
         [(f"nt_samples_batch_size={p}", captum_sg(p)) for p in per_pass_sg],
         sg_reference),
        ("Occlusion", "window = 1/4 of each axis, stride = window",
         ours(Occlusion(window=window, stride=window)),
         ("captum default (1 window per pass)", captum_occ(1)),
         [(f"perturbations_per_eval={p}", captum_occ(p)) for p in (4, 16)], None),
        ("LRP epsilon-plus", "vs zennit", ours(LRP("epsilon_plus")),
         ("zennit (BatchNorm merged, residual sums as Sum layers)", zennit_lrp()), [], None),
        ("Grad-CAM", f"layer {layer!r}",
         ours(GradCAM(layer, interpolate_mode=mode)),
         ("captum LayerGradCam + interpolate", captum_gradcam()), [], None),
    ]


def _memory_process(flag, request):
    """Run this script with ``flag`` and ``request`` in a child process that
    returns freed blocks to the system at once (see the top)."""
    env = dict(os.environ, **{_MMAP_ENV: "131072"})
    return subprocess.run([sys.executable, os.path.abspath(__file__), flag,
                           json.dumps(request)], env=env, capture_output=True, text=True)


def memory_in_child(args, method, best_name, device):
    """Peak MiB of ours, the peer's default and its best setting, each call
    measured in a fresh child process that returns freed blocks at once."""
    request = {"case": args.case_name, "n": args.n, "method": method, "best": best_name,
               "device": device, "threads": torch.get_num_threads(),
               "steps": args.steps, "samples": args.samples}
    done = _memory_process("--memory-child", request)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return [float("nan")] * 3
    return json.loads(done.stdout.strip().splitlines()[-1])


def _memory_child(request):
    """The child side of :func:`memory_in_child`: prints a JSON list."""
    torch.set_num_threads(request["threads"])
    _stub_torchvision()
    args = argparse.Namespace(steps=request["steps"], samples=request["samples"])
    device = request["device"]
    case = make_case(request["case"], request["n"], device)
    for name, _, ours, default, options, _ in methods(case, args):
        if name != request["method"]:
            continue
        chosen = dict(options + [default])[request["best"]]
        fns = [timed(f, device) for f in (ours, default[1], chosen)]
        fns[0]()  # warm-up: the cached inference copy and the pass-size probe
        print(json.dumps([peak_mib(fn, device) for fn in fns]))
        return
    raise ValueError(request["method"])


def run_case(case, args, device, out):
    from sklearn_relevance.inference import cached_inference_copy

    label = case[0]
    X = case[3]
    out(f"\n## {label}\n")
    start = time.perf_counter()
    # the copy explain reuses at these sizes (made here, so not in the times)
    fast = cached_inference_copy(case[2], X)
    out(f"inference copy: {'made' if fast is not case[2] else 'not made'} in "
        f"{time.perf_counter() - start:.2f} s (once per fitted network)\n")
    _accuracy(case, out)
    out("| method | ours (s) | peer, default (s) | peer, best setting | peer, best (s) "
        "| ours / best | ours / default | max rel. diff | peak MiB ours / default / best |")
    out("|---|---:|---:|---|---:|---:|---:|---:|---|")
    profiled = []
    for name, what, ours, default, options, reference in methods(case, args):
        if args.only and name not in args.only:
            continue
        ours_fn, default_fn = timed(ours, device), timed(default[1], device)
        ours_fn()  # warm-up (and the cached copy)
        # the peer's best setting: one timed call of each option
        best_name, best_fn, best_t = default[0], default_fn, None
        t_default, _ = best_of(default_fn, 1)
        best_t = t_default
        for opt_name, opt in options:
            t_opt, _ = best_of(timed(opt, device), 1)
            if t_opt < best_t:
                best_name, best_fn, best_t = opt_name, timed(opt, device), t_opt
        # interleaved repeats: ours, then the peer's best setting
        t_ours = float("inf")
        for _ in range(args.repeat):
            a, result = best_of(ours_fn, 1)
            t_ours = min(t_ours, a)
            b, peer_result = best_of(best_fn, 1)
            best_t = min(best_t, b)
        t_def, t_best = t_default, best_t
        diff = rel_diff(result, reference() if reference else peer_result)
        mem = ((float("nan"),) * 3 if args.no_memory
               else memory_in_child(args, name, best_name, device))
        out(f"| {name} ({what}) | {t_ours:.2f} | {t_def:.2f} | {best_name} | "
            f"{t_best:.2f} | {t_ours / t_best:.2f} | {t_ours / t_def:.2f} | {diff:.1e} | "
            f"{mem[0]:.0f} / {mem[1]:.0f} / {mem[2]:.0f} |")
        if args.profile and device == "cpu":
            profiled.append((name, ours_fn, best_name, best_fn))
    for name, ours_fn, best_name, best_fn in profiled:
        _convolution_share(name, ours_fn, best_name, best_fn, out)
    if args.ablation:
        _ablation(case, args, device, out)
    if args.full:
        _breakdown(case, args, device, out)


def _accuracy(case, out):
    """IG (10 steps) and SmoothGrad (5 noise samples) of ours (``estimator.explain``,
    float32) and captum's (float32), each against the float64 result, on up
    to 4 samples: max |difference| / max |value| and mean |difference| /
    max |value|.

    A max-pooling window whose two largest values lie within a rounding of
    each other sends its gradient to one pixel or its neighbour depending on
    the last bit, so any float32 computation is off the float64 one by more
    than its rounding; the goal is ours no worse than 1.5x captum's own.
    """
    import copy

    from captum.attr import IntegratedGradients as CaptumIG

    from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad

    _, est, module, X, t, _ = case
    X2, t2 = X[:4], t[:4]
    m64 = copy.deepcopy(module).double()
    X64 = X2.double()

    def errors(got, exact):
        got, exact = torch.as_tensor(got).double().cpu(), exact.double().cpu()
        scale = float(exact.abs().max())
        return (float((got - exact).abs().max()) / scale,
                float((got - exact).abs().mean()) / scale)

    exact = CaptumIG(m64).attribute(X64, target=t2, n_steps=10)
    ours = est.explain(X2.cpu().numpy(), explainer=IntegratedGradients(n_steps=10),
                       target=t2.cpu().numpy())
    theirs = CaptumIG(module).attribute(X2, target=t2, n_steps=10)
    (om, oa), (cm, ca) = errors(ours, exact), errors(theirs, exact)
    out(f"IG accuracy ({len(X2)} samples, 10 steps) against float64, max / mean |difference| "
        f"/ max |value|: ours {om:.1e} / {oa:.1e}, captum float32 {cm:.1e} / {ca:.1e}; "
        f"ratio {om / cm:.2f} / {oa / ca:.2f}")
    samples, stdev = 5, noise_stdev(X2)
    # the float64 reference on the very noisy inputs ours draws (in float32)
    exact = saliency_on_our_noise(m64, X64, t2, samples, stdev, noise_like=X2)
    ours = est.explain(X2.cpu().numpy(), explainer=SmoothGrad(
        n_samples=samples, stdevs=stdev, random_state=0), target=t2.cpu().numpy())
    theirs = saliency_on_our_noise(module, X2, t2, samples, stdev)
    (om, oa), (cm, ca) = errors(ours, exact), errors(theirs, exact)
    out(f"SmoothGrad accuracy ({len(X2)} samples, {samples} noise samples) against float64: "
        f"ours {om:.1e} / {oa:.1e}, captum float32 {cm:.1e} / {ca:.1e}; "
        f"ratio {om / cm:.2f} / {oa / ca:.2f}")
    ig64, sg64 = _float64_agreement(module, X2, t2)
    out(f"float64, the path explain takes (inference copy, split stem) against captum in "
        f"float64: IG {ig64:.1e}, SmoothGrad (5 noise samples) {sg64:.1e}\n")


def _float64_agreement(module, X, t):
    """Ours on the float64 network's inference copy (BatchNorm folded,
    channels-last, the input layer split off: what ``explain`` runs) against
    captum on the float64 network: IG (10 steps) and SmoothGrad (5 noise
    samples, captum's ``Saliency`` on our noisy inputs)."""
    import copy

    from captum.attr import IntegratedGradients as CaptumIG

    from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad
    from sklearn_relevance.inference import inference_copy, no_inference_copy

    m64 = copy.deepcopy(module).double().eval()
    X64 = X.double()
    fast = inference_copy(m64, X64)
    with no_inference_copy():  # the copy as made (no copy of the copy)
        ig = rel_diff(IntegratedGradients(n_steps=10).explain(fast, X64, t),
                      CaptumIG(m64).attribute(X64, target=t, n_steps=10))
        samples, stdev = 5, noise_stdev(X)
        ours = SmoothGrad(n_samples=samples, stdevs=stdev, random_state=0).explain(
            fast, X64, t)
    return ig, rel_diff(ours, saliency_on_our_noise(m64, X64, t, samples, stdev))


def saliency_on_our_noise(module, X, t, samples, stdev, noise_like=None):
    """captum's ``Saliency`` averaged over the very noisy inputs that our
    ``SmoothGrad(random_state=0)`` draws (``NoiseTunnel`` draws its own);
    the noise drawn as for ``noise_like`` (default ``X``: a float32 batch's
    noise for a float64 reference)."""
    from captum.attr import Saliency

    from sklearn_relevance.explainers import SmoothGrad

    ours = SmoothGrad(n_samples=samples, stdevs=stdev, random_state=0)
    total = torch.zeros_like(X)
    for j in range(samples):
        eps = ours.standard_noise(X if noise_like is None else noise_like, j)
        total += Saliency(module).attribute(X + stdev * eps.to(X), target=t, abs=False)
    return total / samples


_CONVOLUTION_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward",
                    "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward",
                    "aten::slow_conv3d_forward")


def convolution_seconds(run):
    """``(convolutions, everything else)``: CPU seconds of one ``run()``
    under ``torch.profiler`` (the calling thread's time per operator, its own
    overhead included), the convolutions forward and backward."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    conv = sum(e.self_cpu_time_total for e in events if e.key in _CONVOLUTION_OPS) / 1e6
    return conv, total - conv


def _convolution_share(name, ours_fn, best_name, best_fn, out):
    """CPU time of one call of ours and of the peer's best setting, split into
    convolutions and everything else (:func:`convolution_seconds`)."""
    (c0, r0), (c1, r1) = convolution_seconds(ours_fn), convolution_seconds(best_fn)
    out(f"- {name}, profiled: ours {c0:.2f} s in convolutions + {r0:.2f} s else; "
        f"captum ({best_name}) {c1:.2f} s + {r1:.2f} s")


def _breakdown(case, args, device, out):
    """IG on the module itself and on the copy, in 1-row passes and in the
    explainer's own (default) pass sizes (``internal_batch_size=None``)."""
    from sklearn_relevance.explainers import IntegratedGradients
    from sklearn_relevance.inference import cached_inference_copy, no_inference_copy

    _, _, module, X, t, _ = case
    fast = cached_inference_copy(module, X)
    out(f"\nIG ({args.steps} steps) breakdown: network x pass size")
    out("| network | rows per pass | seconds |")
    out("|---|---:|---:|")
    for label, net in (("module", module), ("inference copy", fast)):
        for r in (1, None):
            def run(net=net, r=r):
                with no_inference_copy():  # each network as given
                    return IntegratedGradients(n_steps=args.steps, internal_batch_size=r
                                               ).explain(net, X, t)
            s, _ = best_of(timed(run, device), args.repeat)
            out(f"| {label} | {'default' if r is None else r} | {s:.2f} |")


def _ablation(case, args, device, out):
    """IG and SmoothGrad (default settings) on three inference copies:
    without the input-layer split, with it, and with the trunk rewrites too
    (the default), timed interleaved."""
    from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad
    from sklearn_relevance.inference import inference_copy, no_inference_copy

    _, _, module, X, t, _ = case
    variants = [
        ("inference copy, whole network", inference_copy(module, X, split_stem=False)),
        ("input layer split off", inference_copy(module, X, trunk_rewrites=False)),
        ("split, trunk rewrites (default)", inference_copy(module, X)),
    ]
    stdev = noise_stdev(X)
    out(f"\nablation (best of {max(3, args.repeat)}, interleaved):")
    out("| explainer | " + " | ".join(label for label, _ in variants) + " |")
    out("|---|" + "---:|" * len(variants))
    for name, explainer in (
            (f"IG ({args.steps} steps)", IntegratedGradients(n_steps=args.steps)),
            (f"SmoothGrad ({args.samples} samples)",
             SmoothGrad(n_samples=args.samples, stdevs=stdev, random_state=0))):
        def run(net):
            with no_inference_copy():  # each variant as made
                return explainer.explain(net, X, t)

        fns = [timed(lambda net=net: run(net), device) for _, net in variants]
        for fn in fns:
            fn()  # warm-up
        best = [float("inf")] * len(fns)
        for _ in range(max(3, args.repeat)):
            for i, fn in enumerate(fns):
                best[i] = min(best[i], best_of(fn, 1)[0])
        out(f"| {name} | " + " | ".join(f"{b:.2f} s" for b in best) + " |")


def memory_only(name, n, args, device, out):
    """Peak memory of IG and SmoothGrad, ours against captum's default."""
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import NoiseTunnel, Saliency

    from sklearn_relevance.explainers import IntegratedGradients, SmoothGrad

    case = make_case(name, n, device)
    label, est, module, X, t, _ = case
    X_np, t_np = X.cpu().numpy(), t.cpu().numpy()
    stdev = noise_stdev(X)
    steps = max(args.steps // 2, 2)
    est.explain(X_np[:1], explainer="gradient", target=t_np[:1])  # warm-up
    rows = [
        (f"IG {steps} steps",
         lambda: est.explain(X_np, explainer=IntegratedGradients(n_steps=steps), target=t_np),
         lambda: CaptumIG(module).attribute(X, target=t, n_steps=steps)),
        (f"SmoothGrad {steps} samples",
         lambda: est.explain(X_np, explainer=SmoothGrad(n_samples=steps, stdevs=stdev,
                                                       random_state=0), target=t_np),
         lambda: NoiseTunnel(Saliency(module)).attribute(
             X, nt_samples=steps, stdevs=stdev, target=t, abs=False)),
    ]
    out(f"\npeak memory, {label}: ours (default) / captum (default)")
    for what, ours, theirs in rows:
        a = peak_mib(timed(ours, device), device)
        b = peak_mib(timed(theirs, device), device)
        out(f"- {what}: {a:.0f} MiB / {b:.0f} MiB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 image / volume, fewer steps")
    parser.add_argument("--full", action="store_true",
                        help="4 images / volumes, breakdown, 512^2 and 128^3 memory")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory children (timings and values only)")
    parser.add_argument("--n", type=int, default=None,
                        help="images / volumes per batch (default 2; 1 with --quick, 4 with --full)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="method names to run (IG, SmoothGrad, Occlusion, ...)")
    parser.add_argument("--cases", nargs="*", default=["resnet224", "cnn3d64"])
    parser.add_argument("--large-memory", action="store_true",
                        help="peak memory on a 512 x 512 image and a 128^3 volume "
                             "(also part of --full)")
    parser.add_argument("--ablation", action="store_true",
                        help="IG and SmoothGrad without the input-layer split and without "
                             "the trunk rewrites")
    parser.add_argument("--profile", action="store_true",
                        help="after each table: the time in convolutions and the rest (CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this process's CPU time (steadier on a loaded machine)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--memory-only-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return _memory_child(json.loads(args.memory_child))
    if args.memory_only_child:
        request = json.loads(args.memory_only_child)
        torch.set_num_threads(request["threads"])
        _stub_torchvision()
        args.steps = request["steps"]
        return memory_only(request["name"], 1, args, request["device"], print)
    CLOCK[0] = args.clock
    if args.threads:
        torch.set_num_threads(args.threads)
    _stub_torchvision()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    n = args.n or (1 if args.quick else (4 if args.full else 2))
    args.steps = 10 if args.quick else 20
    args.samples = 10 if args.quick else 20
    if args.repeat is None:
        args.repeat = 1 if args.quick else 2
    from sklearn_relevance.inference import memory_budgets

    budget = memory_budgets()["pass_activations_cpu" if device == "cpu"
                              else "pass_activations_accelerator"] / 2**20
    import captum

    print(f"torch {torch.__version__}, captum {captum.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock, load average {os.getloadavg()[0]:.1f}; "
          f"pass budget {budget:.0f} MiB; command: python benchmarks/bench_clinical_sizes.py "
          f"{' '.join(sys.argv[1:])}", flush=True)

    def out(line):
        print(line, flush=True)

    args.n = n
    for name in args.cases:
        args.case_name = name
        run_case(make_case(name, n, device), args, device, out)
    if args.full or args.large_memory:
        for name in ("resnet512", "cnn3d128"):
            request = {"name": name, "device": device, "threads": torch.get_num_threads(),
                       "steps": args.steps}
            done = _memory_process("--memory-only-child", request)
            out(done.stdout.rstrip() if done.returncode == 0 else done.stderr[-2000:])
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
