"""The demo's imzML input: imzML files and a labels CSV read into labelled
spectra on one m/z axis, every label row checked before any spectrum is read.

Re-exported by :mod:`sklearn_relevance.studies.demo`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["load_labelled_imzml"]


def _check_label_rows(table, labels_csv, per_pixel, keys):
    """Refuse empty values, bad coordinates and rows that label a pixel twice.

    Per-pixel coordinates are parsed to ints in place.
    """
    where = f"the labels file {str(labels_csv)!r}"
    for line, row in enumerate(table, start=2):  # line 1 is the header
        empty = [c for c in ("file", "label", "lab") if not (row.get(c) or "").strip()]
        if empty:
            raise ValueError(f"Line {line} of {where} has no value in column(s) {empty}.")
        if per_pixel:
            for c in ("x", "y"):
                try:
                    row[c] = int(str(row[c]).strip())
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Column {c!r} of {where} must hold 1-based pixel coordinates "
                        f"(ints >= 1). Got {row[c]!r} on line {line} instead."
                    ) from None
                if row[c] < 1:
                    raise ValueError(
                        f"Column {c!r} of {where} must hold 1-based pixel coordinates "
                        f"(ints >= 1). Got {row[c]} on line {line} instead."
                    )
    ids = [(keys[r["file"]], r["x"], r["y"]) if per_pixel else keys[r["file"]]
           for r in table]
    n_dup = len(ids) - len(set(ids))
    if n_dup:
        what = "pixel (file, x, y)" if per_pixel else "file (rows without x, y label it all)"
        raise ValueError(
            f"{n_dup} rows of {where} repeat a {what} already labelled above; each may "
            "be labelled once."
        )


def _match_pixels(coords, rows):
    """Pixels of ``coords`` labelled by ``rows`` (x, y ints), vectorised.

    Returns ``(keep, sel, missed)``: a mask of the labelled pixels, the row
    index of each of them, and the indices of rows that match no pixel.
    """
    xy = np.array([[r["x"], r["y"]] for r in rows], dtype=np.int64)
    width = int(max(coords[:, 1].max(), xy[:, 1].max())) + 1
    labelled = xy[:, 0] * width + xy[:, 1]
    order = np.argsort(labelled)
    pixel = coords[:, 0] * width + coords[:, 1]
    pos = np.clip(np.searchsorted(labelled[order], pixel), 0, len(labelled) - 1)
    keep = labelled[order][pos] == pixel
    sel = order[pos[keep]]
    missed = np.setdiff1d(np.arange(len(rows)), sel)
    return keep, sel, missed


def load_labelled_imzml(files, labels_csv, n_bins=None):
    """Read imzML files and a labels CSV into X, y, labs on one m/z axis.

    The CSV has columns ``file`` (name, stem or path of an imzML file),
    ``label``, ``lab``, and optionally ``x`` and ``y`` (1-based pixel
    coordinates) for per-pixel labels; without them a row labels every
    pixel of its file. Unlabelled pixels are left out of training but get
    relevance images. Every row must label a pixel: empty values, bad
    coordinates, a pixel (or file) labelled twice and rows that match no
    pixel are errors (with their count), raised before any spectrum is read.

    Returns
    -------
    X, y, labs, mz, per_file
        ``per_file`` is a list of ``(path, IMSData)`` for writing relevance images.
    """
    from sklearn_relevance.ims import read_imzml, scan_imzml

    files = [Path(f) for f in files]
    if not files:
        raise ValueError("Pass at least one imzML file with --imzml.")
    labels_csv = Path(labels_csv)
    from sklearn_relevance.checks import file_problem

    why = file_problem(labels_csv)
    if why == "does not exist":
        raise FileNotFoundError(f"Labels file {str(labels_csv)!r} does not exist.")
    if why is not None:
        raise ValueError(f"Labels file {str(labels_csv)!r} {why}.")
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of a column name
    with open(labels_csv, newline="", encoding="utf-8-sig") as fh:
        table = list(csv.DictReader(fh))
    if not table:
        raise ValueError(f"The labels file {str(labels_csv)!r} has no rows.")
    cols = set(table[0])
    missing = {"file", "label", "lab"} - cols
    if missing:
        raise ValueError(
            f"The labels file {str(labels_csv)!r} must have columns file, label, lab "
            f"(and optionally x, y). Missing: {sorted(missing)}."
        )
    per_pixel = {"x", "y"} <= cols
    keys = {}
    for f in files:
        keys.update({str(f): f, f.name: f, f.stem: f})
    unknown = sorted({r["file"] for r in table} - set(keys))
    if unknown:
        raise ValueError(
            f"The labels file names files not given with --imzml: {unknown[:5]}."
        )
    _check_label_rows(table, labels_csv, per_pixel, keys)
    # one shared m/z axis over the union of the files' ranges, checked before reading
    scans = [scan_imzml(f) for f in files]
    ranges = [scan.mz_range for scan in scans]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    n_bins = int(n_bins or 1000)
    edges = np.linspace(lo, hi, n_bins + 1)
    mz = (edges[:-1] + edges[1:]) / 2
    # every row of the table must label at least one pixel: matched before reading
    selections = {}
    unmatched = []
    for f, scan in zip(files, scans):
        rows = [r for r in table if keys[r["file"]] == f]
        if not rows:
            continue
        if per_pixel:
            keep, sel, missed = _match_pixels(scan.coords, rows)
            unmatched += [rows[i] for i in missed]
        else:
            keep = np.ones(len(scan.coords), bool)
            sel = np.zeros(len(scan.coords), dtype=np.int64)
        selections[f] = (rows, keep, sel)
    if unmatched:
        shown = "; ".join(f"{r['file']} x={r['x']} y={r['y']}" for r in unmatched[:5])
        raise ValueError(
            f"{len(unmatched)} of {len(table)} rows of the labels file "
            f"{str(labels_csv)!r} match no pixel of their file (first: {shown}). Fix "
            "or remove them: labels are never dropped silently."
        )
    if not selections:
        raise ValueError("No pixel of the given files is labelled in the labels file.")
    X, y, labs, per_file = [], [], [], []
    for f in files:
        data = read_imzml(f, mz=mz)
        per_file.append((f, data))
        if f not in selections:
            continue
        rows, keep, sel = selections[f]
        X.append(data.X[keep])
        y += [rows[i]["label"] for i in sel]
        labs += [rows[i]["lab"] for i in sel]
    return np.concatenate(X), np.asarray(y), np.asarray(labs), mz, per_file
