"""Modality importance against ground truth, beside chance levels.

A thin wrapper over :mod:`sklearn_relevance.studies.multimodal` (see its docstring
for the design): the study writes its tables (CSV, markdown and the
reStructuredText fragments the docs include) and figures to --output.

Run ``python examples/multimodal_validation.py [--quick] [--output DIR]``, the same as
``python -m sklearn_relevance.studies multimodal [--quick] --out DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn_relevance.studies import multimodal


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--output", type=Path, default=Path("studies_output") / "multimodal",
                        help="folder for the tables and figures")
    args = parser.parse_args(argv)
    return multimodal.run(args.output, quick=args.quick)


if __name__ == "__main__":
    main()
