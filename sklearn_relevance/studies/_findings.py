"""Conclusions generated from the numbers by rules written beside them.

Every sentence a study states as a finding is a :class:`Finding`: a stable
``key`` (what the finding is about), the ``verdict`` its rule returned (one
word from a fixed vocabulary: ``"above"``, ``"below"``, ``"not shown"``,
``"fact"``, ...), the ``rule`` in words and the generated ``text``. A study
writes them twice:

* ``<name>.inc``: the sentences as an reStructuredText list (the docs
  include it; no conclusion is typed into the docs by hand);
* ``<name>_conclusions.csv``: key, verdict, rule and sentence, so that
  ``python -m sklearn_relevance.studies <study> --verify`` can tell whether a
  re-run reads the same (same verdict per key).

The rules:

* :func:`interval_finding`: a quantity's 95% interval against a threshold:
  ``"above"`` only when the whole interval lies above it, ``"below"`` only
  when it lies below, ``"not shown"`` otherwise; each outcome has its own
  words, given by the caller;
* :func:`rank_finding`: a mean rank against its chance rank (rank 1 = best),
  the same three outcomes;
* :func:`fact`: a number or a description without a claim (verdict
  ``"fact"``, never a conclusion that could flip).

A shown verdict whose interval ends within :data:`CLOSE` (a tenth) of its
width from the threshold says so in its sentence ("machine-sensitive"):
such a conclusion may read "not shown" on a re-run, as the CT study's
"agree" did on another CPU.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import _atomic_write, interval_text

#: Verdicts of the interval rules.
ABOVE, BELOW, NOT_SHOWN, FACT = "above", "below", "not shown", "fact"


@dataclass(frozen=True)
class Finding:
    """One generated sentence, the verdict of its rule and the rule in words."""

    key: str
    verdict: str
    text: str
    rule: str

    def line(self):
        return f"* {self.text}"


def interval_verdict(low, high, threshold=0.0):
    """``"above"`` when ``low > threshold``, ``"below"`` when ``high < threshold``,
    else ``"not shown"`` (also when the interval is undefined: one replicate)."""
    if np.isfinite(low) and low > threshold:
        return ABOVE
    if np.isfinite(high) and high < threshold:
        return BELOW
    return NOT_SHOWN


#: A verdict is flagged as close when its interval ends within this fraction of
#: the interval's width from the threshold.
CLOSE = 0.1
#: The word a flagged sentence carries (``--verify`` looks for it).
SENSITIVE = "machine-sensitive"


def close_call(verdict, low, high, threshold):
    """Whether a shown verdict rests on an interval that ends near the threshold
    (within :data:`CLOSE` of its width): a re-run, on another CPU say, may read
    "not shown"."""
    if verdict == NOT_SHOWN or not (np.isfinite(low) and np.isfinite(high)):
        return False
    gap = (low - threshold) if verdict == ABOVE else (threshold - high)
    return gap < CLOSE * (high - low)


def _close_note(verdict, low, high, threshold):
    return (f"; {SENSITIVE}: the interval ends close to the threshold, so a re-run "
            "may read 'not shown'" if close_call(verdict, low, high, threshold) else "")


def interval_finding(key, subject, mean, low, high, *, above, below, not_shown,
                     threshold=0.0, digits=2, over="the replicates"):
    """A finding on a mean and its 95% interval against ``threshold``.

    Parameters
    ----------
    key : str
        Stable name of the finding (the same across re-runs).
    subject : str
        What the number is, e.g. ``"fidelity vs mask_dice: mean Spearman"``.
    mean, low, high : float
        The estimate and its 95% interval.
    above, below, not_shown : str
        The conclusion in words for each outcome of the rule.
    threshold : float, default=0
    digits : int, default=2
    over : str
        What the interval is taken over (said in the sentence).
    """
    verdict = interval_verdict(low, high, threshold)
    words = {ABOVE: above, BELOW: below, NOT_SHOWN: not_shown}[verdict]
    where = {ABOVE: f"interval above {threshold:g}", BELOW: f"interval below {threshold:g}",
             NOT_SHOWN: f"interval contains {threshold:g}" if np.isfinite(low)
             else "no interval (one replicate)"}[verdict]
    text = (f"{subject} {interval_text(mean, low, high, digits)} (95% interval over "
            f"{over}): {words} ({where}{_close_note(verdict, low, high, threshold)}).")
    rule = (f"'{above}' if the 95% interval lies above {threshold:g}; '{below}' if it "
            f"lies below; '{not_shown}' otherwise; flagged machine-sensitive when it ends "
            f"within {CLOSE:g} of its width from {threshold:g}")
    return Finding(key, verdict, text, rule)


def rank_finding(key, subject, mean, low, high, chance, *, above, below, not_shown,
                 digits=1, over="the replicates"):
    """A mean rank (1 = best) against its chance rank: ``"above"`` chance when the
    whole interval lies at better (smaller) ranks than ``chance``."""
    verdict = interval_verdict(-high, -low, -chance)
    words = {ABOVE: above, BELOW: below, NOT_SHOWN: not_shown}[verdict]
    note = _close_note(verdict, -high, -low, -chance)
    text = (f"{subject} {interval_text(mean, low, high, digits)} (95% interval over "
            f"{over}; chance rank {chance:.{digits}f}): {words}{note.replace('; ', ' (', 1)}"
            f"{')' if note else ''}.")
    rule = (f"'{above}' if the whole interval lies at better ranks than chance; "
            f"'{below}' if at worse ones; '{not_shown}' otherwise")
    return Finding(key, verdict, text, rule)


def fact(key, text):
    """A sentence stating numbers without a claim (verdict ``"fact"``)."""
    return Finding(key, FACT, text, "a statement of the numbers (no claim)")


def write_findings(out, name, findings, header=()):
    """Write ``name.inc`` (the sentences) and ``name_conclusions.csv`` (the verdicts)."""
    out = Path(out)
    keys = [f.key for f in findings]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"Findings must have distinct keys; repeated: {dup}.")
    lines = list(header) + [f.line() for f in findings]
    _atomic_write(out / f"{name}.inc", "\n".join(lines) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", "verdict", "rule", "sentence"])
    writer.writerows([f.key, f.verdict, f.rule, f.text] for f in findings)
    _atomic_write(out / f"{name}_conclusions.csv", buf.getvalue())


def read_conclusions(path):
    """``{key: (verdict, sentence)}`` of a ``*_conclusions.csv`` file."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    return {k: (v, s) for k, v, s in zip(frame["key"], frame["verdict"], frame["sentence"])}
