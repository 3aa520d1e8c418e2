"""Cross-lab splitters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut, cross_val_score

from sklearn_relevance import CrossLabSplit, LeaveOneLabOut


@pytest.fixture
def data(rng):
    labs = np.repeat(np.array(["lab_b", "lab_a", "lab_c"]), [5, 4, 6])
    X = rng.normal(size=(15, 3))
    y = np.tile([0, 1], 8)[:15]
    return X, y, labs


def test_leave_one_lab_out_is_leave_one_group_out(data):
    X, y, labs = data
    ours = list(LeaveOneLabOut().split(X, y, labs))
    ref = list(LeaveOneGroupOut().split(X, y, labs))
    assert len(ours) == 3 == LeaveOneLabOut().get_n_splits(X, y, labs)
    for (a, b), (c, d) in zip(ours, ref):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        assert len(set(labs[b])) == 1 and labs[b][0] not in set(labs[a])


def test_cross_lab_split_gives_every_ordered_pair(data):
    X, y, labs = data
    cv = CrossLabSplit()
    splits = list(cv.split(X, y, labs))
    assert cv.get_n_splits(X, y, labs) == len(splits) == 6
    seen = [(labs[tr][0], labs[te][0]) for tr, te in splits]
    assert seen == cv.lab_pairs(labs)
    names = ["lab_a", "lab_b", "lab_c"]
    assert seen == [(a, b) for a in names for b in names if a != b]
    for tr, te in splits:  # the whole of one lab trains, the whole of another tests
        assert len(set(labs[tr])) == 1 and len(set(labs[te])) == 1
        np.testing.assert_array_equal(tr, np.flatnonzero(labs == labs[tr][0]))
        np.testing.assert_array_equal(te, np.flatnonzero(labs == labs[te][0]))
    only = CrossLabSplit(pairs=[("lab_c", "lab_a")])
    (tr, te), = only.split(X, y, labs)
    assert set(labs[tr]) == {"lab_c"} and set(labs[te]) == {"lab_a"}


def test_cross_lab_split_bad_input(data):
    X, y, labs = data
    with pytest.raises(ValueError, match="'groups' parameter should not be None"):
        list(CrossLabSplit().split(X, y))
    with pytest.raises(ValueError, match="at least 2 labs"):
        CrossLabSplit().get_n_splits(groups=np.zeros(4))
    with pytest.raises(ValueError, match="'pairs' parameter of CrossLabSplit"):
        CrossLabSplit(pairs=[("lab_a", "lab_a")]).get_n_splits(groups=labs)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        list(CrossLabSplit().split(X[:3], y, labs))


@pytest.mark.parametrize("cv", [LeaveOneLabOut(), CrossLabSplit()])
def test_splitters_work_as_cv_in_grid_search(data, cv):
    X, y, labs = data
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=cv)
    search.fit(X, y, groups=labs)
    n = cv.get_n_splits(X, y, labs)
    assert len([k for k in search.cv_results_ if k.startswith("split")
                and k.endswith("test_score")]) == n
    scores = cross_val_score(LogisticRegression(), X, y, groups=labs, cv=cv)
    assert scores.shape == (n,)
