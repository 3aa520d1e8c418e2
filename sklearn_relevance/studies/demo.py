"""The cross-lab tumour-typing demo behind ``python -m sklearn_relevance demo``.

Simulated (or the user's imzML) spectra from several labs go through
``Pipeline(TICNormalizer, MzResampler, RelevanceNetClassifier)``; the
relevance penalty is chosen by GridSearchCV with leave-one-lab-out, and the
chosen model is compared with penalty 0 on a lab neither saw: accuracy and
relevance sparseness, a figure of the class mean spectra with relevance
overlaid, and (for imzML input) relevance ion images written as imzML.
"""

from __future__ import annotations

import csv
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._labelled_imzml import load_labelled_imzml

__all__ = ["DemoConfig", "ProgressLog", "check_config", "check_labelled_data",
           "fit_and_compare", "load_labelled_imzml", "run_demo"]

DEFAULT_PENALTIES = (0.0, 0.01, 0.03, 0.1)


@dataclass
class DemoConfig:
    """Options of the demo (the CLI's flags)."""

    output: Path = Path("relevance_demo")
    quick: bool = False
    network: str = "mlp"
    penalties: tuple = DEFAULT_PENALTIES
    n_samples: int = 500
    n_labs: int = 5
    n_bins: int = 250
    max_epochs: int = 30
    seed: int = 0
    n_jobs: int = 1
    device: str = "cpu"
    test_lab: str | None = None
    verbose: bool = True
    imzml: list = field(default_factory=list)
    labels: Path | None = None

    def __post_init__(self):
        self.output = Path(self.output)
        self.penalties = tuple(float(p) for p in self.penalties)
        if self.quick:  # a smoke-test size: small data, two penalties, few epochs
            self.n_samples = min(self.n_samples, 200)
            if self.penalties == DEFAULT_PENALTIES:
                self.penalties = (0.0, 0.03)
            self.max_epochs = min(self.max_epochs, 20)
            self.n_bins = min(self.n_bins, 100)


def check_config(cfg):
    """Refuse demo options that cannot work, before any data is read or trained.

    Raises
    ------
    ValueError
        Naming the option (and its command-line flag), what was expected and
        what was got.
    """
    from sklearn_relevance.checks import device_problem

    penalties = np.asarray(cfg.penalties, dtype=np.float64)
    if penalties.size == 0 or not np.isfinite(penalties).all() or (penalties < 0).any():
        raise ValueError(
            "The 'penalties' option (--penalties) must be one or more finite, "
            f"non-negative numbers. Got {list(cfg.penalties)} instead."
        )
    if cfg.network not in ("mlp", "cnn"):
        raise ValueError(
            "The 'network' option (--network) must be 'mlp' or 'cnn'. Got "
            f"{cfg.network!r} instead."
        )
    for name, flag in (("n_samples", "--n-samples"), ("n_labs", "--n-labs"),
                       ("n_bins", "--bins"), ("max_epochs", "--epochs")):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"The '{name}' option ({flag}) must be a positive int. Got {value!r} "
                "instead."
            )
    if not cfg.imzml and cfg.n_labs < 2:
        raise ValueError(
            f"The 'n_labs' option (--n-labs) must be at least 2. Got {cfg.n_labs} instead."
        )
    if isinstance(cfg.n_jobs, bool) or not isinstance(cfg.n_jobs, (int, np.integer)) \
            or cfg.n_jobs == 0:
        raise ValueError(
            "The 'n_jobs' option (--n-jobs) must be a non-zero int (-1: all cores). "
            f"Got {cfg.n_jobs!r} instead."
        )
    problem = device_problem(cfg.device)
    if problem is not None:
        raise ValueError(
            f"The 'device' option (--device) is {cfg.device!r}, but {problem}. Use cpu "
            "or a device this machine has."
        )
    if cfg.imzml and cfg.labels is None:
        raise ValueError("--imzml needs --labels CSV (columns file, label, lab[, x, y]).")


def check_labelled_data(y, labs, test_lab=None):
    """Refuse labelled spectra the leave-one-lab-out comparison cannot use.

    At least 2 labs, at least 2 classes in every lab (each lab is scored on
    the task in turn), and ``test_lab`` (when given) one of the labs.
    """
    names = sorted(set(np.asarray(labs).tolist()))
    if len(names) < 2:
        raise ValueError(
            f"The demo needs spectra from at least 2 labs; got {len(names)} ({names})."
        )
    single = {}
    for lab in names:
        classes = sorted(set(np.asarray(y)[np.asarray(labs) == lab].tolist()))
        if len(classes) < 2:
            single[lab] = classes[0]
    if single:
        shown = ", ".join(f"{lab!r} (only {c!r})" for lab, c in list(single.items())[:5])
        raise ValueError(
            "Every lab must hold spectra of at least 2 classes (leave-one-lab-out "
            f"scores each lab on the task); {len(single)} of {len(names)} labs hold one "
            f"class only: {shown}."
        )
    if test_lab is not None and len(names) >= 3 and test_lab not in names:
        raise ValueError(f"--test-lab {test_lab!r} is none of the labs {names}.")


