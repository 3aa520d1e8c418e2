"""Smoke test of examples/adrenal_lrp_3d.py on a small AdrenalMNIST3D subset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def adrenal_run(shared_data, tmp_path_factory):
    path = shared_data / "medmnist" / "adrenalmnist3d.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    example = _load_example("adrenal_lrp_3d")
    torch.manual_seed(0)
    tables = tmp_path_factory.mktemp("adrenal_tables")
    result = example.main(["--quick", "--data", str(path), "--tables", str(tables)],
                          n_train=200, n_test=32, max_epochs=3)
    result["tables"] = tables
    return example, result


def test_adrenal_example_runs(adrenal_run):
    _, res = adrenal_run
    R, Xte = res["relevance"], res["X_test"]
    assert R.shape == Xte.shape == (32, 1, 28, 28, 28)
    assert np.isfinite(res["relevance_raw"]).all()
    assert (R >= 0).all()
    assert 0.0 <= res["balanced_accuracy"] <= 1.0
    assert res["majority"] >= 0.5


def test_adrenal_region_tables(adrenal_run):
    _, res = adrenal_run
    shape, octants = res["shape_table"], res["octant_table"]
    assert shape["region"] == ["core", "rim", "outer", "background"]
    assert len(octants["region"]) == 8
    # every voxel in exactly one region of each atlas
    assert shape["voxels"].sum() == octants["voxels"].sum() == 28 ** 3
    for table in (shape, octants):
        for key in ("share_mass", "share_normal", "density_mass", "density_normal", "gain"):
            assert len(table[key]) == len(table["region"])
        for key in ("share_mass", "share_normal"):  # NaN: no map of the group has any
            assert np.all(np.isnan(table[key])) or np.isclose(table[key].sum(), 1.0, atol=1e-4)
        assert np.all(np.nan_to_num(table["gain_normalised"], nan=0.0) >= 0)
    # the population atlas nests: core voxels are gland in most training volumes
    atlas = res["atlas_shape"]
    assert atlas.shape == (28, 28, 28)
    assert set(np.unique(atlas)) <= {1, 2, 3, 4}
    assert (atlas == 1).sum() < (atlas == 4).sum()
    # the region sums partition the maps: per-region sums add up to the total
    from sklearn_relevance.transformers import RegionRelevance

    R = np.abs(res["relevance_raw"][:, 0])
    sums = RegionRelevance(atlas, statistic="sum", labels=[1, 2, 3, 4]).fit_transform(R)
    np.testing.assert_allclose(sums.sum(1), R.reshape(len(R), -1).sum(1), rtol=1e-4)
    # relevance sits on the gland: most of it in the core and rim of the population atlas
    assert sums[:, :2].sum() > sums[:, 3].sum()


def test_adrenal_lrp_alpha1_beta0_signs(adrenal_run):
    """alpha1-beta0 keeps the sign of the explained logit and only zero
    relevance lands on empty (zero) voxels; the sum never exceeds the logit."""
    _, res = adrenal_run
    clf, Xte, yte = res["estimator"], res["X_test"], res["y_test"]
    R = res["relevance_raw"]
    with torch.no_grad():
        clf.module_.eval()
        logits = clf.module_(torch.as_tensor(Xte)).numpy()
    target = logits[np.arange(len(yte)), yte]
    flat = R.reshape(len(R), -1)
    scale = np.abs(flat).max(1) + 1e-12
    pos, neg = target > 0, target < 0
    assert np.all(flat[pos].min(1) >= -1e-5 * scale[pos])
    assert np.all(flat[neg].max(1) <= 1e-5 * scale[neg])
    # zero input voxels receive no relevance under the alpha-beta input rule
    empty = Xte.reshape(len(Xte), -1) == 0
    assert np.abs(flat[empty]).max() <= 1e-5 * scale.max()
    # relevance is the explained logit, less what the biases absorbed
    # (on this small model 46-72% of it reaches the input)
    ok = np.abs(target) > 1e-3
    ratio = flat.sum(1)[ok] / target[ok]
    assert ok.sum() >= len(target) // 2
    assert np.all((ratio > 0.2) & (ratio <= 1.05)), ratio


def test_adrenal_tables_for_the_docs(adrenal_run):
    """--tables writes what docs/ct_mri.rst includes, each with its command and seed."""
    import pandas as pd

    _, res = adrenal_run
    out = res["tables"]
    for name in ("adrenal_run", "adrenal_shape_atlas", "adrenal_octants"):
        inc = (out / f"{name}.inc").read_text()
        assert "python examples/adrenal_lrp_3d.py" in inc and "--seed 0" in inc
        assert "seed (random_state) 0" in inc and "smoke size" in inc
    shape = pd.read_csv(out / "adrenal_shape_atlas.csv")
    assert list(shape["region"]) == res["shape_table"]["region"]
    np.testing.assert_allclose(shape["gain, raw maps"], res["shape_table"]["gain"], atol=1e-3)
    run = pd.read_csv(out / "adrenal_run.csv").set_index("quantity")["value"]
    assert float(run["test balanced accuracy"]) == pytest.approx(res["balanced_accuracy"],
                                                                   abs=1e-3)
    findings = (out / "adrenal_findings.inc").read_text()
    assert "--seed 0" in findings and "balanced accuracy" in findings
