"""Where does a 3D CNN look? LRP alpha1-beta0 relevance per atlas region, two input scalings.

A thin wrapper over :mod:`sklearn_relevance.studies.mri` (see its docstring
for the design): the study writes its tables (CSV, markdown and the
reStructuredText fragments the docs include) and figures to --output.

Run ``python examples/mri_lrp_regions.py [--quick] [--output DIR]``, the same as
``python -m sklearn_relevance.studies mri [--quick] --out DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn_relevance.studies import mri


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--output", type=Path, default=Path("studies_output") / "mri",
                        help="folder for the tables and figures")
    args = parser.parse_args(argv)
    return mri.run(args.output, quick=args.quick)


if __name__ == "__main__":
    main()
