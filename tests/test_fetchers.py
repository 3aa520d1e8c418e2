"""Fetchers against a local mirror (file:// URL to the shared data folder), offline."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from sklearn_relevance import fetchers
from sklearn_relevance._data_registry import DATASETS
from sklearn_relevance.fetchers import (
    available_datasets,
    fetch_atlas,
    fetch_dataset,
    fetch_medmnist,
    get_data_home,
)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_matches_the_shared_files(shared_data):
    """Every listed file exists with its checksum and size; every data file is listed."""
    listed = set()
    for name, entry in DATASETS.items():
        assert entry["origin"] and entry["licence"] and entry["description"], name
        for relpath, sha256, size, url in entry["files"]:
            path = shared_data / relpath
            assert path.is_file(), relpath
            assert path.stat().st_size == size and _sha(path) == sha256, relpath
            assert url is None or url.startswith("https://"), url
            listed.add(relpath)
    on_disk = {str(p.relative_to(shared_data)) for p in shared_data.rglob("*") if p.is_file()}
    assert on_disk - listed == {"SOURCES.md"}


def test_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_RELEVANCE_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env" and (tmp_path / "env").is_dir()
    assert get_data_home(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("SKLEARN_RELEVANCE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == tmp_path / "home" / "sklearn_relevance_data"


def test_fetch_every_dataset_from_a_file_mirror(tmp_path, shared_data):
    mirror = shared_data.resolve().as_uri()
    for name in DATASETS:
        data = fetch_dataset(name, data_home=tmp_path, base_url=mirror)
        assert data.path == tmp_path and data.licence == DATASETS[name]["licence"]
        for relpath, path in data.files.items():
            assert path.read_bytes() == (shared_data / relpath).read_bytes()
    assert not list(tmp_path.rglob("*.part"))
    # present and verified: no download needed
    again = fetch_atlas(data_home=tmp_path, download_if_missing=False)
    from sklearn_relevance.datasets import load_atlas

    assert len(load_atlas(again.path / "atlas").region_ids) == 116
    assert fetch_medmnist("breast", data_home=tmp_path).filename.name == "breastmnist.npz"


def test_mirror_from_the_environment_and_shared_folder_as_home(tmp_path, shared_data,
                                                              monkeypatch):
    monkeypatch.setenv("SKLEARN_RELEVANCE_DATA_URL", shared_data.resolve().as_uri())
    data = fetch_dataset("imzml_m2aia", data_home=tmp_path)
    assert all(p.is_file() for p in data.files.values())
    # the read-only shared folder as data home: verified in place, nothing written
    monkeypatch.setenv("SKLEARN_RELEVANCE_DATA", str(shared_data))
    monkeypatch.delenv("SKLEARN_RELEVANCE_DATA_URL")
    assert fetch_dataset("atlas", download_if_missing=False).path == shared_data


def test_checksum_mismatch_leaves_nothing(tmp_path, shared_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "medmnist", mirror / "medmnist")
    (mirror / "medmnist" / "adrenalmnist3d.npz").chmod(0o644)
    (mirror / "medmnist" / "adrenalmnist3d.npz").write_bytes(b"tampered")
    home = tmp_path / "home"
    with pytest.raises(OSError, match="SHA-256 is .* expected"):
        fetch_medmnist("adrenal3d", data_home=home, base_url=mirror.as_uri())
    assert not list((home / "medmnist").iterdir())


def test_corrupt_local_file_is_replaced(tmp_path, shared_data):
    shutil.copytree(shared_data / "atlas", tmp_path / "atlas")
    bad = tmp_path / "atlas" / "AAL.csv"
    bad.chmod(0o644)
    bad.write_text("broken")
    with pytest.raises(OSError, match="has another checksum.*download_if_missing=False"):
        fetch_atlas(data_home=tmp_path, download_if_missing=False)
    fetch_atlas(data_home=tmp_path, base_url=shared_data.resolve().as_uri())
    assert bad.read_bytes() == (shared_data / "atlas" / "AAL.csv").read_bytes()


def test_no_network_says_what_to_do(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise fetchers.urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(fetchers.urllib.request, "urlopen", offline)
    monkeypatch.delenv("SKLEARN_RELEVANCE_DATA_URL", raising=False)
    with pytest.raises(OSError) as info:
        fetch_dataset("imzml_examples", data_home=tmp_path)
    message = str(info.value)
    assert "https://github.com/alexandrovteam/pyimzML" in message
    assert "SKLEARN_RELEVANCE_DATA" in message and "file:///" in message
    with pytest.raises(OSError, match="no upstream copy.*mirror"):
        fetch_dataset("mri_volumes", data_home=tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="'name' parameter of fetch_dataset"):
        fetch_dataset("mnist", data_home=tmp_path)
    with pytest.raises(ValueError, match="'name' parameter of fetch_medmnist"):
        fetch_medmnist("chest", data_home=tmp_path)
    with pytest.raises(ValueError, match="'timeout' parameter"):
        fetch_dataset("atlas", data_home=tmp_path, timeout=0)
    info = available_datasets()
    assert set(info) == set(DATASETS) and all(b.size_bytes > 0 for b in info.values())
