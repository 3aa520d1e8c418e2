"""Cross-laboratory splitters: train on some labs, test on a lab never seen.

A model that learned a laboratory's confounders (its calibration, its
sample handling) scores well on held-out pixels of the same lab and fails on
another one. These splitters make the unseen lab the test set; both take the
lab of every sample as ``groups`` and work as ``cv=`` in
:class:`~sklearn.model_selection.GridSearchCV` (``fit(X, y, groups=labs)``).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.model_selection._split import BaseCrossValidator, GroupsConsumerMixin
from sklearn.utils import check_array
from sklearn.utils.validation import _num_samples

__all__ = ["CrossLabSplit", "LeaveOneLabOut"]


class LeaveOneLabOut(LeaveOneGroupOut):
    """Train on all labs but one, test on the lab left out; once per lab.

    This is scikit-learn's :class:`~sklearn.model_selection.LeaveOneGroupOut`
    under its domain name: pass the lab of every sample as ``groups``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.model_selection import LeaveOneLabOut
    >>> labs = np.array(["A", "A", "B", "C"])
    >>> [(train.tolist(), test.tolist())
    ...  for train, test in LeaveOneLabOut().split(np.zeros((4, 1)), groups=labs)]
    [([2, 3], [0, 1]), ([0, 1, 3], [2]), ([0, 1, 2], [3])]
    """


class CrossLabSplit(GroupsConsumerMixin, BaseCrossValidator):
    """Every ordered pair of labs: train on one lab, test on another.

    With ``k`` labs this gives ``k * (k - 1)`` splits, ordered by training
    lab, then test lab (sorted lab names). The matrix of their scores shows
    which lab's model transfers to which lab.

    Parameters
    ----------
    pairs : list of (train_lab, test_lab) or None
        Restrict the splits to these pairs (in this order); None uses all.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.model_selection import CrossLabSplit
    >>> labs = np.array([0, 0, 1, 2])
    >>> cv = CrossLabSplit()
    >>> cv.get_n_splits(groups=labs)
    6
    >>> [(tr.tolist(), te.tolist()) for tr, te in cv.split(np.zeros((4, 1)), groups=labs)][:2]
    [([0, 1], [2]), ([0, 1], [3])]
    >>> cv.lab_pairs(labs)[:2]
    [(0, 1), (0, 2)]
    """

    def __init__(self, *, pairs=None):
        self.pairs = pairs

    def lab_pairs(self, groups):
        """The (train lab, test lab) pair of every split, in split order."""
        if groups is None:
            raise ValueError("The 'groups' parameter should not be None.")
        groups = check_array(groups, input_name="groups", ensure_2d=False, dtype=None)
        labs = np.unique(groups)
        if len(labs) < 2:
            raise ValueError(
                "CrossLabSplit needs samples from at least 2 labs in 'groups'. Got "
                f"{len(labs)} lab(s) instead."
            )
        if self.pairs is None:
            return [(a, b) for a in labs.tolist() for b in labs.tolist() if a != b]
        pairs = [tuple(p) for p in self.pairs]
        known = set(labs.tolist())
        bad = [p for p in pairs if len(p) != 2 or p[0] == p[1]
               or p[0] not in known or p[1] not in known]
        if bad:
            raise ValueError(
                "The 'pairs' parameter of CrossLabSplit must hold (train_lab, test_lab) "
                f"pairs of two different labs among {sorted(known)}. Got {bad} instead."
            )
        return pairs

    def split(self, X, y=None, groups=None):
        """Generate (train, test) indices: one lab to train, another to test.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : ignored
        groups : array-like of shape (n_samples,)
            Lab of every sample.

        Yields
        ------
        train, test : ndarray
        """
        pairs = self.lab_pairs(groups)
        groups = np.asarray(groups)
        if _num_samples(X) != len(groups):
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{_num_samples(X)}, {len(groups)}]"
            )
        for a, b in pairs:
            yield np.flatnonzero(groups == a), np.flatnonzero(groups == b)

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits: ``k * (k - 1)`` for ``k`` labs, or ``len(pairs)``."""
        return len(self.lab_pairs(groups))

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        raise NotImplementedError  # split is overridden: train is not the complement
