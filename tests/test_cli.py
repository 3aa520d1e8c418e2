"""One command line: ``sklearn-relevance demo | studies <name> | --version``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sklearn_relevance
from sklearn_relevance.__main__ import build_parser, main
from sklearn_relevance.studies import STUDIES
from sklearn_relevance.studies.catalog import STUDY_INFO


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sklearn-relevance {sklearn_relevance.__version__}"


def test_version_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "sklearn_relevance", "--version"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and sklearn_relevance.__version__ in out.stdout


def test_top_level_help_lists_demo_and_studies(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "demo" in text and "studies" in text and "--version" in text


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_help_has_description_runtime_and_options(capsys, name):
    with pytest.raises(SystemExit) as info:
        main(["studies", name, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    description = " ".join(STUDY_INFO[name][1].split())
    assert description in text
    assert "Expected runtime on a 2-core CPU" in text and STUDY_INFO[name][2] in text
    for option in ("--quick", "--out", "--quiet"):
        assert option in text


def test_studies_help_lists_every_study_with_runtime(capsys):
    with pytest.raises(SystemExit):
        main(["studies", "--help"])
    text = capsys.readouterr().out
    for name in STUDIES:
        assert name in text and STUDY_INFO[name][2] in text
    with pytest.raises(SystemExit):
        from sklearn_relevance.studies.__main__ import main as studies_main

        studies_main(["--help"])
    assert "expected runtime" in capsys.readouterr().out


def test_studies_forward_to_the_studies_module(monkeypatch, tmp_path):
    import sklearn_relevance.studies.__main__ as studies_main

    seen = []
    monkeypatch.setattr(studies_main, "main", lambda argv: seen.append(argv) or 0)
    assert main(["studies", "ct", "--quick", "--out", str(tmp_path), "--quiet"]) == 0
    assert main(["studies", "multimodal"]) == 0
    assert seen == [["ct", "--quick", "--quiet", "--out", str(tmp_path)], ["multimodal"]]


def test_unknown_study_and_missing_command_are_argparse_errors(capsys):
    for argv in (["studies", "pet"], ["studies"], []):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_demo_parser_unchanged():
    args = build_parser().parse_args(["demo", "--quick"])
    assert args.command == "demo" and args.quick and args.network == "mlp"


def test_help_runtimes_are_the_measured_ones():
    """The figures in --help come from MEASURED (CPU time of whole runs)."""
    import re

    from sklearn_relevance.studies.catalog import MEASURED

    assert set(MEASURED) == set(STUDIES)
    for name, (cpu, wall, quick_cpu) in MEASURED.items():
        minutes = float(re.search(r"about ([\d.]+) minutes", STUDY_INFO[name][2]).group(1))
        assert 0.8 * cpu <= minutes * 60 <= 1.3 * cpu, name
        seconds = float(re.search(r"about ([\d.]+) seconds", STUDY_INFO[name][3]).group(1))
        assert 0.5 * quick_cpu <= seconds <= 2 * quick_cpu, name
        assert wall > cpu
