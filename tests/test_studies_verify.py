"""Generated conclusions, ``--verify``, the figures' labels and the MALDI simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklearn_relevance.studies._findings import (
    ABOVE,
    BELOW,
    NOT_SHOWN,
    fact,
    interval_finding,
    rank_finding,
    read_conclusions,
    write_findings,
)


def _finding(low, high):
    return interval_finding("k", "x", (low + high) / 2, low, high, above="agree",
                            below="disagree", not_shown="not shown")


def test_interval_rule_says_agree_only_when_the_interval_excludes_zero():
    assert _finding(0.04, 0.69).verdict == ABOVE and "agree (interval above 0" in _finding(
        0.04, 0.69).text
    assert _finding(-0.5, -0.01).verdict == BELOW
    # the outside re-run of the CT study: 0.38 [-0.00, 0.66] is not "agree"
    f = _finding(-0.001, 0.66)
    assert f.verdict == NOT_SHOWN and "not shown" in f.text and "agree (" not in f.text
    one = interval_finding("k", "x", 0.3, np.nan, np.nan, above="a", below="b",
                           not_shown="c")
    assert one.verdict == NOT_SHOWN and "one replicate" in one.text


def test_rank_rule_rank_one_is_best():
    f = rank_finding("k", "rank", 20.0, 15.0, 25.0, 58.5, above="above chance",
                     below="below chance", not_shown="not shown")
    assert f.verdict == ABOVE
    f = rank_finding("k", "rank", 90.0, 80.0, 100.0, 58.5, above="a", below="b",
                     not_shown="c")
    assert f.verdict == BELOW


def test_findings_are_written_with_their_verdicts(tmp_path):
    fs = [_finding(0.1, 0.2), fact("acc", 'accuracy "0.9", range 0.8, 1.0')]
    fs[1:] = [fact("acc", 'accuracy "0.9", range 0.8, 1.0')]
    fs[0] = interval_finding("a, b", "x", 0.15, 0.1, 0.2, above="up", below="down",
                             not_shown="none")
    write_findings(tmp_path, "f", fs, header=["*prov*", ""])
    text = (tmp_path / "f.inc").read_text()
    assert text.startswith("*prov*") and text.count("\n* ") == 2
    back = read_conclusions(tmp_path / "f_conclusions.csv")
    assert back["a, b"][0] == ABOVE and back["acc"] == ("fact", fs[1].text)
    with pytest.raises(ValueError, match="distinct keys"):
        write_findings(tmp_path, "g", [fs[1], fs[1]])


def _fake_run(out, values):
    """A study folder: one interval table and its conclusions."""
    from sklearn_relevance.studies._common import interval_text, write_table

    frame = pd.DataFrame({"metric": ["a", "b"],
                          "score": [interval_text(*v, digits=3) for v in values]})
    write_table(out, "t", frame, caption="c", provenance="seed 0")
    write_findings(out, "t_findings", [interval_finding("a", "a", *values[0], above="up",
                                                        below="down", not_shown="none")])


def test_verify_report_numbers_and_conclusions(tmp_path):
    from sklearn_relevance.studies._verify import report

    old, same, moved, flipped = (tmp_path / n for n in ("old", "same", "moved", "flipped"))
    _fake_run(old, [(0.5, 0.4, 0.6), (0.1, 0.0, 0.2)])  # "above", far from 0
    _fake_run(same, [(0.45, 0.25, 0.65), (0.12, 0.05, 0.19)])
    _fake_run(moved, [(0.9, 0.7, 1.0), (0.12, 0.05, 0.19)])  # a's mean outside, same verdict
    _fake_run(flipped, [(0.1, -0.2, 0.4), (0.12, 0.05, 0.19)])
    lines = []
    assert report(old, same, lines.append) == 0
    assert "2 of 2 committed values" in lines[0]
    lines = []
    assert report(old, moved, lines.append) == 0
    assert "1 of 2" in lines[0] and any(ln.strip().startswith("OUT t: a") for ln in lines)
    lines = []
    assert report(old, flipped, lines.append) == 1
    assert any("CHANGED" in ln and "'above' -> 'not shown'" in ln for ln in lines)
    # a change the committed run flagged machine-sensitive is reported, not a failure
    close = tmp_path / "close"
    _fake_run(close, [(0.5, 0.02, 0.98), (0.1, 0.0, 0.2)])  # 0.02 < 0.1 * 0.96: flagged
    lines = []
    assert report(close, flipped, lines.append) == 0
    assert any("CHANGED" in ln and "flagged machine-sensitive" in ln for ln in lines)
    assert "1 of them flagged" in "".join(lines)
    # a committed folder without conclusions cannot be verified: its own status
    (old / "t_findings_conclusions.csv").unlink()
    assert report(old, same, lambda s: None) == 2


def test_verify_command_quick_against_a_quick_run(tmp_path, monkeypatch, capsys):
    """``--verify --quick --against DIR`` re-runs the study and reads the same."""
    from sklearn_relevance.studies import multimodal
    from sklearn_relevance.studies.__main__ import main

    tiny = dict(multimodal.settings(True), cases=[1], n_samples=120)
    monkeypatch.setattr(multimodal, "settings", lambda quick: tiny)
    committed = tmp_path / "committed"
    multimodal.run(committed, quick=True, verbose=False)
    assert main(["multimodal", "--quick", "--quiet", "--verify", "--against",
                 str(committed)]) == 0
    out = capsys.readouterr().out
    assert "read the same, 0 changed (0 of them flagged machine-sensitive in the committed run), 0 missing" in out
    # a changed conclusion gives a non-zero status
    path = committed / "multimodal_findings_conclusions.csv"
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    changed = frame.verdict != "fact"
    frame.loc[changed, "verdict"] = "below"
    frame.loc[changed, "sentence"] = "a committed sentence without a flag"
    frame.to_csv(path, index=False)
    assert main(["multimodal", "--quick", "--quiet", "--verify", "--against",
                 str(committed)]) == 1
    with pytest.raises(FileNotFoundError, match="'against'"):
        main(["multimodal", "--quick", "--verify", "--against", str(tmp_path / "nope")])


def test_maldi_simulator_lab_effects():
    from sklearn_relevance.ims import make_maldi_multilab_spectra, make_multilab_spectra

    X, y, labs, info = make_maldi_multilab_spectra(160, 4, n_mz=400, return_info=True,
                                                   random_state=0)
    assert X.shape == (160, 400) and X.dtype == np.float32 and (X >= 0).all()
    assert set(labs.tolist()) == {f"lab{k}" for k in range(4)}
    for lab in set(labs.tolist()):  # balanced classes inside every lab
        assert np.bincount(y[labs == lab]).tolist() == [20, 20]
    r = np.array(list(info["resolution"].values()))
    assert ((r >= 400) & (r <= 800)).all() and np.ptp(r) > 0
    assert info["class_mask"].any() and info["preparation_mask"].any()
    assert info["confounder_mask"] is info["preparation_mask"]
    # same seed, same data; the preparation peaks at the scale of the class peaks
    np.testing.assert_array_equal(X, make_maldi_multilab_spectra(
        160, 4, n_mz=400, random_state=0)[0])
    clean = make_maldi_multilab_spectra(160, 4, n_mz=400, noise=0.0, baseline=0.0,
                                        lab_scale_sd=0.0, spectrum_scale_sd=0.0,
                                        return_info=True, random_state=0)
    Xc, info_c = clean[0], clean[3]
    prep = Xc[:, info_c["preparation_mask"] & ~info_c["class_mask"]].max()
    cls = Xc[:, info_c["class_mask"]].max()
    assert 0.2 < prep / cls < 5
    # class-linked preparation peaks: their height follows the class inside a lab
    Xl, yl, labs_l, il = make_maldi_multilab_spectra(
        400, 2, n_mz=400, preparation_effect=0.6, preparation_corr=1.0, noise=0.0,
        baseline=0.0, lab_scale_sd=0.0, spectrum_scale_sd=0.0, return_info=True,
        random_state=1)
    own = labs_l == "lab0"
    cols = il["preparation_mask"] & ~il["class_mask"]
    h = Xl[own][:, cols].sum(1)
    assert abs(h[yl[own] == 1].mean() - h[yl[own] == 0].mean()) > 0.3 * h.mean()
    with pytest.raises(ValueError, match="'resolution' parameter"):
        make_maldi_multilab_spectra(40, 2, resolution=(800, 400))
    # the older simulator keeps its signature
    assert make_multilab_spectra(40, 2, n_mz=300, random_state=0)[0].shape == (40, 300)


def test_drr_alternatives_do_what_they_say():
    import torch

    from sklearn_relevance.studies._drr_methods import PeakPicking, RegularisedNet

    rng = np.random.default_rng(0)
    X = rng.random((64, 12)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)

    def l1(net):
        return sum(float(p.abs().sum()) for n, p in net.module_.named_parameters()
                   if n.endswith("weight"))

    kw = dict(max_epochs=15, lr=0.01, random_state=0)
    assert l1(RegularisedNet(weight_l1=0.05, **kw).fit(X, y)) < 0.7 * l1(
        RegularisedNet(**kw).fit(X, y))
    noisy = RegularisedNet(input_noise=1.0, **kw).fit(X, y)
    Xt = torch.as_tensor(X)
    noisy.module_.train()
    assert not torch.equal(noisy.infer(Xt), noisy.infer(Xt))  # noise while training
    noisy.module_.eval()
    assert torch.equal(noisy.infer(Xt), noisy.infer(Xt))  # never at prediction
    # peak picking keeps the strongest local maxima of the mean spectrum
    mean = np.zeros(20)
    mean[[3, 8, 15]] = [1.0, 3.0, 2.0]
    pp = PeakPicking(k=2).fit(np.tile(mean, (4, 1)))
    assert pp.indices_.tolist() == [8, 15]
    assert pp.transform(np.tile(mean, (2, 1))).shape == (2, 2)


def test_a_verdict_near_its_threshold_is_flagged_machine_sensitive():
    # the committed CT number: 0.42 [0.04, 0.69] "agree" read "not shown" elsewhere
    assert "machine-sensitive" in _finding(0.04, 0.69).text
    assert "machine-sensitive" not in _finding(0.30, 0.69).text
    # not shown: a re-run shows a verdict with probability >= 0.17 (the most at the centre)
    from sklearn_relevance.studies._findings import NOT_SHOWN, same_probability

    assert same_probability(NOT_SHOWN, -0.5, 0.5, 0.0) == pytest.approx(0.834, abs=1e-3)
    assert same_probability(NOT_SHOWN, -0.1, 0.69, 0.0) < same_probability(
        NOT_SHOWN, -0.5, 0.5, 0.0)
    assert "probability about 0.83" in _finding(-0.5, 0.5).text
    # a shown verdict far from its threshold reads the same almost surely
    assert same_probability(ABOVE, 0.5, 0.7, 0.0) > 0.999
    assert "machine-sensitive" in rank_finding("k", "r", 50.0, 40.0, 57.0, 58.5, above="a",
                                               below="b", not_shown="c").text


def test_figure_problems_finds_what_a_figure_lacks():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_relevance.studies._figures import figure_problems, map_grid

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert {"axes 0 has no x label", "axes 0 has no y label",
            "marks without a legend"} <= set(figure_problems(fig))
    ax.set_xlabel("x (unit)")
    ax.set_ylabel("y (unit)")
    ax.legend(["line"])
    assert figure_problems(fig) == []
    fig, ax = plt.subplots()
    im = ax.imshow(np.random.default_rng(0).random((4, 4)))
    assert "image panels without a colourbar" in figure_problems(fig)
    fig.colorbar(im, ax=ax)
    assert any("colourbar" in p for p in figure_problems(fig))
    plt.close("all")
    # non-negative maps get a one-sided scale from 0, signed ones a symmetric one
    rng = np.random.default_rng(0)
    fig = map_grid(rng.random((2, 6, 6)), {"pos": rng.random((2, 6, 6)),
                                           "signed": rng.normal(size=(2, 6, 6))})
    assert figure_problems(fig) == []
    clim = [row[0].images[0].get_clim() for row in np.reshape(fig.axes[:6], (3, 2))[1:]]
    assert clim[0][0] == 0 and clim[1][0] == -clim[1][1]


def test_a_count_names_the_members_a_rerun_may_move():
    from sklearn_relevance.studies._findings import count_note, sensitive_members

    spans = {"near": (0.45, 0.9), "far": (0.8, 0.9), "below": (0.1, 0.2)}
    assert sensitive_members(spans, 0.5) == ["near"]
    assert "machine-sensitive: near" in count_note(["near"])
    assert count_note([]) == ""


def test_a_finding_with_bars_is_a_valid_rst_list_item():
    # "|relevance|" would be read by Sphinx as an undefined substitution: every
    # bar of the sentence is escaped in the reStructuredText line
    import re

    from sklearn_relevance.studies._findings import fact

    finding = fact("k", "0.07 of its |relevance| on the peaks")
    line = finding.line()
    assert re.search(r"(?<!\\)\|", line) is None
    assert line.replace("\\|", "|") == "* " + finding.text
