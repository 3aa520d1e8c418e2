"""The studies package and the examples: fast modes (smoke) and their outputs."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _table(out, name):
    path = out / f"{name}.csv"
    assert path.is_file(), f"{path} missing"
    rst = (out / f"{name}.inc").read_text()
    # every table carries its provenance: the seeds and the command
    assert "seed" in rst and "python -m sklearn_relevance.studies" in rst
    assert (out / f"{name}.md").is_file()
    return pd.read_csv(path)


def _figure(out, name):
    from PIL import Image

    path = out / f"{name}.png"
    assert path.is_file()
    with Image.open(path) as im:
        dpi = im.info.get("dpi", (0, 0))[0]
    assert dpi >= 149  # print quality


def test_region_relevance_transform_accepts_the_maps_explain_returns():
    """explain returns (n, 1, D, H, W); fit accepted it, transform once refused it."""
    from sklearn_relevance import RegionRelevance

    atlas = np.array([[[1, 1], [2, 0]], [[2, 2], [1, 0]]])
    R = np.random.default_rng(0).random((3, 1, 2, 2, 2))
    for statistic in ("sum", "density", "gain"):
        rr = RegionRelevance(atlas, statistic=statistic).fit(R)
        np.testing.assert_allclose(rr.transform(R), rr.transform(R[:, 0]))
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        RegionRelevance(atlas).fit(R).transform(R[:, :, :1])


def test_ct_study_quick(tmp_path):
    from sklearn_relevance.studies import ct

    res = ct.run(tmp_path, quick=True, verbose=False)
    main = _table(tmp_path, "ct_explainers")
    assert list(main["explainer"]) == ct.EXPLAINERS
    assert "smoothgrad_squared" in set(main["explainer"])
    stab = _table(tmp_path, "ct_stability")
    assert set(stab["metric"]) == set(ct.METRICS)
    dis = _table(tmp_path, "ct_disagreement")
    assert ((dis["ci_low"] >= -1) & (dis["ci_high"] <= 1)).all()  # Fisher-z interval
    assert len(res["per_seed"]) == len(ct.settings(True)["seeds"]) >= 2
    assert (tmp_path / "ct_findings.inc").is_file()
    _figure(tmp_path, "ct_comparison_seed0")
    _figure(tmp_path, "ct_maps_seed0")


def test_mri_study_quick(tmp_path, shared_data):
    if not (shared_data / "atlas").is_dir():
        pytest.skip(f"{shared_data / 'atlas'} is absent")
    from sklearn_relevance.studies import mri

    mri.run(tmp_path, quick=True, verbose=False)
    regions = _table(tmp_path, "mri_regions")
    assert set(regions["inputs"]) == set(mri.SCALINGS)
    assert len(regions) == 2 * len(mri.ATROPHY)
    ranks = regions["patients' density rank"].dropna()  # absent regions: no rank
    assert len(ranks) and ranks.between(1, 116).all()
    # the positive-part gain is undefined (empty) where the controls carry no
    # positive relevance for the patient output; never a made-up number
    gain = regions["gain, positive relevance"]
    assert (gain.isna() | (gain >= 0)).all()
    summary = _table(tmp_path, "mri_summary")
    assert list(summary["inputs"]) == list(mri.SCALINGS)
    for s in mri.SCALINGS:
        _figure(tmp_path, f"mri_slices_{s}")
        _figure(tmp_path, f"mri_region_density_{s}")


def test_drr_study_quick(tmp_path):
    from sklearn_relevance.studies import drr

    drr.run(tmp_path, quick=True, verbose=False)
    cells = _table(tmp_path, "drr_cells")
    cfg = drr.settings(True)
    assert len(cells) == len(drr.SETTINGS) * len(cfg["data_seeds"]) * len(cfg["net_seeds"])
    # paired: the difference is the chosen model's accuracy minus penalty 0's, same cell
    np.testing.assert_allclose(cells["difference"],
                               cells["accuracy, chosen"] - cells["accuracy, penalty 0"],
                               atol=1e-3)
    summary = _table(tmp_path, "drr_summary")
    assert list(summary["setting"]) == list(drr.SETTINGS)
    _figure(tmp_path, "drr_differences")


def test_multimodal_study_quick(tmp_path):
    from sklearn_relevance.studies import multimodal

    multimodal.run(tmp_path, quick=True, verbose=False)
    cases = _table(tmp_path, "multimodal_cases")
    for col in ("RBO random", "RBO uniform", "RMSE random", "RMSE uniform"):
        assert col in cases and cases[col].notna().all()
    summary = _table(tmp_path, "multimodal_summary")
    assert {"random", "uniform"} <= set(summary["estimator"])


def test_command_line(tmp_path, capsys):
    from sklearn_relevance.studies.__main__ import main

    with pytest.raises(SystemExit):
        main(["nope"])
    assert "invalid choice" in capsys.readouterr().err


def test_nothing_in_the_library_imports_the_studies():
    for path in (ROOT / "sklearn_relevance").rglob("*.py"):
        # the command line (``python -m sklearn_relevance demo``) is an entry
        # point on the studies' floor: it runs the demo study
        if "studies" in path.parts or path.name == "__main__.py" and (
                path.parent.name == "sklearn_relevance"):
            continue
        text = path.read_text()
        assert "studies" not in text or "import" not in "".join(
            line for line in text.splitlines() if "studies" in line and "import" in line), path


def _load_example(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, study", [("ct_explainer_study", "ct"),
                                         ("mri_lrp_regions", "mri"),
                                         ("multimodal_validation", "multimodal")])
def test_study_examples_are_thin_wrappers(name, study, tmp_path, monkeypatch):
    example = _load_example(name)
    calls = []
    monkeypatch.setattr(getattr(example, study), "run",
                        lambda out, quick, **kw: calls.append((out, quick)))
    example.main(["--quick", "--output", str(tmp_path)])
    assert calls == [(tmp_path, True)]


def test_ims_cross_lab_example_quick(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setattr(sys, "argv", ["ims_cross_lab.py", str(tmp_path), "--quick"])
    runpy.run_path(str(EXAMPLES / "ims_cross_lab.py"), run_name="__main__")
    assert (tmp_path / "relevance_lab4.imzML").is_file()
    assert (tmp_path / "relevance_spectrum.png").is_file()


def test_plot_explainers_ct_example_quick(tmp_path, shared_data):
    if not (shared_data / "ct2d").is_dir():
        pytest.skip(f"{shared_data / 'ct2d'} is absent")
    example = _load_example("plot_explainers_ct")
    example.main(["--quick", "--output", str(tmp_path)])
    assert (tmp_path / "explainers_overview.png").is_file()
    assert (tmp_path / "explainers_gradient.png").is_file()
