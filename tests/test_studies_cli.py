"""``python -m sklearn_relevance.studies``: bad output folders and missing data
end in one ``error:`` line and exit status 2, before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sklearn_relevance.studies import __main__ as cli


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a study starts."""
    import types

    def forbidden(name, *args, **kwargs):
        raise AssertionError(f"the study {name} started")

    monkeypatch.setattr(cli, "importlib", types.SimpleNamespace(import_module=forbidden))


def _error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m sklearn_relevance.studies: error: ")
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_out_that_is_a_file(tmp_path, capsys, no_work):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert "exists and is not a folder" in _error(capsys, ["ct", "--out", str(target)])
    assert target.read_text() == "keep me"


def test_out_that_cannot_be_written(tmp_path, capsys, no_work):
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            msg = _error(capsys, ["ct", "--out", str(locked / "out")])
        finally:
            locked.chmod(0o700)
        assert "can write in" in msg
    if Path("/proc/self").is_dir():  # read-only even for root
        assert "can write in" in _error(capsys, ["ct", "--out", "/proc/self"])


def test_missing_atlas_data(tmp_path, capsys, monkeypatch, no_work):
    monkeypatch.setenv("SKLEARN_RELEVANCE_DATA", str(tmp_path / "no_data"))
    out = tmp_path / "out"
    msg = _error(capsys, ["mri", "--out", str(out)])
    assert "atlas" in msg and "does not exist" in msg
    assert not out.exists()
