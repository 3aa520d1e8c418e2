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

A verdict that a re-run would read the same with probability below
:data:`SAME` (0.9; :func:`same_probability`: the re-run varies like
another draw of the seeds) says so in its sentence ("machine-sensitive"),
with that probability. The CT study's "agree" once read "not shown" on
another CPU; under this model every "not shown" is flagged (a re-run shows
a verdict with probability at least 0.17, the most when the threshold lies
at the interval's centre), and a shown verdict is flagged when its interval
ends within about 0.46 of its width from the threshold.
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
        """The sentence as a reStructuredText list item (``|`` escaped, so that
        ``|relevance|`` is not read as a substitution)."""
        return "* " + self.text.replace("|", "\\|")


def interval_verdict(low, high, threshold=0.0):
    """``"above"`` when ``low > threshold``, ``"below"`` when ``high < threshold``,
    else ``"not shown"`` (also when the interval is undefined: one replicate)."""
    if np.isfinite(low) and low > threshold:
        return ABOVE
    if np.isfinite(high) and high < threshold:
        return BELOW
    return NOT_SHOWN


#: A verdict is flagged machine-sensitive when a re-run would read the same
#: with a probability below this (see :func:`same_probability`).
SAME = 0.9
#: The word a flagged sentence carries (``--verify`` looks for it).
SENSITIVE = "machine-sensitive"


def same_probability(verdict, low, high, threshold):
    """Probability that a re-run reads ``verdict`` again.

    A re-run on another CPU (another maths library, so other trained
    weights) varies like another draw of the seeds: its interval is modelled
    with the same width, centred on a point drawn from a normal distribution
    around this interval's centre with sqrt(2) times its standard error
    (half-width / 1.96; the difference of two independent estimates). The
    verdict of that interval against ``threshold`` is the same as this one
    with the returned probability. "not shown" verdicts are included: an
    interval that barely contains the threshold may exclude it next time.
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        return 1.0 if verdict == NOT_SHOWN else float("nan")
    centre, half = (low + high) / 2, (high - low) / 2
    if half <= 0:
        return 1.0
    sd = np.sqrt(2.0) * half / 1.96
    p_above = float(_normal_cdf((centre - half - threshold) / sd))
    p_below = float(_normal_cdf((threshold - centre - half) / sd))
    return {ABOVE: p_above, BELOW: p_below, NOT_SHOWN: 1.0 - p_above - p_below}[verdict]


def _normal_cdf(z):
    from math import erf, sqrt

    return 0.5 * (1.0 + erf(z / sqrt(2.0)))


def sensitive(verdict, low, high, threshold):
    """Whether a verdict reads the same on a re-run with probability below :data:`SAME`."""
    return same_probability(verdict, low, high, threshold) < SAME


def sensitive_members(intervals, threshold):
    """The names whose interval verdict a re-run may change (:func:`sensitive`),
    for findings that count verdicts: ``intervals`` maps a name to its
    ``(low, high)``."""
    return [name for name, (low, high) in intervals.items()
            if sensitive(interval_verdict(low, high, threshold), low, high, threshold)]


def count_note(names):
    """The sentence ending of a count whose members :func:`sensitive_members` found."""
    return (f" ({SENSITIVE}: {', '.join(names)} may change side on a re-run)"
            if names else "")


def _close_note(verdict, low, high, threshold):
    p = same_probability(verdict, low, high, threshold)
    if not p < SAME:  # as sensitive(): a NaN probability is no flag
        return ""
    return (f"; {SENSITIVE}: a re-run reads the same with probability about {p:.2f}, "
            "the interval lying near the threshold")


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
            f"lies below; '{not_shown}' otherwise; flagged {SENSITIVE} when a re-run "
            f"(another draw with the same spread) reads the same with probability below "
            f"{SAME:g}")
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
