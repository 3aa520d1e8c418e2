"""Command line: ``sklearn-relevance demo | studies <name> | --version``.

``python -m sklearn_relevance`` is the same command. ``studies <name>`` runs
one of the reproducible studies (``ct``, ``mri``, ``drr``, ``multimodal``;
each one's ``--help`` gives its description, expected runtime on a 2-core
CPU and options) exactly as ``python -m sklearn_relevance.studies <name>``.

``demo`` runs the cross-lab tumour-typing workflow: simulated multi-lab MALDI
spectra (or your imzML files with ``--imzml FILE... --labels CSV``), a
Pipeline of TIC normalisation, m/z resampling and a RelevanceNetClassifier,
GridSearchCV over the relevance penalty with leave-one-lab-out, and a
comparison of penalty 0 with the chosen penalty on a lab neither model saw
(accuracy, relevance sparseness, a figure, and relevance ion images as
imzML for file input).

Every option is checked before any work (an unusable ``--device``, non-finite
or negative ``--penalties``, missing files): a bad one ends in one ``error:``
line and exit status 2, as argparse's own errors. The labels file is checked
before any spectrum is read or any model trained: empty values, bad
coordinates, a pixel or file labelled twice and rows that match no pixel
(reported with their count) are errors, and so are fewer than 2 labs and a
lab holding one class only.

Examples
--------
::

    python -m sklearn_relevance demo --output demo_out
    python -m sklearn_relevance demo --quick
    python -m sklearn_relevance demo --imzml a.imzML b.imzML c.imzML --labels labels.csv
    sklearn-relevance studies mri --quick --out mri_smoke
    sklearn-relevance --version
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["build_parser", "main"]


def _prog():
    """The command's own name: ``sklearn-relevance`` when run as the console
    script, ``python -m sklearn_relevance`` otherwise."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if name.startswith("sklearn-relevance"):  # sklearn-relevance(.exe)
        return "sklearn-relevance"
    return "python -m sklearn_relevance"


def build_parser(prog=None):
    """The argument parser of ``python -m sklearn_relevance``.

    Parameters
    ----------
    prog : str, optional
        The name shown in usage and help; by default the command's own name.
    """
    from . import __version__
    from .studies.demo import DEFAULT_PENALTIES

    parser = argparse.ArgumentParser(
        prog=prog if prog is not None else _prog(),
        description="sklearn-relevance: relevance-regularised neural networks.",
    )
    parser.add_argument("--version", action="version",
                        version=f"sklearn-relevance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="cross-lab tumour typing with relevance regularisation (simulated or imzML)",
        description=(
            "Simulated multi-lab spectra (or --imzml files with --labels), "
            "GridSearchCV over relevance_penalty with leave-one-lab-out, and penalty 0 "
            "against the chosen penalty on an unseen lab."
        ),
    )
    demo.add_argument("--output", type=Path, default=Path("relevance_demo"),
                      help="folder for results.csv, the figure and relevance images "
                           "(default: ./relevance_demo)")
    demo.add_argument("--imzml", nargs="+", type=Path, default=[], metavar="FILE",
                      help="imzML files to use instead of simulated data")
    demo.add_argument("--labels", type=Path, default=None, metavar="CSV",
                      help="labels for --imzml: columns file, label, lab and optionally "
                           "x, y (1-based pixel coordinates; without them one row labels "
                           "a whole file)")
    demo.add_argument("--quick", action="store_true",
                      help="a small, fast run (smoke test)")
    demo.add_argument("--network", choices=("mlp", "cnn"), default="mlp",
                      help="MLP (fast, default) or the IsotopeNet-like SpectrumCNN")
    demo.add_argument("--penalties", type=float, nargs="+", default=list(DEFAULT_PENALTIES),
                      help="relevance penalties searched (default: %(default)s)")
    demo.add_argument("--n-samples", type=int, default=500,
                      help="simulated spectra (default: %(default)s)")
    demo.add_argument("--n-labs", type=int, default=5,
                      help="simulated labs (default: %(default)s)")
    demo.add_argument("--bins", type=int, default=250,
                      help="m/z bins the spectra are resampled to (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=30,
                      help="training epochs per fit (default: %(default)s)")
    demo.add_argument("--test-lab", default=None,
                      help="lab held out as the unseen lab (default: the last lab)")
    demo.add_argument("--n-jobs", type=int, default=1,
                      help="GridSearchCV workers (default: %(default)s)")
    demo.add_argument("--device", default="cpu",
                      help="torch device for training and relevance, e.g. cuda (default: cpu)")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_studies(sub)
    return parser


