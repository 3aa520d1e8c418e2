"""Which explainer should I trust on my images? The CT evaluation study over training seeds.

A thin wrapper over :mod:`sklearn_relevance.studies.ct` (see its docstring
for the design): the study writes its tables (CSV, markdown and the
reStructuredText fragments the docs include) and figures to --output.

Run ``python examples/ct_explainer_study.py [--quick] [--output DIR]``, the same as
``python -m sklearn_relevance.studies ct [--quick] --out DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn_relevance.studies import ct


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--output", type=Path, default=Path("studies_output") / "ct",
                        help="folder for the tables and figures")
    args = parser.parse_args(argv)
    return ct.run(args.output, quick=args.quick)


if __name__ == "__main__":
    main()
