"""``python -m sklearn_relevance.studies <name> --verify``: does a re-run agree?

The study is run again into a temporary folder; then, against the committed
outputs (``docs/_generated_studies/<name>``, or ``--against DIR``):

* **numbers**: every committed value that the new run gives with a 95%
  interval (a cell ``"m [lo, hi]"``, or a row with ``mean``, ``ci_low``,
  ``ci_high`` columns) is checked: does the committed mean lie within the
  new interval? Rows are matched on their text cells (explainer, setting,
  metric, ...), columns by name, in CSVs of the same name;
* **conclusions**: every finding of ``*_conclusions.csv`` (key and
  verdict, :mod:`._findings`) must read the same in the new run.

The exit status is 0 when every conclusion reads the same, 1 when one
changed or disappeared, 2 when the committed folder has no conclusions to
compare (outputs written before conclusions were recorded): regenerate them.
A number outside its new interval is reported, not an error by itself.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from ._findings import SENSITIVE, read_conclusions

_INTERVAL = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]\s*$")


def default_against(study):
    """The committed outputs of ``study`` in the source tree (or beside the working folder)."""
    here = Path(__file__).resolve().parents[2] / "docs" / "_generated_studies" / study
    return here if here.is_dir() else Path.cwd() / "docs" / "_generated_studies" / study


def _parse(cell):
    m = _INTERVAL.match(str(cell))
    return tuple(float(v) for v in m.groups()) if m else None


def _is_number(cell):
    try:
        float(str(cell).split()[0])
        return True
    except (ValueError, IndexError):
        return False


def _intervals(frame):
    """``{(row key, column): (mean, low, high)}`` of a table read as text."""
    out = {}
    cols = list(frame.columns)
    key_cols = [c for c in cols if not all(_is_number(v) or _parse(v) or v == ""
                                           for v in frame[c])]
    triplet = {"mean", "ci_low", "ci_high"} <= set(cols)
    for _, row in frame.iterrows():
        key = tuple(str(row[c]) for c in key_cols)
        for c in cols:
            parsed = _parse(row[c])
            if parsed is not None:
                out[(key, c)] = parsed
        if triplet:
            try:
                out[(key, "mean")] = tuple(float(row[c]) for c in ("mean", "ci_low", "ci_high"))
            except ValueError:
                pass
    return out


def compare_numbers(committed, new):
    """Rows ``(table, row, column, committed mean, new interval, inside)``."""
    import pandas as pd

    rows = []
    for path in sorted(Path(committed).glob("*.csv")):
        if path.name.endswith("_conclusions.csv") or not (Path(new) / path.name).is_file():
            continue
        old = _intervals(pd.read_csv(path, keep_default_na=False, dtype=str))
        fresh = _intervals(pd.read_csv(Path(new) / path.name, keep_default_na=False, dtype=str))
        for (key, col), (mean, _lo, _hi) in old.items():
            if (key, col) not in fresh:
                continue
            _m, lo, hi = fresh[(key, col)]
            inside = bool(np.isfinite(lo) and lo <= mean <= hi)
            rows.append((path.stem, " / ".join(key), col, mean, (lo, hi), inside))
    return rows


def compare_conclusions(committed, new):
    """``(changed, missing, same)``: lists of (key, old verdict, new verdict)."""
    old, fresh = _committed_conclusions(committed), _committed_conclusions(new)
    changed, missing, same = [], [], []
    for key, (verdict, _text) in old.items():
        if key not in fresh:
            missing.append((key, verdict, None))
        elif fresh[key][0] != verdict:
            changed.append((key, verdict, fresh[key][0]))
        else:
            same.append((key, verdict, verdict))
    return changed, missing, same


def report(committed, new, print_=print):
    """Print the comparison of two output folders; return the exit status."""
    committed, new = Path(committed), Path(new)
    numbers = compare_numbers(committed, new)
    print_(f"numbers: {sum(r[5] for r in numbers)} of {len(numbers)} committed values lie "
           f"within the new run's 95% interval")
    for table, row, col, mean, (lo, hi), inside in numbers:
        print_(f"  {'ok ' if inside else 'OUT'} {table}: {row} | {col}: committed "
               f"{mean:g}, new interval [{lo:g}, {hi:g}]")
    if not list(committed.glob("*_conclusions.csv")):
        print_(f"conclusions: {committed} holds no *_conclusions.csv (outputs written "
               "before conclusions were recorded); regenerate them to compare.")
        return 2
    changed, missing, same = compare_conclusions(committed, new)
    # a verdict the committed run flagged machine-sensitive (its interval ended
    # near the threshold) may change on a re-run: the docs say so beside it
    flagged = {key for key, (_, text) in _committed_conclusions(committed).items()
               if SENSITIVE in text}
    foreseen = [c for c in changed if c[0] in flagged]
    print_(f"conclusions: {len(same)} read the same, {len(changed)} changed "
           f"({len(foreseen)} of them flagged machine-sensitive in the committed run), "
           f"{len(missing)} missing from the new run")
    for (table, key), old, fresh in changed:
        note = (" (flagged machine-sensitive in the committed run)"
                if (table, key) in flagged else "")
        print_(f"  CHANGED {table}: {key}: {old!r} -> {fresh!r}{note}")
    for (table, key), old, _ in missing:
        print_(f"  MISSING {table}: {key} (was {old!r})")
    return 1 if len(changed) > len(foreseen) or missing else 0


def _committed_conclusions(folder):
    """``{(file stem, key): (verdict, sentence)}`` of a folder's conclusions."""
    out = {}
    for path in sorted(Path(folder).glob("*_conclusions.csv")):
        out.update({(path.stem, k): v for k, v in read_conclusions(path).items()})
    return out


def verify(study, *, against=None, quick=False, verbose=True, keep=None):
    """Re-run ``study`` into a temporary folder (or ``keep``) and compare; exit status."""
    import importlib

    against = Path(against) if against is not None else default_against(study)
    if not against.is_dir():
        raise FileNotFoundError(
            f"The 'against' folder of --verify must hold a study's committed outputs. "
            f"Got {str(against)!r}, which is not a folder.")
    module = importlib.import_module(f"{__package__}.{study}")
    with tempfile.TemporaryDirectory(prefix=f"verify_{study}_") as tmp:
        out = Path(keep) if keep is not None else Path(tmp)
        module.run(out, quick=quick, verbose=verbose)
        print(f"verifying {study} against {against} (new run in {out})")
        return report(against, out)
