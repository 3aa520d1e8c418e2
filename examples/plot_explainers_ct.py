"""
Choosing an explainer: every method on a real CT slice
======================================================

A small CNN learns to tell CT slices with a synthetic hyperdense lesion from
slices without one. The slices are real (abdominal CT from AMOS and
TotalSegmentator, ``../shared/data/ct2d``); the lesion is a Gaussian blob put
at a random place inside the body, so we know where a faithful explanation
should point. Each explainer then explains the "lesion" output for one
slice with a new lesion inside the liver, and its map is drawn over the
slice with the lesion's outline. LRP and XRAI are included when their classes
are available.

Run ``python examples/plot_explainers_ct.py [--quick] [--output DIR]`` (about
a minute on 2 CPU cores; ``--quick`` trains briefly, a smoke test); the
figures go to ``DIR/explainers_<method>.png`` and
``DIR/explainers_overview.png`` (``explainers_ct_output`` by default; the
docs' figures are regenerated with ``--output docs/_static``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from sklearn_relevance.explainers import get_explainer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SKLEARN_RELEVANCE_DATA", ROOT.parent / "shared" / "data"))
OUT = Path("explainers_ct_output")  # never into docs/ unless asked with --output
SIZE = 64
SHOWN = "amos_0006_90"

# name -> (explainer name or object, title)
METHODS = {
    "gradient": ("saliency", "Gradient (|saliency|)"),
    "gradient_x_input": ("gradient_x_input", "Gradient x input"),
    "integrated_gradients": ("ig", "Integrated gradients"),
    "smoothgrad": ("smoothgrad", "SmoothGrad"),
    "smoothgrad_squared": ("smoothgrad_squared", "SmoothGrad$^2$"),
    "vargrad": ("vargrad", "VarGrad"),
    "guided_backprop": ("guided_backprop", "Guided backprop"),
    "gradcam": ("gradcam", "Grad-CAM"),
    "occlusion": ("occlusion", "Occlusion 8x8, stride 4"),
    "lrp": ("lrp_epsilon_plus", "LRP (epsilon-plus)"),
    "xrai": ("xrai", "XRAI"),
}


def load_slices():
    """CT slices resized to SIZE x SIZE in [0, 1], with their liver masks."""
    images, livers = {}, {}
    for path in sorted((DATA / "ct2d" / "images").glob("*.png")):
        img = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        t = torch.from_numpy(img)[None, None]
        images[path.stem] = F.interpolate(t, size=(SIZE, SIZE), mode="area")[0, 0]
        liver = DATA / "ct2d" / "masks" / f"{path.stem}_liver_000.png"
        if liver.exists():
            m = np.asarray(Image.open(liver).convert("L"), dtype=np.float32) / 255.0
            m = F.interpolate(torch.from_numpy(m)[None, None], size=(SIZE, SIZE),
                              mode="area")[0, 0]
            livers[path.stem] = m > 0.5
    return images, livers


def lesion(center, radius=3.0, amplitude=0.35):
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    d2 = (yy - center[0]) ** 2 + (xx - center[1]) ** 2
    return amplitude * torch.exp(-d2 / (2 * radius**2))


def make_data(images, n, gen):
    """Augmented slices; half of them carry a lesion inside the body."""
    names = list(images)
    X = torch.empty(n, 1, SIZE, SIZE)
    y = torch.arange(n) % 2
    for i in range(n):  # data generation only, not a hot path
        img = images[names[int(torch.randint(len(names), (1,), generator=gen))]]
        img = img * (0.9 + 0.2 * torch.rand(1, generator=gen))
        body = torch.nonzero(img > 0.3)
        if y[i]:
            center = body[int(torch.randint(len(body), (1,), generator=gen))]
            img = img + lesion(center.float())
        shift = torch.randint(-3, 4, (2,), generator=gen)
        img = torch.roll(img, (int(shift[0]), int(shift[1])), dims=(0, 1))
        X[i, 0] = img + 0.02 * torch.randn(SIZE, SIZE, generator=gen)
    return X, y


def make_net():
    """Convolutions, then global max pooling: a lesion detector anywhere."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )


