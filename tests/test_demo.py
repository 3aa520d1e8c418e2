"""``python -m sklearn_relevance demo``: simulated and imzML input."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from sklearn_relevance.__main__ import main
from sklearn_relevance.ims import make_multilab_spectra, read_imzml, write_imzml
from sklearn_relevance.studies.demo import load_labelled_imzml


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_quick_demo_on_simulated_data(tmp_path, capsys):
    rc = main(["demo", "--quick", "--epochs", "8", "--output", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "grid search over relevance_penalty" in out and "results on the unseen lab" in out
    rows = _rows(tmp_path / "results.csv")
    assert {float(r["penalty"]) for r in rows} >= {0.0}
    assert sum(r["chosen"] == "True" for r in rows) == 1
    for r in rows:
        assert r["unseen_lab"] == "lab4"
        assert 0.0 <= float(r["accuracy"]) <= 1.0
        assert 0.0 <= float(r["sparseness"]) <= 1.0
    fig = tmp_path / "relevance_spectrum.png"
    assert fig.is_file() and 0 < fig.stat().st_size < 300_000


@pytest.fixture
def imzml_files(tmp_path):
    """Three labs as three 5 x 6 imzML files, and per-pixel labels."""
    X, y, labs = make_multilab_spectra(90, 3, n_mz=400, random_state=0)
    mz = np.linspace(2000, 10000, 400)
    files, table = [], []
    for k in range(3):
        rows = np.flatnonzero(labs == f"lab{k}")
        coords = np.column_stack([np.arange(30) % 6 + 1, np.arange(30) // 6 + 1])
        path = tmp_path / f"section{k}.imzML"
        write_imzml(path, X[rows], coords, mz)
        files.append(path)
        for (x_, y_), label in zip(coords[:-2], y[rows][:-2]):  # two pixels unlabelled
            table.append({"file": path.name, "x": x_, "y": y_,
                          "label": ["breast", "ovarian"][label], "lab": f"L{k}"})
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return files, labels, X, y, labs


def test_load_labelled_imzml_per_pixel_and_per_file(imzml_files, tmp_path):
    files, labels, X, _y, labs = imzml_files
    Xl, yl, labsl, _mz, per_file = load_labelled_imzml(files, labels, n_bins=400)
    assert Xl.shape == (84, 400) and len(per_file) == 3
    assert set(yl) == {"breast", "ovarian"} and sorted(set(labsl)) == ["L0", "L1", "L2"]
    # labelled pixels keep their spectra (the shared axis is the files' own one here)
    np.testing.assert_allclose(Xl[:28], X[labs == "lab0"][:28], rtol=1e-5)
    per_file_csv = tmp_path / "per_file.csv"
    per_file_csv.write_text("file,label,lab\nsection0,breast,A\nsection1.imzML,ovarian,B\n")
    Xf, yf, _labsf, _, _ = load_labelled_imzml(files, per_file_csv, n_bins=50)
    assert Xf.shape == (60, 50) and list(yf[:30]) == ["breast"] * 30


def test_demo_on_imzml_files_writes_relevance_ion_images(imzml_files, tmp_path, capsys):
    files, labels, *_ = imzml_files
    out = tmp_path / "out"
    rc = main(["demo", "--imzml", *map(str, files), "--labels", str(labels),
               "--output", str(out), "--penalties", "0", "0.03", "--epochs", "5",
               "--bins", "50", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    rows = _rows(out / "results.csv")
    assert rows[0]["unseen_lab"] == "L2"
    for k, path in enumerate(files):
        rel = read_imzml(out / f"section{k}_relevance.imzML", dtype=None)
        assert rel.X.shape == (30, 50)  # every pixel, labelled or not
        np.testing.assert_array_equal(rel.coords, read_imzml(path).coords)
        assert (rel.X < 0).any() and (rel.X > 0).any()  # signed relevance kept


def test_cli_errors(tmp_path, capsys, imzml_files):
    files, labels, *_ = imzml_files
    with pytest.raises(SystemExit):
        main(["demo", "--imzml", str(files[0])])
    assert "--imzml needs --labels" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--imzml", str(tmp_path / "missing.imzML"), "--labels", str(labels)])
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--penalties", "-1"])
    one_lab = tmp_path / "one.csv"
    one_lab.write_text("file,label,lab\nsection0,a,A\n")
    rc = main(["demo", "--imzml", str(files[0]), "--labels", str(one_lab), "--quiet",
               "--output", str(tmp_path / "o")])
    assert rc == 2 and "at least 2 labs" in capsys.readouterr().err


def _error_lines(err):
    return [line for line in err.splitlines() if "error:" in line]


@pytest.mark.parametrize("args, match", [
    (["--device", "nonsense"], "--device.*not a torch device"),
    (["--device", "cuda"], "--device.*CUDA is not available"),
    (["--penalties", "0", "nan"], "--penalties.*finite"),
    (["--penalties", "inf"], "--penalties.*finite"),
    (["--n-jobs", "0"], "--n-jobs"),
    (["--epochs", "0"], "--epochs"),
    (["--n-labs", "1"], "--n-labs"),
])
def test_bad_options_end_in_one_error_line_and_exit_2(args, match, tmp_path, capsys,
                                                        monkeypatch):
    """``--device nonsense`` and ``--device cuda`` on a CPU-only torch once ended
    in a traceback (exit 1) after the output folder was made."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--quiet", "--output", str(out), *args])
    assert exc.value.code == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and re.search(match, lines[0]), lines
    assert not out.exists()  # refused before any work


