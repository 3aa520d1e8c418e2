"""The fast path of ``check_array_nd`` returns what ``check_array`` returns
and raises what it raises, for every kind of array (issue 22: predict's
input checks in one pass)."""

import warnings

import numpy as np
import pytest
from sklearn.utils import check_array

from sklearn_relevance._validation import _plain_float_array, check_array_nd


def _arrays():
    rng = np.random.RandomState(0)
    base = rng.randn(6, 4, 3)
    for dtype in (np.float32, np.float64, ">f4", np.int64, np.float16):
        for shape in ((6,), (6, 12), (6, 4, 3), (1, 1)):
            a = base.reshape(-1)[: int(np.prod(shape))].reshape(shape).astype(dtype)
            yield a
            if a.ndim > 1:
                yield np.asfortranarray(a)
                yield a[:, ::-1]
    for bad in (np.nan, np.inf, -np.inf):
        for dtype in (np.float32, np.float64):
            a = base.astype(dtype)
            a[3, 1, 2] = bad
            yield a
    yield np.full((3, 2), 3e38, np.float32)  # finite, but its sum overflows
    yield np.full((3, 2), 1e300)  # finite in float64, infinite in float32
    yield np.zeros((0, 4), np.float32)
    yield np.zeros((4, 0), np.float32)
    yield np.ma.masked_array(base.astype(np.float32))
    yield np.matrix(base[:, :, 0].astype(np.float32))


def _outcome(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", fn()
        except (ValueError, TypeError) as exc:
            return "error", f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("min_ndim", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_array_nd_equals_check_array(min_ndim, dtype):
    for i, X in enumerate(_arrays()):
        got = _outcome(lambda: check_array_nd(X, min_ndim=min_ndim, dtype=dtype))
        want = _outcome(lambda: check_array(
            X, accept_sparse=False, dtype=dtype, allow_nd=True, ensure_2d=min_ndim >= 2,
            ensure_all_finite=True, input_name="X"))
        if want[0] == "ok" and want[1].ndim < min_ndim:
            continue  # check_array_nd's own ndim error
        assert got[0] == want[0], (i, X.dtype, X.shape, got, want)
        if got[0] == "error":
            assert got[1] == want[1], i
        else:
            assert type(got[1]) is type(want[1]) and got[1].dtype == want[1].dtype
            assert got[1].shape == want[1].shape
            np.testing.assert_array_equal(got[1], want[1])
            assert (got[1] is X) == (want[1] is X), i  # a view of the caller's array alike


def test_fast_path_refuses_what_it_cannot_prove():
    a = np.ones((3, 2), np.float32)
    assert _plain_float_array(a, min_ndim=2, dtype=np.float32) is a
    for X in (np.full((3, 2), np.nan, np.float32), np.full((3, 2), 3e38, np.float32),
              np.asfortranarray(np.ones((3, 2))), np.ones((3, 2), ">f4"),
              np.zeros((0, 2), np.float32), np.ones((3, 2), np.int64)):
        assert _plain_float_array(X, min_ndim=2, dtype=np.float32) is None