class ProgressLog:
    """Timed progress messages of the demo (silent unless ``verbose``)."""

    def __init__(self, verbose):
        self.verbose = verbose
        self.start = time.perf_counter()

    def __call__(self, msg):
        if self.verbose:
            print(f"[demo {time.perf_counter() - self.start:6.1f}s] {msg}", flush=True)


def make_pipeline(mz, cfg):
    """``TICNormalizer -> MzResampler -> RelevanceNetClassifier``."""
    from sklearn.pipeline import Pipeline

    from sklearn_relevance import RelevanceNetClassifier
    from sklearn_relevance.ims import MzResampler, TICNormalizer
    from sklearn_relevance.modules import MLP, SpectrumCNN

    module = SpectrumCNN if cfg.network == "cnn" else MLP
    net = RelevanceNetClassifier(
        module, max_epochs=cfg.max_epochs, lr=0.003 if cfg.network == "mlp" else 0.01,
        batch_size=32, random_state=cfg.seed, device=cfg.device,
    )
    return Pipeline([
        ("tic", TICNormalizer(scale=float(cfg.n_bins))),
        ("resample", MzResampler(mz=mz, n_bins=cfg.n_bins)),
        ("net", net),
    ])


def fit_and_compare(X, y, labs, mz, cfg, log):
    """Grid search on the training labs, then penalty 0 vs chosen on the test lab."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from sklearn_relevance.metrics import get_relevance_scorer, sparseness
    from sklearn_relevance.model_selection import LeaveOneLabOut

    names = sorted(set(labs.tolist()))
    check_labelled_data(y, labs, cfg.test_lab)
    scoring = {"accuracy": "accuracy", "sparseness": get_relevance_scorer("sparseness")}
    pipe = make_pipeline(mz, cfg)
    grid = {"net__relevance_penalty": list(cfg.penalties)}
    nested = len(names) >= 3
    if nested:
        test_lab = cfg.test_lab if cfg.test_lab is not None else names[-1]
        if test_lab not in names:
            raise ValueError(f"--test-lab {test_lab!r} is none of the labs {names}.")
        train = labs != test_lab
    else:
        log("only 2 labs: the scores below are leave-one-lab-out scores of the search "
            "itself (optimistic: the penalty was chosen on them)")
        test_lab, train = None, np.ones(len(y), bool)
    n_fits = (len(set(labs[train].tolist())) * len(cfg.penalties)) + 1
    log(f"grid search over relevance_penalty {list(cfg.penalties)} with leave-one-lab-out "
        f"on {sorted(set(labs[train].tolist()))} ({n_fits} fits of {cfg.network.upper()})")
    search = GridSearchCV(pipe, grid, cv=LeaveOneLabOut(), scoring=scoring,
                          refit="accuracy", n_jobs=cfg.n_jobs, error_score="raise",
                          verbose=2 if cfg.verbose else 0)  # one line per fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sparseness of all-zero maps
        search.fit(X[train], y[train], groups=labs[train])
    chosen = float(search.best_params_["net__relevance_penalty"])
    res = search.cv_results_
    for p, acc, rank in zip(res["param_net__relevance_penalty"], res["mean_test_accuracy"],
                            res["rank_test_accuracy"]):
        log(f"  penalty {float(p):<6g} left-out-lab accuracy {acc:.3f}"
            + ("  <- chosen" if rank == 1 and float(p) == chosen else ""))
    models = {chosen: search.best_estimator_}
    if chosen != 0.0:
        log("fitting penalty 0 on the same labs for comparison")
        base = clone(pipe).set_params(net__relevance_penalty=0.0)
        models[0.0] = base.fit(X[train], y[train])
    rows = []
    for penalty in sorted(models):
        model = models[penalty]
        if nested:
            test = labs == test_lab
            acc = float(model.score(X[test], y[test]))
            Xt = model[:-1].transform(X[test])
            rel = model[-1].explain(Xt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                sp = float(np.nanmean(sparseness(rel)))
        else:
            i = list(res["param_net__relevance_penalty"]).index(penalty)
            acc = float(res["mean_test_accuracy"][i])
            sp = float(res["mean_test_sparseness"][i])
        rows.append({"penalty": penalty, "chosen": penalty == chosen,
                     "unseen_lab": test_lab or "left-out (CV)", "accuracy": acc,
                     "sparseness": sp})
    return rows, models, chosen, test_lab


def _print_table(rows, log):
    log("results on the unseen lab:")
    head = f"{'relevance_penalty':>18} {'unseen lab':>14} {'accuracy':>9} {'sparseness':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        tag = f"{r['penalty']:g}" + (" (chosen)" if r["chosen"] else "")
        print(f"{tag:>18} {r['unseen_lab']:>14} {r['accuracy']:>9.3f} {r['sparseness']:>11.3f}")


def _write_table(rows, path):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _figure(models, X, y, labs, test_lab, info, path, log):
    """Mean spectrum per class with mean |relevance| overlaid; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("note: matplotlib is not installed; the figure is skipped")
        return None
    rows = labs == test_lab if test_lab is not None else np.ones(len(y), bool)
    any_model = next(iter(models.values()))
    Xt = any_model[:-1].transform(X[rows])
    mz = any_model.named_steps["resample"].mz_out_
    classes = np.unique(y)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=90)
    for c, colour in zip(classes, ("tab:blue", "tab:orange")):
        ax.plot(mz, Xt[y[rows] == c].mean(axis=0), color=colour, lw=0.9,
                label=f"mean spectrum, class {c}")
    ax.set_xlabel("m/z")
    ax.set_ylabel("TIC-normalised intensity")
    ax2 = ax.twinx()
    for (penalty, model), colour in zip(sorted(models.items()), ("tab:red", "tab:green")):
        rel = np.abs(model[-1].explain(model[:-1].transform(X[rows]))).mean(axis=0)
        ax2.fill_between(mz, rel / max(rel.max(), 1e-30), color=colour, alpha=0.3,
                         step="mid", label=f"|relevance|, penalty {penalty:g}")
    ax2.set_ylabel("mean |relevance| (scaled)")
    ax2.set_ylim(0, 1.05)
    if info is not None:
        for c in (0, 1):
            for p in info["class_peaks"][c]:
                ax.axvline(p, color="k", ls=":", lw=0.7)
        for points in info["confounders"].values():
            ax.axvline(points.mean(), color="grey", ls="--", lw=0.7)
        ax.plot([], [], "k:", lw=0.7, label="class peaks (truth)")
        ax.plot([], [], "--", color="grey", lw=0.7, label="lab confounders")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper right")
    title = f"unseen lab {test_lab}" if test_lab is not None else "all labs"
    ax.set_title(f"Class mean spectra and relevance ({title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_demo(cfg):
    """Run the demo; returns the result rows (also written to ``cfg.output``)."""
    from sklearn_relevance.ims import make_multilab_spectra

    check_config(cfg)
    log = ProgressLog(cfg.verbose)
    info, per_file = None, None
    if cfg.imzml:
        log(f"reading {len(cfg.imzml)} imzML file(s) and labels from {cfg.labels}")
        X, y, labs, mz, per_file = load_labelled_imzml(cfg.imzml, cfg.labels,
                                                       n_bins=4 * cfg.n_bins)
    else:
        log(f"simulating {cfg.n_samples} spectra from {cfg.n_labs} labs "
            "(two tumour types, lab confounders)")
        X, y, labs, info = make_multilab_spectra(cfg.n_samples, cfg.n_labs,
                                                 return_info=True, random_state=cfg.seed)
        mz = info["mz"]
    check_labelled_data(y, labs, cfg.test_lab)  # before any training or output
    cfg.output.mkdir(parents=True, exist_ok=True)
    log(f"{len(y)} labelled spectra x {X.shape[1]} m/z values, labs "
        f"{sorted(set(labs.tolist()))}")
    rows, models, chosen, test_lab = fit_and_compare(X, y, labs, mz, cfg, log)
    _print_table(rows, log)
    _write_table(rows, cfg.output / "results.csv")
    fig = _figure(models, X, y, labs, test_lab, info, cfg.output / "relevance_spectrum.png",
                  log)
    if fig is not None:
        log(f"figure written to {fig}")
    if per_file:
        from sklearn_relevance.ims import write_imzml

        model = models[chosen]
        out_mz = model.named_steps["resample"].mz_out_
        for path, data in per_file:
            rel = model[-1].explain(model[:-1].transform(data.X))
            target = cfg.output / f"{path.stem}_relevance.imzML"
            write_imzml(target, rel.astype(np.float32), data.coords, out_mz)
            log(f"relevance ion images written to {target}")
    log(f"results written to {cfg.output / 'results.csv'}")
    return rows
