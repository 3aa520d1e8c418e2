"""XRAI per-image time against the PAIR ``saliency`` package, same base attribution.

    python benchmarks/bench_xrai.py [--n-images 16] [--size 64] [--repeats 3]

A batch of ``--n-images`` lesion images (1 x size x size, from
``make_lesion_images``) and a small CNN (``ImageCNN``). The base attribution
(integrated gradients, black and white baselines, 50 steps) is computed once
by our batched call and handed to both implementations (PAIR through its
``base_attribution`` argument), so the table times XRAI itself:

* ours, PAIR's regions (default ``segment_shape=(224, 224)``), one thread;
* the same with ``n_jobs=2`` segmentation threads;
* the same without the compiled Felzenszwalb kernel (scikit-image per scale,
  the fallback where the package was built without a C compiler);
* ours, ``segment_shape=None`` (segments at the image size; other regions);
* PAIR ``XRAI.GetMask`` per image.

Then a profile of where the time goes, stage by stage, for both: ours from
``cProfile`` (CPU clock) of one default ``explain`` call, by the functions
of each stage (the package's internals are not called directly), PAIR's by
calling its stages. One torch thread throughout (PAIR is single threaded
numpy); times are the best of ``--repeats`` runs. The run without the
compiled kernel is a child process in which the kernel's import fails, as
in a package built without a C compiler.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import pstats
import subprocess
import sys
import time

import numpy as np
import torch

# this checkout's package, whatever else is installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def best_of(fn, repeats):
    """Best wall-clock and CPU (this process) seconds of ``repeats`` runs."""
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return (wall, cpu), out


_KERNEL = "sklearn_relevance.explainers._felzenszwalb"  # the compiled C kernel


def _case(n, size):
    """Images, network, targets and XRAI's default base attribution (public API:
    integrated gradients from each image's minimum and from its maximum,
    averaged, as ``XRAI()`` computes it), with its time."""
    from sklearn_relevance.datasets import make_lesion_images
    from sklearn_relevance.explainers import IntegratedGradients
    from sklearn_relevance.modules import ImageCNN

    X, y, _ = make_lesion_images(n, shape=(size, size), random_state=0)
    X = torch.as_tensor(X)
    torch.manual_seed(0)
    module = ImageCNN((1, size, size), 2).eval()
    target = torch.as_tensor(y)

    def base_attribution():
        flat = X.reshape(n, -1)
        low = flat.amin(1).view(n, 1, 1, 1).expand_as(X)
        high = flat.amax(1).view(n, 1, 1, 1).expand_as(X)
        ig = IntegratedGradients(baselines=torch.cat([low, high]))
        attr = ig.explain(module, torch.cat([X, X]), torch.cat([target, target]))
        return (attr[:n] + attr[n:]) / 2

    t_base, base = best_of(base_attribution, 1)
    return X, module, target, base, t_base


def _without_kernel(n, size):
    """(wall, CPU) of one default XRAI call in a child whose kernel import fails."""
    code = (f"import sys; sys.modules[{_KERNEL!r}] = None; sys.path[:0] = {sys.path[:2]!r}\n"
            "import bench_xrai, json, torch\n"
            "torch.set_num_threads(1)\n"
            f"print(json.dumps(bench_xrai._child({n}, {size})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _child(n, size):
    from sklearn_relevance.explainers import XRAI

    X, module, target, base, _ = _case(n, size)
    return best_of(lambda: XRAI().explain(module, X, target, base_attribution=base), 1)[0]


def _profiled_stages(fn, names):
    """CPU seconds spent in the functions ``names`` (cumulative) during ``fn()``."""
    prof = cProfile.Profile(time.process_time)
    prof.runcall(fn)
    stats = pstats.Stats(prof).stats
    spent = dict.fromkeys(names, 0.0)
    for (_, _, func), (_, _, _, cumulative, _) in stats.items():
        if func in spent:
            spent[func] += cumulative
    return spent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import saliency.core as saliency
    from saliency.core import xrai as pair_xrai
    from skimage.morphology import dilation, disk
    from skimage.segmentation import felzenszwalb
    from skimage.transform import resize

    from sklearn_relevance.explainers import XRAI

    n, size, reps = args.n_images, args.size, args.repeats
    X, module, target, base, t_base = _case(n, size)
    xrai = XRAI()
    kernel = importlib.util.find_spec(_KERNEL) is not None
    images = [X[i].permute(1, 2, 0).double().numpy() for i in range(n)]
    attrs = [base[i].permute(1, 2, 0).double().numpy() for i in range(n)]

    rows = []
    t_ours, ours = best_of(lambda: xrai.explain(module, X, target, base_attribution=base), reps)
    rows.append(("ours, PAIR regions (default)", t_ours))
    par = XRAI(n_jobs=2)
    t_par, _ = best_of(lambda: par.explain(module, X, target, base_attribution=base), reps)
    rows.append(("ours, n_jobs=2 threads", t_par))
    rows.append(("ours, no C kernel (scikit-image)", _without_kernel(n, size)))
    fast = XRAI(segment_shape=None)
    t_fast, _ = best_of(lambda: fast.explain(module, X, target, base_attribution=base), reps)
    rows.append(("ours, segment_shape=None", t_fast))

    def run_pair():
        return [saliency.XRAI().GetMask(im, None, base_attribution=a)
                for im, a in zip(images, attrs)]

    t_pair, pair = best_of(run_pair, reps)
    rows.append(("PAIR saliency XRAI.GetMask", t_pair))
    err = max(float(np.abs(ours[i, 0].double().numpy() - pair[i]).max() /
                    np.abs(pair[i]).max()) for i in range(n))

    print(f"XRAI on {n} images 1x{size}x{size}, ImageCNN, torch "
          f"{torch.__version__}, 1 torch thread")
    print(f"base attribution (IG, 2 baselines x 50 steps, one batched call): "
          f"{t_base[0]:.3f} s wall ({1e3 * t_base[1] / n:.1f} ms CPU/image), "
          "not in the times below")
    print(f"max relative difference of our map from PAIR's: {err:.1e}")
    print(f"compiled Felzenszwalb kernel: {'yes' if kernel else 'NO'}; "
          "CPU = all threads of this process")
    print(f"{'implementation':34s} {'wall ms/img':>11s} {'CPU ms/img':>10s} "
          f"{'PAIR/this wall':>14s} {'PAIR/this CPU':>13s}")
    for name, (wall, cpu) in rows:
        print(f"{name:34s} {1e3 * wall / n:11.1f} {1e3 * cpu / n:10.1f} "
              f"{t_pair[0] / wall:14.2f} {t_pair[1] / cpu:13.2f}")

    # ---------------------------------------------------------- profile
    # ours: one default call, profiled (best of the repeats per stage)
    names = ("felzenszwalb_labels", "labels_to_masks", "dilate_disk", "greedy_regions")
    spent = dict.fromkeys(names, float("inf"))
    for _ in range(reps):
        got = _profiled_stages(
            lambda: xrai.explain(module, X, target, base_attribution=base), names)
        spent = {k: min(spent[k], got[k]) for k in names}
    stages = []

    def pair_labels(im):  # PAIR's _get_segments_felzenszwalb up to the unpacking
        small = pair_xrai._normalize_image(im, (-1.0, 1.0), (224, 224))
        scales = pair_xrai._FELZENSZWALB_SCALE_VALUES
        return [resize(felzenszwalb(small, scale=s, sigma=0.8, min_size=150),
                       im.shape[:2], order=0, preserve_range=True, mode="constant",
                       anti_aliasing=False).astype(int) for s in scales]

    t_pseg, pair_labels_out = best_of(lambda: [pair_labels(im) for im in images], reps)
    stages.append(("resize + Felzenszwalb x6 + resize back",
                   spent["felzenszwalb_labels"], t_pseg[1]))

    def pair_unpack_dilate():
        out = []
        for segs in pair_labels_out:
            masks = pair_xrai._unpack_segs_to_masks(segs)
            out.append([dilation(m, footprint=disk(5)) for m in masks])
        return out

    t_pud, pair_masks = best_of(pair_unpack_dilate, reps)
    stages.append(("unpack + dilate masks",
                   spent["labels_to_masks"] + spent["dilate_disk"], t_pud[1]))
    attr2d = [a.max(-1) for a in attrs]
    t_pg, _ = best_of(lambda: [pair_xrai.XRAI._xrai(a, m) for a, m in
                               zip(attr2d, pair_masks)], reps)
    stages.append(("greedy region selection", spent["greedy_regions"], t_pg[1]))
    n_masks = [len(m) for m in pair_masks]
    print(f"\nprofile, CPU time ({min(n_masks)}-{max(n_masks)} candidate masks per image "
          "in PAIR's segmentation; ours: cProfile of one explain call, by stage function)")
    print(f"{'stage':52s} {'ours ms/img':>11s} {'PAIR ms/img':>11s} {'ratio':>7s}")
    for name, ours_t, pair_t in stages:
        print(f"{name:52s} {1e3 * ours_t / n:11.1f} {1e3 * pair_t / n:11.1f} "
              f"{pair_t / ours_t:7.1f}")


if __name__ == "__main__":
    main()
