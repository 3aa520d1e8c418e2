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
    from sklearn_relevance.studies._figures import figure_problems

    res = ct.run(tmp_path, quick=True, verbose=False)
    cfg = ct.settings(True)
    main = _table(tmp_path, "ct_explainers")
    assert list(main["explainer"]) == ct.EXPLAINERS + [ct.CHANCE]
    stab = _table(tmp_path, "ct_stability")
    assert set(stab["metric"]) == set(cfg["metrics"])
    dis = _table(tmp_path, "ct_disagreement")
    assert ((dis["ci_low"] >= -1) & (dis["ci_high"] <= 1)).all()  # Fisher-z interval
    # every (data seed, training seed) pair is a cell, intervals over all of them
    assert len(res["per_cell"]) == len(cfg["data_seeds"]) * len(cfg["seeds"]) >= 4
    n = len(res["per_cell"])
    assert all(len(v.split()) == n for v in dis["Spearman per network"])
    # the chance level of every metric, averaged over the data seeds
    chance = main.set_index("explainer").loc[ct.CHANCE, ct.METRICS].astype(float)
    assert chance["fidelity"] == 0
    assert chance["mask_roc_auc"] == pytest.approx(0.5, abs=0.02)
    fractions = []
    for d in cfg["data_seeds"]:
        m = ct._test_data(cfg, d)[2][cfg["n_train"]:].reshape(cfg["n_test"], -1)
        fractions.append(m[m.any(1)].mean())
    assert chance["mask_dice"] == pytest.approx(np.mean(fractions), abs=0.02)
    assert chance["sparseness"] == pytest.approx(1 / 3, abs=0.02)
    assert "Chance levels" in (tmp_path / "ct_findings.inc").read_text()
    # written again from the CSV (no training): numbers kept, one chance row
    before = (tmp_path / "ct_explainers.csv").read_text()
    ct.write_chance_levels(tmp_path, quick=True)
    assert (tmp_path / "ct_explainers.csv").read_text() == before
    # the full study runs the seed's XRAI-Dice claim over at least 3 x 5 networks
    full = ct.settings(False)
    assert ct.XRAI_DICE in full["metrics"]
    assert len(full["data_seeds"]) >= 3 and len(full["seeds"]) >= 5
    conclusions = pd.read_csv(tmp_path / "ct_findings_conclusions.csv")
    assert {"fidelity vs mask_roc_auc", "fidelity vs mask_dice"} <= set(conclusions["key"])
    # sanity columns for every explainer (pass rates within [0, 1]), with findings
    sanity = _table(tmp_path, "ct_sanity")
    assert list(sanity["explainer"]) == ct.EXPLAINERS
    assert set(full["sanity"]) == set(cfg["sanity"]) == {"mprt", "random_logit",
                                                          "data_randomisation"}
    for t in cfg["sanity"]:
        rates = res["sanity"][t]
        assert rates.shape == (n, len(ct.EXPLAINERS))
        assert np.nanmin(rates) >= 0 and np.nanmax(rates) <= 1
    assert {"sanity mprt", "sanity guided_backprop mprt"} <= set(conclusions["key"])
    assert "ct_sanity" in res["figures"]
    for name, fig in res["figures"].items():
        _figure(tmp_path, name)
        assert figure_problems(fig) == [], name


def test_ct_figure_maps_are_seeded():
    """The CT figures' maps: a noisy explainer draws the same noise in every
    run (it drew unseeded noise), the others are left as they are."""
    import torch

    from sklearn_relevance.studies.ct import _seeded

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 2))
    X = torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 1, 0])
    for name in ["smoothgrad", "smoothgrad_squared"]:
        a, b = (_seeded(name).explain(net, X, t) for _ in range(2))
        assert torch.equal(a, b)
        assert not torch.equal(a, _seeded(name, seed=1).explain(net, X, t))
    assert "random_state" not in _seeded("gradient").get_params()


def test_ct_lead_rule_picks_and_tests_one_statistic():
    # the subject is the highest mean; a near tie reads "not shown" whichever of the
    # two is on top, so the verdict cannot flip with the subject between machines
    from sklearn_relevance.studies import ct

    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    base = rng.normal(size=(15, 1))
    tie = np.hstack([base + 1.0, base + 1.0 + rng.normal(0, 1e-3, (15, 1)), base])
    for flip in (tie, tie[:, [1, 0, 2]]):
        f = ct._leader("lead m", "m", {"m": flip}, names, over="15 networks")
        assert f.verdict == "not shown"
    clear = np.hstack([base + 1.0, base, base - 1.0]) + rng.normal(0, 0.01, (15, 3))
    f = ct._leader("lead m", "m", {"m": clear}, names, over="15 networks")
    assert f.verdict == "above" and "highest mean a minus the runner-up b" in f.text
    # ranks do not choose the subject: b wins most networks by a little, a wins
    # the rest by a lot and has the higher mean
    s = np.tile([0.0, 0.1, -5.0], (15, 1))
    s[:5, 0] = 3.0
    f = ct._leader("lead m", "m", {"m": s}, names, over="15 networks")
    assert "highest mean a" in f.text and f.verdict != "below"


