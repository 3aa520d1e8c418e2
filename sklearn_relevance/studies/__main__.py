"""``python -m sklearn_relevance.studies ct|mri|drr|multimodal [--quick] [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import STUDIES


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_relevance.studies",
        description="Run one study and write its tables and figures.")
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
    module = importlib.import_module(f"{__package__}.{args.study}")
    module.run(out, quick=args.quick, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