def test_run_demo_checks_its_config_first(tmp_path):
    from sklearn_relevance.studies.demo import DemoConfig, run_demo

    out = tmp_path / "out"
    with pytest.raises(ValueError, match="'device' option"):
        run_demo(DemoConfig(output=out, device="nonsense", verbose=False))
    with pytest.raises(ValueError, match="'penalties' option"):
        run_demo(DemoConfig(output=out, penalties=(0.0, float("nan")), verbose=False))
    assert not out.exists()


def _write_labels(path, rows, columns=("file", "x", "y", "label", "lab")):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_label_rows_that_match_no_pixel_are_reported(imzml_files, tmp_path, capsys):
    """Rows whose (x, y) match no pixel were dropped silently."""
    files, labels, *_ = imzml_files
    rows = _rows(labels)
    rows += [{"file": "section0.imzML", "x": 40, "y": 1, "label": "breast", "lab": "L0"},
             {"file": "section1", "x": 2, "y": 99, "label": "ovarian", "lab": "L1"}]
    bad = _write_labels(tmp_path / "outside.csv", rows)
    with pytest.raises(ValueError, match=r"2 of 86 rows .* match no pixel .*x=40 y=1"):
        load_labelled_imzml(files, bad)
    out = tmp_path / "out"
    rc = main(["demo", "--imzml", *map(str, files), "--labels", str(bad), "--quiet",
               "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(_error_lines(err)) == 1 and "match no pixel" in err
    assert not out.exists()


@pytest.mark.parametrize("edit, match", [
    (lambda rows: rows + [dict(rows[0], label="ovarian")], "1 rows .* repeat a pixel"),
    (lambda rows: [dict(rows[0], x="two")] + rows[1:], r"'x' .* Got 'two' on line 2"),
    (lambda rows: [dict(rows[0], y=0)] + rows[1:], r"'y' .* Got 0 on line 2"),
    (lambda rows: rows[:3] + [dict(rows[3], label="")] + rows[4:],
     r"Line 5 .* no value in column\(s\) \['label'\]"),
])
def test_bad_label_rows_refused(imzml_files, tmp_path, edit, match):
    files, labels, *_ = imzml_files
    bad = _write_labels(tmp_path / "bad.csv", edit(_rows(labels)))
    with pytest.raises(ValueError, match=match):
        load_labelled_imzml(files, bad)


@pytest.mark.parametrize("text, match", [
    ("file,label\nsection0,breast\n", r"Missing: \['lab'\]"),
    ("file,label,lab\nnope.imzML,breast,A\n", "not given with --imzml"),
    ("file,label,lab\nsection0,breast,A\nsection0.imzML,ovarian,A\n",
     "1 rows .* repeat a file"),
    ("file,label,lab\n", "has no rows"),
], ids=["no_lab_column", "unknown_file", "file_twice", "header_only"])
def test_bad_per_file_labels_refused(imzml_files, tmp_path, text, match):
    files, *_ = imzml_files
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_labelled_imzml(files, bad)


def test_one_class_per_lab_refused_before_training(imzml_files, tmp_path, capsys):
    """Each lab labelled with one class (one row per file) once trained on."""
    files, *_ = imzml_files
    per_file = tmp_path / "per_file.csv"
    per_file.write_text("file,label,lab\nsection0,breast,A\nsection1,ovarian,B\n"
                        "section2,breast,C\n")
    out = tmp_path / "out"
    rc = main(["demo", "--imzml", *map(str, files), "--labels", str(per_file),
               "--output", str(out), "--epochs", "2", "--penalties", "0"])
    captured = capsys.readouterr()
    assert rc == 2 and "at least 2 classes" in captured.err
    assert "3 of 3 labs hold one class only" in captured.err
    assert "grid search" not in captured.out and not out.exists()


def test_bad_test_lab_and_output_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["demo", "--quiet", "--n-samples", "60", "--n-labs", "3", "--test-lab",
               "lab9", "--output", str(out)])
    assert rc == 2 and "'lab9' is none of the labs" in capsys.readouterr().err
    assert not out.exists()
    a_file = tmp_path / "results.txt"
    a_file.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--output", str(a_file)])
    assert exc.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_labels_with_a_byte_order_mark(imzml_files, tmp_path):
    files, labels, *_ = imzml_files
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes())  # a spreadsheet's UTF-8 export
    Xl, yl, *_ = load_labelled_imzml(files, bom, n_bins=400)
    Xr, yr, *_ = load_labelled_imzml(files, labels, n_bins=400)
    np.testing.assert_array_equal(Xl, Xr)
    np.testing.assert_array_equal(yl, yr)


def test_a_folder_or_fifo_is_not_reported_missing(imzml_files, tmp_path, capsys):
    files, labels, *_ = imzml_files
    folder = tmp_path / "labels_dir"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a folder, not a file"):
        load_labelled_imzml(files, folder)
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--imzml", *map(str, files), "--labels", str(folder)])
    assert exc.value.code == 2
    assert "is a folder, not a file" in capsys.readouterr().err
    if hasattr(__import__("os"), "mkfifo"):
        fifo = tmp_path / "labels.fifo"
        __import__("os").mkfifo(fifo)
        with pytest.raises(SystemExit):
            main(["demo", "--imzml", *map(str, files), "--labels", str(fifo)])
        assert "FIFO" in capsys.readouterr().err


def test_cli_refuses_the_meta_device_before_work(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--quick", "--device", "meta"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--device" in err and "meta" in err
