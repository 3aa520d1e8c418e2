"""``python -m sklearn_relevance.studies ct|mri|drr|multimodal [--quick] [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import STUDIES
from .catalog import catalog_text


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
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else Path("studies_output") / args.study
    module = importlib.import_module(f"{__package__}.{args.study}")
    module.run(out, quick=args.quick, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
