"""The batched similarity primitives of the randomisation and robustness
metrics against their float64 references: SSIM against skimage's
``structural_similarity`` (as quantus 0.6 calls it on flattened maps) for
every window size and row chunking, average ranks against
``scipy.stats.rankdata``."""

import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from skimage.metrics import structural_similarity

from sklearn_relevance.metrics import _similarity
from sklearn_relevance.metrics._similarity import _window_sums, average_ranks, ssim


def skimage_ssim(a, b, win_size):
    both = np.concatenate([a, b])
    return structural_similarity(a, b, win_size=win_size,
                                 data_range=float(both.max() - both.min()))


@pytest.mark.parametrize("w", [1, 2, 3, 4, 5, 7, 8, 11, 16, 31])
def test_window_sums_equal_direct_sums(w):
    x = torch.randn(3, 2, 40, dtype=torch.float64)
    direct = x.unfold(-1, w, 1).sum(-1)
    torch.testing.assert_close(_window_sums(x, w), direct, rtol=0, atol=1e-13)
    assert _window_sums(x, w).shape == (3, 2, 40 - w + 1)


def test_window_sums_do_not_write_into_input():
    x = torch.randn(2, 30, dtype=torch.float64)
    before = x.clone()
    _window_sums(x, 1).add_(1.0)  # even the one-term sum is a copy
    _window_sums(x, 7)
    assert torch.equal(x, before)


@pytest.mark.parametrize("win_size", [3, 7, 9])
@pytest.mark.parametrize("F", [9, 50, 1000])
def test_ssim_equals_skimage(win_size, F, monkeypatch):
    if F < win_size:
        pytest.skip("fewer features than the window")
    rng = np.random.default_rng(F + win_size)
    a = rng.normal(size=(11, F))
    b = a + rng.normal(scale=rng.uniform(0.1, 3, size=(11, 1)), size=(11, F))
    b[3] = 5.0 + 1e-3 * b[3]  # an offset map with a small range
    a[4, : F // 2] = 0.0      # long constant runs
    ref = [skimage_ssim(a[i], b[i], win_size) for i in range(11)]
    # every row chunking gives the same values: all rows at once, one per
    # chunk, and a chunk that does not divide the rows
    for chunk in [F * 11, F, 3 * F]:
        monkeypatch.setattr(_similarity, "_SSIM_CHUNK", chunk)
        ours = ssim(torch.as_tensor(a), torch.as_tensor(b), win_size=win_size).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_ssim_float32_maps_and_too_short():
    a = torch.randn(4, 64)
    b = torch.randn(4, 64)
    ours = ssim(a, b)
    assert ours.dtype == torch.float64
    ref = [skimage_ssim(a[i].double().numpy(), b[i].double().numpy(), 7) for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)
    with pytest.raises(ValueError, match="at least 7 features"):
        ssim(torch.randn(2, 6), torch.randn(2, 6))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_average_ranks_equal_scipy(dtype):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 500))
    a[a < 0.3] = 0.0            # a large tie
    a[1] = np.round(a[1], 1)    # many small ties
    a[2, :7] = -0.0             # -0.0 ties with 0.0
    a[3] = 1.0                  # one row all equal
    t = torch.as_tensor(a, dtype=dtype)
    ref = rankdata(t.double().numpy(), axis=1)
    np.testing.assert_array_equal(average_ranks(t).numpy(), ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_average_ranks_every_digit_of_the_keys(dtype):
    """Values that differ only in their lowest bits, only in their highest,
    of both signs, tiny and huge: the radix passes order every digit."""
    rng = np.random.default_rng(1)
    base = np.float32(1.0) if dtype == torch.float32 else 1.0
    steps = np.arange(300)
    low = np.nextafter(base, np.inf) - base  # one unit in the last place
    rows = np.stack([
        base + low * rng.permutation(steps),                          # low bits only
        rng.permutation(steps) * 2.0 ** 60 * rng.choice([-1, 1], 300),  # high bits
        rng.choice([-1e-30, 1e-30, -3.0, 3.0, 0.0, -0.0], 300),        # ties of both signs
        rng.normal(size=300) * 10.0 ** rng.integers(-20, 20, 300),
    ])
    t = torch.as_tensor(rows, dtype=dtype)
    np.testing.assert_array_equal(average_ranks(t).numpy(),
                                  rankdata(t.double().numpy(), axis=1))


def test_average_ranks_non_finite_and_input_untouched():
    a = torch.randn(3, 50)
    a[0, 3] = float("inf")
    a[1, 4] = -float("inf")
    a[2, :5] = -0.0
    before = a.clone()
    np.testing.assert_array_equal(average_ranks(a).numpy(),
                                  rankdata(a.double().numpy(), axis=1))
    assert torch.equal(a, before) and torch.equal(a.signbit(), before.signbit())


def test_tie_averages_the_same_in_numpy_and_torch():
    """The CPU (numpy) and device (torch) tie averaging agree on every group
    pattern: no ties, all one group, groups across row ends, one column."""
    from sklearn_relevance.metrics._similarity import _tie_average_numpy, _tie_average_torch

    rng = np.random.default_rng(2)
    for n, F, p in [(5, 40, 0.5), (3, 17, 1.0), (4, 25, 0.0), (6, 1, 0.3), (2, 64, 0.05)]:
        new = torch.as_tensor(rng.random((n, F)) < p)
        new[:, 0] = True
        ours = _tie_average_numpy(new)
        assert torch.equal(ours, _tie_average_torch(new))
        # against a direct loop over the groups
        ref = np.empty((n, F))
        for i in range(n):
            starts = list(np.flatnonzero(new[i].numpy())) + [F]
            for s0, s1 in zip(starts[:-1], starts[1:]):
                ref[i, s0:s1] = (s0 + 1 + s1) / 2
        np.testing.assert_array_equal(ours.numpy(), ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("descending", [False, True])
def test_stable_order_equals_torch_stable_argsort(dtype, descending):
    """The radix order (CPU float32 / float64) is torch's stable argsort:
    ties (many, of both signs, signed zeros) keep their index order; other
    dtypes and non-finite maps take torch's sort itself."""
    from sklearn_relevance.metrics._sorting import stable_order

    rng = np.random.default_rng(3)
    a = rng.normal(size=(7, 700)) * 10.0 ** rng.integers(-30, 30, size=(7, 700))
    a[0] = np.round(a[0] * 1e-29, 0)       # a few values, many ties
    a[1, ::3] = 0.0
    a[1, 1::3] = -0.0
    a[2] = 5.0                              # one value
    a[3] = np.nextafter(1.0, 2.0) * np.arange(700) % 7  # low bits
    a[4, 10] = np.inf
    a[5, 20] = -np.inf
    t = torch.as_tensor(a).to(dtype)
    for rows in [t, t[:4], t[4:]]:  # with and without non-finite rows
        ref = torch.argsort(rows, dim=1, descending=descending, stable=True)
        assert torch.equal(stable_order(rows, descending=descending), ref)
