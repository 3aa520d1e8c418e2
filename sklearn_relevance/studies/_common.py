"""Shared helpers of the studies: logging, tables with provenance, intervals."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

#: Resolution of every figure the studies write.
DPI = 150


class Log:
    """Timestamped progress messages (silent with ``verbose=False``)."""

    def __init__(self, name, verbose):
        self.name, self.verbose, self.start = name, verbose, time.perf_counter()

    def __call__(self, msg):
        if self.verbose:
            print(f"[{self.name} {time.perf_counter() - self.start:7.1f}s] {msg}", flush=True)


def data_dir():
    """The shared data folder (:func:`~sklearn_relevance.datasets.get_data_dir`),
    else ``../shared/data`` beside the working folder."""
    from sklearn_relevance.datasets import get_data_dir

    return get_data_dir() or Path.cwd().parent / "shared" / "data"


def command(study, quick):
    return (f"python -m sklearn_relevance.studies {study}" + (" --quick" if quick else "")
            + f" --out docs/_generated_studies/{study}" * (not quick))


def _atomic_write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _cell(v, digits):
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def write_table(out, name, frame, *, caption, provenance, digits=3):
    """Write ``frame`` as ``name.csv``, ``name.md`` and ``name.inc`` (an rst list-table).

    The markdown and the reStructuredText fragment start with the caption and
    the provenance line (seeds, command), so a table never travels without
    them.
    """
    out = Path(out)
    cols = list(frame.columns)
    rows = [[_cell(v, digits) for v in row] for row in frame.itertuples(index=False)]
    csv_lines = [",".join(_csv(c) for c in cols)] + [",".join(_csv(c) for c in r)
                                                     for r in rows]
    _atomic_write(out / f"{name}.csv", "\n".join(csv_lines) + "\n")
    md = [f"**{caption}**", "", f"*{provenance}*", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    _atomic_write(out / f"{name}.md", "\n".join(md) + "\n")
    # a self-contained reStructuredText fragment (no file paths to resolve)
    rst = [f".. list-table:: {caption}", "   :header-rows: 1", ""]
    for r in [cols] + rows:
        rst.append("   * - " + _rst_cell(r[0]))
        rst += [f"     - {_rst_cell(c)}" for c in r[1:]]
    rst += ["", f"*{provenance}*", ""]
    _atomic_write(out / f"{name}.inc", "\n".join(rst))


def write_text(out, name, lines):
    """Write generated prose (findings with their numbers) as ``name.inc`` (rst)."""
    _atomic_write(Path(out) / f"{name}.inc", "\n".join(lines) + "\n")


def _rst_cell(text):
    text = str(text)
    if not text:
        return "\\-"
    return text.replace("|", "\\|").replace("*", "\\*")


def _csv(value):
    text = str(value)
    return f'"{text}"' if any(c in text for c in ',"\n') else text


def save_figure(fig, out, name):
    import matplotlib.pyplot as plt

    path = Path(out) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight")  # nothing cut off
    os.replace(tmp, path)
    plt.close(fig)
    return path


def t_interval(values, confidence=0.95):
    """Mean and Student-t interval of independent replicates (NaNs dropped)."""
    from scipy.stats import t

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    m = float(v.mean())
    if v.size < 2:
        return m, np.nan, np.nan
    half = float(t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def correlation_interval(values, confidence=0.95):
    """Mean correlation and interval over replicates, through Fisher's z (stays in [-1, 1])."""
    r = np.clip(np.asarray(values, float), -0.999999, 0.999999)
    m, lo, hi = t_interval(np.arctanh(r), confidence)
    return tuple(float(np.tanh(v)) if np.isfinite(v) else np.nan for v in (m, lo, hi))


def interval_text(mean, low, high, digits=2):
    if not np.isfinite(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def bounded_interval_text(values, low=-np.inf, high=np.inf, digits=2):
    """Mean and 95% Student-t interval of replicates as text, the interval
    clipped to the values' possible range ``[low, high]`` (a rank, a share,
    a score in [0, 1])."""
    m, lo, hi = t_interval(values)
    if np.isfinite(lo):
        lo, hi = max(lo, low), min(hi, high)
    return interval_text(m, lo, hi, digits)


def spearman(a, b):
    """Spearman correlation of two score vectors (average ranks for ties)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return np.nan
    return float(spearmanr(a[ok], b[ok]).statistic)


def begin(name, out, quick, verbose, settings):
    """Start a study: quiet one-thread torch; returns (out as a Path, its settings, log)."""
    quiet_torch()
    return Path(out), settings(quick), Log(name, verbose)


def quiet_torch():
    import warnings

    import torch

    torch.set_num_threads(1)  # small networks on a shared CPU: threads add contention
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning)


def read_table(out, name):
    """A written table back as text: ``(frame of str, caption, provenance)``."""
    import pandas as pd

    out = Path(out)
    md = (out / f"{name}.md").read_text(encoding="utf-8").splitlines()
    frame = pd.read_csv(out / f"{name}.csv", keep_default_na=False, dtype=str)
    return frame, md[0].strip("*"), md[2].strip("*")


def refresh_fragments(out):
    """Re-render the ``.inc`` fragments of a study folder from its CSV and markdown files.

    For outputs written before a change of the fragment format: no study is
    rerun; captions and provenance come from the markdown, values from the CSV.
    """
    import pandas as pd

    out = Path(out)
    for csv in sorted(out.glob("*.csv")):
        md = csv.with_suffix(".md").read_text(encoding="utf-8").splitlines()
        caption, provenance = md[0].strip("*"), md[2].strip("*")
        frame = pd.read_csv(csv, keep_default_na=False, dtype=str)
        write_table(out, csv.stem, frame, caption=caption, provenance=provenance)
    for old in sorted(out.glob("*.rst")):
        text = old.read_text(encoding="utf-8")
        if not text.startswith(".. csv-table::"):
            _atomic_write(old.with_suffix(".inc"), text)
        old.unlink()