def test_mri_study_quick(tmp_path, shared_data):
    if not (shared_data / "atlas").is_dir():
        pytest.skip(f"{shared_data / 'atlas'} is absent")
    from sklearn_relevance.studies import mri

    res = mri.run(tmp_path, quick=True, verbose=False)
    cfg = mri.settings(True)
    regions = _table(tmp_path, "mri_regions")
    assert set(regions["inputs"]) == set(mri.SCALINGS)
    assert len(regions) == 2 * len(mri.ATROPHY)
    seeds = _table(tmp_path, "mri_per_seed")
    assert len(seeds) == len(cfg["seeds"]) * len(mri.SCALINGS) >= 4
    assert list(seeds["seed"].unique()) == list(cfg["seeds"])
    # chance: the expected mean rank of six random regions among the m defined
    for stat in ("density", "gain"):
        m = seeds[f"{stat} regions"]
        assert (m > 0).all() and (m <= 116).all()
        np.testing.assert_allclose(seeds[f"{stat} chance"], (m + 1) / 2)
        assert seeds[f"{stat} rank"].between(1, 116).all()
    # started from p(patient), the controls carry relevance for the patient
    # output, so the seed's gain is defined (started from the patient logit,
    # which is negative for most controls, it was not)
    assert (seeds["controls / patients"] > 0).all()
    per_region = _table(tmp_path, "mri_region_seeds")
    assert per_region["gain"].notna().any() and (per_region["gain"].dropna() >= 0).all()
    summary = _table(tmp_path, "mri_summary")
    assert list(summary["inputs"]) == list(mri.SCALINGS)
    assert "[" in str(summary["mean rank of the 6: gain"].iloc[0])  # an interval
    assert "chance" in (tmp_path / "mri_findings.inc").read_text()
    from sklearn_relevance.studies._figures import figure_problems

    for s in mri.SCALINGS:
        _figure(tmp_path, f"mri_slices_{s}")
        _figure(tmp_path, f"mri_region_density_{s}")
    assert len(res["figures"]) == 2 * len(mri.SCALINGS)
    for name, fig in res["figures"].items():
        assert figure_problems(fig) == [], name
    keys = set(pd.read_csv(tmp_path / "mri_findings_conclusions.csv")["key"])
    assert {f"{s}: density rank" for s in mri.SCALINGS} <= keys


def test_mri_patient_start_is_lrp_started_from_the_probability():
    """LRP's pass is linear in its start: rescaling the logit's map by p / logit
    is the map started from p. On a bias-free ReLU network alpha1-beta0
    conserves relevance, so the rescaled map sums to p and is non-negative
    even where the patient logit (and so its map) is negative."""
    import torch

    from sklearn_relevance.explainers import LRP
    from sklearn_relevance.studies.mri import patient_start

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(16, 2, bias=False)).eval()
    X = torch.rand(64, 6)
    with torch.no_grad():
        logits = net(X)
    z = logits[:, 1].numpy().astype(float)
    p = torch.softmax(logits, 1)[:, 1].numpy().astype(float)
    R = LRP(composite="alpha1_beta0").explain(net, X, target=1).detach().numpy()
    conserved = np.isclose(R.sum(1), z, rtol=1e-4, atol=1e-6)
    negative = z < 0
    assert conserved.sum() >= 48 and (negative & conserved).sum() >= 5
    assert (R[negative] <= 1e-7).all()  # the logit's map: no positive relevance
    Rp = patient_start(R, z, p)
    np.testing.assert_allclose(Rp.sum(1)[conserved], p[conserved], rtol=1e-4)
    assert (Rp >= -1e-7).all()
    # a zero logit has no defined rescaling: NaN, never a made-up map
    assert np.isnan(patient_start(R[:2], np.array([0.0, z[1]]), p[:2])[0]).all()


def test_mri_ranks_against_chance_in_words():
    """Rank 1 is the most relevant: mean ranks below the chance rank are above chance."""
    from sklearn_relevance.studies.mri import _versus

    chance = [58.5] * 5
    assert _versus([20, 25, 30, 22, 28], chance).startswith("ranked above chance")
    assert _versus([113.5] * 5, chance).startswith("ranked below chance")
    assert _versus([20, 90, 60, 40, 80], chance).startswith("not distinguishable")
    assert _versus([20, 90, 60, 40, 80], chance).endswith("above chance in 2 of 5 seeds")