def _add_studies(sub):
    """``studies <name>``: one sub-command per study, with its own help."""
    from .studies import STUDIES
    from .studies.catalog import STUDY_INFO, catalog_text, help_text

    raw = argparse.RawDescriptionHelpFormatter
    studies = sub.add_parser(
        "studies", help="run one of the reproducible studies behind the docs' numbers",
        description="Run one study and write its tables and figures (the same as "
                    "python -m sklearn_relevance.studies).",
        epilog=catalog_text(), formatter_class=raw)
    which = studies.add_subparsers(dest="study", required=True, metavar="STUDY")
    for name in STUDIES:
        one = which.add_parser(name, help=STUDY_INFO[name][0], description=help_text(name),
                               formatter_class=raw)
        one.add_argument("--quick", action="store_true",
                         help="a small, fast run (smoke test; numbers not for the docs)")
        one.add_argument("--out", type=Path, default=None,
                         help=f"output folder (default: studies_output/{name})")
        one.add_argument("--quiet", action="store_true", help="no progress messages")


def _run_study(args):
    """The study through ``python -m sklearn_relevance.studies`` (one code path)."""
    from .studies.__main__ import main as studies_main

    argv = [args.study] + ["--quick"] * args.quick + ["--quiet"] * args.quiet
    if args.out is not None:
        argv += ["--out", str(args.out)]
    return studies_main(argv)


def _check(parser, args):
    """Every bad argument ends in ``parser.error``: one ``error:`` line, exit 2."""
    if args.imzml and args.labels is None:
        parser.error("--imzml needs --labels CSV")
    if args.labels is not None and not args.imzml:
        parser.error("--labels needs --imzml FILE...")
    from ._paths import file_problem

    bad = [(str(f), file_problem(f)) for f in args.imzml]
    bad = [(f, why) for f, why in bad if why is not None]
    if bad:
        parser.error("imzML file(s) not usable: "
                     + ", ".join(f"{f!r} {why}" for f, why in bad))
    if args.labels is not None:
        why = file_problem(args.labels)
        if why is not None:
            parser.error(f"labels file {str(args.labels)!r} {why}")
    if args.output.exists() and not args.output.is_dir():
        parser.error(f"--output {str(args.output)!r} exists and is not a folder")


def _demo_config(parser, args):
    """The demo's options, checked (device, penalties, sizes) before any work."""
    from .studies.demo import DemoConfig, check_config

    cfg = DemoConfig(
        output=args.output, quick=args.quick, network=args.network,
        penalties=tuple(args.penalties), n_samples=args.n_samples,
        n_labs=args.n_labs, n_bins=args.bins, max_epochs=args.epochs, seed=args.seed,
        n_jobs=args.n_jobs, device=args.device, test_lab=args.test_lab,
        verbose=not args.quiet,
        imzml=list(args.imzml), labels=args.labels,
    )
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative int. Got {args.seed} instead.")
    try:
        check_config(cfg)
    except ValueError as exc:
        parser.error(str(exc))
    return cfg


def main(argv=None):
    """Entry point of ``python -m sklearn_relevance`` (and ``sklearn-relevance``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "studies":
        return _run_study(args)
    _check(parser, args)
    if args.command == "demo":
        import torch

        from .studies.demo import run_demo

        cfg = _demo_config(parser, args)
        # small networks: one thread per process is fastest (and GridSearchCV
        # workers with --n-jobs each get one)
        torch.set_num_threads(1)
        try:
            run_demo(cfg)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
