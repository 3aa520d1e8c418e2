"""
Cross-lab tumour typing from imaging mass spectra
=================================================

Two tumour types are told apart by a few sharp peptide peaks, but every
laboratory adds its own confounder: a large peak cluster whose height follows
the class inside that lab only. A network trained with no relevance penalty
leans on the confounders and fails on a lab it never saw; a relevance penalty
chosen by leave-one-lab-out cross-validation holds up, and its relevance is
sparser and sits on the class peaks.

The script simulates the data (no files needed), runs the grid search,
compares both models on the unseen lab, writes the relevance of the chosen
model as an imzML file (relevance "ion images"), and saves a figure.
Run it with ``python examples/ims_cross_lab.py [output_folder] [--quick]``
(``--quick``: a small smoke-test run). The DRR study
(``python -m sklearn_relevance.studies drr``) repeats this comparison over
data and network seeds and simulator settings.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_relevance import LeaveOneLabOut, RelevanceNetClassifier
from sklearn_relevance.ims import (
    MzResampler,
    TICNormalizer,
    make_multilab_spectra,
    read_imzml,
    write_imzml,
)
from sklearn_relevance.metrics import get_relevance_scorer, sparseness
from sklearn_relevance.modules import MLP

parser = argparse.ArgumentParser(description="Cross-lab tumour typing from imaging mass spectra")
parser.add_argument("output", nargs="?", type=Path, default=None)
parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
args = parser.parse_args()
out = args.output if args.output is not None else Path(tempfile.mkdtemp())
out.mkdir(parents=True, exist_ok=True)
N, BINS, EPOCHS, PENALTIES = ((150, 60, 3, [0.0, 0.03]) if args.quick
                              else (500, 250, 30, [0.0, 0.01, 0.03, 0.1]))

# %%
# Five labs; "lab4" is kept aside as the lab no model sees during training.
X, y, labs, info = make_multilab_spectra(N, 5, return_info=True, random_state=0)
mz = info["mz"]
test = labs == "lab4"
print(f"{len(y)} spectra x {X.shape[1]} m/z values; confounders at",
      {lab: np.round(p).tolist() for lab, p in info["confounders"].items()})

# %%
# TIC normalisation, resampling to 250 bins, and a relevance-regularised MLP.
pipe = Pipeline([
    ("tic", TICNormalizer(scale=float(BINS))),
    ("resample", MzResampler(mz=mz, n_bins=BINS)),
    ("net", RelevanceNetClassifier(MLP, max_epochs=EPOCHS, lr=0.003, batch_size=32,
                                   random_state=0)),
])
sparse = get_relevance_scorer("sparseness")


def scores(estimator, X_fold, y_fold):
    return {"accuracy": estimator.score(X_fold, y_fold),
            "sparseness": sparse(estimator, X_fold, y_fold)}


search = GridSearchCV(pipe, {"net__relevance_penalty": PENALTIES},
                      cv=LeaveOneLabOut(), scoring=scores, refit="accuracy")
search.fit(X[~test], y[~test], groups=labs[~test])
chosen = search.best_params_["net__relevance_penalty"]
print("left-out-lab accuracy per penalty:",
      dict(zip(search.cv_results_["param_net__relevance_penalty"],
               np.round(search.cv_results_["mean_test_accuracy"], 3))))

# %%
# Penalty 0 against the chosen penalty, on the unseen lab.
models = {0.0: clone(pipe).fit(X[~test], y[~test]), chosen: search.best_estimator_}
print(f"{'penalty':>8} {'unseen-lab accuracy':>20} {'sparseness':>11}")
for penalty, model in models.items():
    Xt = model[:-1].transform(X[test])
    rel = model[-1].explain(Xt)
    print(f"{penalty:>8g} {model.score(X[test], y[test]):>20.3f} "
          f"{np.nanmean(sparseness(rel)):>11.3f}")

# %%
# Relevance "ion images": one relevance spectrum per pixel, written as imzML
# (here the unseen lab's spectra laid out on a grid 10 wide), then read back.
best = models[chosen]
rel = best[-1].explain(best[:-1].transform(X[test])).astype(np.float32)
coords = np.column_stack([np.arange(len(rel)) % 10 + 1, np.arange(len(rel)) // 10 + 1])
write_imzml(out / "relevance_lab4.imzML", rel, coords, best.named_steps["resample"].mz_out_)
images = read_imzml(out / "relevance_lab4.imzML")
peak = info["class_peaks"][1][0]
print("relevance image at m/z", round(peak), "has shape",
      images.ion_image(peak, tol=max(20.0, float(np.diff(images.mz[:2])[0]))).shape)

# %%
# Class mean spectra of the unseen lab with the mean |relevance| of both models.
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

axis = best.named_steps["resample"].mz_out_
Xt = best[:-1].transform(X[test])
fig, ax = plt.subplots(figsize=(8, 4), dpi=150)
for c in (0, 1):
    ax.plot(axis, Xt[y[test] == c].mean(axis=0), lw=0.9, label=f"class {c}")
ax2 = ax.twinx()
for penalty, model in models.items():
    r = np.abs(model[-1].explain(Xt)).mean(axis=0)
    ax2.fill_between(axis, r / r.max(), alpha=0.3, step="mid",
                     label=f"|relevance|, penalty {penalty:g}")
for p in np.concatenate(list(info["class_peaks"].values())):
    ax.axvline(p, color="k", ls=":", lw=0.7)
ax.set_xlabel("m/z")
ax.legend(loc="upper left", fontsize=7)
ax2.legend(loc="upper right", fontsize=7)
fig.tight_layout()
fig.savefig(out / "relevance_spectrum.png")
print("figure and relevance images in", out)