def test_drr_study_quick(tmp_path):
    from sklearn_relevance.studies import drr
    from sklearn_relevance.studies._drr_methods import METHODS
    from sklearn_relevance.studies._figures import figure_problems

    res = drr.run(tmp_path, quick=True, verbose=False)
    cells = _table(tmp_path, "drr_cells")
    cfg = drr.settings(True)
    # every lab held out in turn, every method in every cell
    assert len(cells) == (len(drr.SETTINGS) * len(cfg["data_seeds"]) * cfg["n_labs"]
                          * len(cfg["net_seeds"]) * len(METHODS))
    assert set(cells["unseen lab"]) == {f"lab{k}" for k in range(cfg["n_labs"])}
    assert {"DRR", "L1 weights", "L2 weights", "dropout", "input noise", "peak picking",
            "feature selection"} <= set(cells["method"])
    summary = _table(tmp_path, "drr_summary")
    assert set(summary["setting"]) == set(drr.SETTINGS)
    # chance: the majority-class share of the unseen lab
    for setting, seed, lab, chance in zip(cells["setting"], cells["data seed"],
                                          cells["unseen lab"], cells[drr.CHANCE]):
        _X, y, labs, _info = drr._data(setting, int(seed), cfg)
        assert chance == pytest.approx(drr.majority_share(y, labs, lab), abs=1e-3)
    shares = cells[["relevance on class peaks", "relevance on lab-specific peaks"]]
    assert ((shares.fillna(0) >= 0) & (shares.fillna(0) <= 1)).all().all()
    keys = set(pd.read_csv(tmp_path / "drr_findings_conclusions.csv")["key"])
    for setting in drr.SETTINGS:
        assert f"{setting}: DRR" in keys and f"{setting}: why DRR (ceiling)" in keys
    full = drr.settings(False)
    assert len(full["data_seeds"]) >= 5 and len(full["net_seeds"]) >= 3
    for name, fig in res["figures"].items():
        _figure(tmp_path, name)
        assert figure_problems(fig) == [], name


def test_multimodal_study_quick(tmp_path):
    from sklearn_relevance.studies import multimodal

    res = multimodal.run(tmp_path, quick=True, verbose=False)
    cases = _table(tmp_path, "multimodal_cases")
    for col in ("RBO random", "RBO uniform", "RMSE random", "RMSE uniform"):
        assert col in cases and cases[col].notna().all()
    # methods carry their interval over the seeds beside the chance levels
    assert all("[" in str(v) for v in cases["RBO gradient"])
    # intervals are clipped to each metric's range (RBO in [0, 1], RMSE >= 0)
    import re

    for col in cases.columns:
        if col.startswith(("RBO", "RMSE")):
            for cell in cases[col].astype(str):
                values = [float(v) for v in re.findall(r"-?\d+\.\d+", cell)]
                assert min(values) >= 0 and (col.startswith("RMSE") or max(values) <= 1)
    summary = _table(tmp_path, "multimodal_summary")
    assert {"random", "uniform"} <= set(summary["estimator"])
    long = _table(tmp_path, "multimodal_long")  # every seed kept
    assert sorted(long["seed"].unique()) == list(multimodal.settings(True)["seeds"])
    assert len(multimodal.settings(False)["seeds"]) >= 5
    # the study writes its figure, labelled; the RMSE is explained against chance
    from sklearn_relevance.studies._figures import figure_problems

    _figure(tmp_path, "multimodal_summary")
    assert figure_problems(res["figures"]["multimodal_summary"]) == []
    assert "of the uniform guess's error" in (tmp_path / "multimodal_findings.inc").read_text()


def test_multimodal_docs_name_the_number_of_seeds_the_study_uses():
    from sklearn_relevance.studies import multimodal

    words = {3: "three", 4: "four", 5: "five", 6: "six", 10: "ten"}
    n = len(multimodal.settings(False)["seeds"])
    text = (ROOT / "docs" / "multimodal.rst").read_text()
    assert f"Over {words[n]} seeds" in text
    for k, w in words.items():
        if k != n:
            assert f"Over {w} seeds" not in text


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


def test_examples_read_the_data_variable_and_write_only_under_output(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_RELEVANCE_DATA", str(tmp_path))
    masked = _load_example("masked_training")
    assert masked.CT_DIR == tmp_path / "ct2d"  # like the tests, not a path of its own
    assert "SKIPPED" in masked._CT_SKIPPED and "SKLEARN_RELEVANCE_DATA" in masked._CT_SKIPPED
    ct_example = _load_example("plot_explainers_ct")
    assert "docs" not in Path(ct_example.OUT).parts  # docs/ only when --output names it


def test_ct_study_runs_the_seeds_xrai_dice_claim(tmp_path, monkeypatch):
    """The full study's XRAI-Dice path (IG and SmoothGrad on top), on a tiny run."""
    from sklearn_relevance.studies import ct

    tiny = dict(ct.settings(True), n_test=6, data_seeds=(0,), seeds=(0, 1),
                explainers=["gradient", "integrated_gradients", "smoothgrad"],
                metrics=ct.METRICS + [ct.XRAI_DICE])
    monkeypatch.setattr(ct, "settings", lambda quick: tiny)
    res = ct.run(tmp_path, quick=True, verbose=False)
    assert ct.XRAI_DICE in res["explainers"].columns
    conclusions = pd.read_csv(tmp_path / "ct_findings_conclusions.csv")
    claim = conclusions.set_index("key").loc["xrai_dice IG and SmoothGrad on top"]
    assert claim["verdict"] in ("above", "below", "not shown")
    assert "seed's claim" in claim["sentence"]
    assert "fidelity vs xrai_dice" in set(conclusions["key"])
