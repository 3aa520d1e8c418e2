"""``python -m sklearn_relevance.studies ct|mri|drr|multimodal [--quick] [--out DIR]``.

Before any work the output folder is checked (it must be a folder this
process can write in) and so is the data a study needs (the MRI study's
template and atlas): a problem ends in one ``error:`` line and exit status 2,
as argparse's own errors do.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import tempfile
from pathlib import Path

from . import STUDIES
from .catalog import catalog_text


def _out_problem(out):
    """Why ``out`` cannot hold the study's files (a phrase), or None."""
    if out.exists() and not out.is_dir():
        return "exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"is not a folder this process can write in ({exc.strerror or exc})"
    return None


def _data_problem(study):
    """Why the data ``study`` needs is missing (a sentence), or None."""
    if study != "mri":
        return None
    from sklearn_relevance.checks import file_problem
    from sklearn_relevance.datasets import load_atlas

    from ._common import data_dir

    atlas_dir = data_dir() / "atlas"
    defaults = inspect.signature(load_atlas).parameters
    names = [defaults[k].default for k in ("template", "atlas", "names")]
    bad = [(n, file_problem(atlas_dir / n)) for n in names]
    bad = [f"{n} {why}" for n, why in bad if why is not None]
    if bad:
        return (f"the MRI study needs the MNI152 template and AAL atlas in {atlas_dir} "
                f"({'; '.join(bad)}); set $SKLEARN_RELEVANCE_DATA to the shared data "
                "folder")
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_relevance.studies",
        description="Run one study and write its tables and figures.",
        epilog=catalog_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument("--quick", action="store_true",
                        help="a small, fast run (smoke test; numbers not for the docs)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: studies_output/<study>)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument("--verify", action="store_true", help="re-run into a temporary "
                        "folder and compare with the committed outputs (exit 1 if a "
                        "conclusion changed)")
    parser.add_argument("--against", type=Path, default=None, help="outputs to verify "
                        "against (default: docs/_generated_studies/<study>)")
    args = parser.parse_args(argv)
    if args.verify:
        from ._verify import verify

        return verify(args.study, against=args.against, quick=args.quick,
                      verbose=not args.quiet)
    out = args.out if args.out is not None else Path("studies_output") / args.study
    problem = _data_problem(args.study)
    if problem is not None:
        parser.error(problem)
    problem = _out_problem(out)
    if problem is not None:
        parser.error(f"--out {str(out)!r} {problem}")
    module = importlib.import_module(f"{__package__}.{args.study}")
    try:
        module.run(out, quick=args.quick, verbose=not args.quiet)
    except OSError as exc:  # a file that went away or a full disk, mid-run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