def train(X, y, epochs=12):
    """A few epochs of Adam on the plain module (the estimator does the same)."""
    torch.manual_seed(0)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(X)).split(64):
            opt.zero_grad()
            F.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    return net.eval()


def explain_all(net, x, target, skip=()):
    maps, times = {}, {}
    for key, (name, title) in METHODS.items():
        if key in skip:
            continue
        try:
            explainer = get_explainer(name)
        except (ImportError, AttributeError, ModuleNotFoundError, ValueError) as exc:
            print(f"skipping {key}: {type(exc).__name__}: {exc}")
            continue
        if "random_state" in explainer.get_params():
            explainer.set_params(random_state=0)
        if key == "occlusion":
            explainer.set_params(window=8, stride=4)
        try:
            t0 = time.perf_counter()
            rel = explainer.explain(net, x, target)
            times[key] = time.perf_counter() - t0
        except Exception as exc:  # a method still under construction
            print(f"skipping {key}: {type(exc).__name__}: {exc}")
            continue
        maps[key] = rel.detach()[0, 0].numpy()
    return maps, times


def draw(ax, image, rel, outline, title):
    """The slice in gray, the map in color with opacity growing with |map|."""
    ax.imshow(image, cmap="gray")
    lim = float(np.abs(rel).max()) or 1.0
    signed = rel.min() < -1e-3 * lim
    cmap = plt.get_cmap("bwr" if signed else "hot")
    rgba = cmap((rel / lim + 1) / 2 if signed else rel / lim)
    rgba[..., 3] = np.clip(np.abs(rel) / lim, 0, 1) ** 0.7
    ax.imshow(rgba)
    ax.contour(outline, levels=[0.5], colors="lime", linewidths=0.8)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Every explainer on a real CT slice")
    parser.add_argument("--quick", action="store_true", help="brief training (smoke test)")
    parser.add_argument("--output", type=Path, default=OUT, help="folder for the figures")
    args = parser.parse_args(argv)
    out = args.output
    if not (DATA / "ct2d").is_dir():
        sys.exit(f"real data folder {DATA / 'ct2d'} is absent")
    images, livers = load_slices()
    gen = torch.Generator().manual_seed(0)
    X, y = make_data(images, 64 if args.quick else 800, gen)
    net = train(X, y, epochs=1 if args.quick else 12)
    X_test, y_test = make_data(images, 16 if args.quick else 200, gen)
    with torch.no_grad():
        acc = (net(X_test).argmax(1) == y_test).float().mean()
    print(f"held-out accuracy: {acc:.3f}")

    liver = torch.nonzero(livers[SHOWN]).float()
    center = liver[len(liver) // 3]
    blob = lesion(center)
    x = (images[SHOWN] + blob)[None, None]
    outline = (blob > 0.35 * 0.5).numpy()
    with torch.no_grad():
        print(f"p(lesion) on the shown slice: {net(x).softmax(1)[0, 1]:.3f}")
    maps, times = explain_all(net, x, 1, skip=("xrai",) if args.quick else ())
    out.mkdir(parents=True, exist_ok=True)
    image = x[0, 0].numpy()
    for key, rel in maps.items():
        fig, ax = plt.subplots(figsize=(2.6, 2.8), dpi=150)
        draw(ax, image, rel, outline, METHODS[key][1])
        fig.tight_layout()
        fig.savefig(out / f"explainers_{key}.png")
        plt.close(fig)
    cols = 4
    rows = -(-(len(maps) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), dpi=150)
    axes = axes.ravel()
    axes[0].imshow(image, cmap="gray")
    axes[0].contour(outline, levels=[0.5], colors="lime", linewidths=0.8)
    axes[0].set_title("CT slice + lesion", fontsize=8)
    axes[0].set_axis_off()
    for ax, (key, rel) in zip(axes[1:], maps.items()):
        draw(ax, image, rel, outline, METHODS[key][1])
    for ax in axes[len(maps) + 1:]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out / "explainers_overview.png")
    plt.close(fig)
    for key, seconds in times.items():
        print(f"{key:22s} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
