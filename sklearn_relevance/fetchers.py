"""The public files of the tests and examples, fetched as scikit-learn's ``fetch_*``.

* :func:`get_data_home`: where the files live (``data_home``, else
  ``$SKLEARN_RELEVANCE_DATA``, else ``~/sklearn_relevance_data``).
* :func:`fetch_dataset` (and one ``fetch_*`` per data set): the files of a
  data set in the data home, downloaded when missing, each checked against
  its SHA-256 checksum; a download goes to a temporary name and is renamed
  only once its checksum matches.
* :func:`available_datasets`: every data set with its description, origin
  and licence.

Files come from their upstream URL (the repository and commit named in the
data folder's ``SOURCES.md``) or from a mirror with the data folder's
layout: ``base_url=...`` or ``$SKLEARN_RELEVANCE_DATA_URL`` (``https://``,
or ``file:///path/to/data`` for a copy on disk). Files that were converted
or subset (the MRI ``.npz`` volumes, two MedMNIST files) have no upstream
copy and come from a mirror only. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from sklearn.utils import Bunch

from ._data_registry import DATASETS

__all__ = [
    "get_data_home",
    "available_datasets",
    "fetch_dataset",
    "fetch_atlas",
    "fetch_imzml_examples",
    "fetch_ct_organs",
    "fetch_mri_volumes",
    "fetch_medmnist",
]

#: Environment variable naming a mirror of the data folder (a URL prefix).
MIRROR_ENV = "SKLEARN_RELEVANCE_DATA_URL"
_CHUNK = 1 << 20


def get_data_home(data_home=None):
    """The folder holding the fetched files, created when missing.

    Parameters
    ----------
    data_home : str, path-like or None, default=None
        An explicit folder; ``None`` takes ``$SKLEARN_RELEVANCE_DATA`` when
        set, else ``~/sklearn_relevance_data``.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_relevance.fetchers import get_data_home
    >>> home = get_data_home(tempfile.mkdtemp())
    >>> home.is_dir()
    True
    """
    if data_home is None:
        data_home = os.environ.get("SKLEARN_RELEVANCE_DATA") or \
            Path("~") / "sklearn_relevance_data"
    home = Path(os.fspath(data_home)).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def available_datasets():
    """Every data set: description, origin, licence, files and their total size.

    Returns
    -------
    dict of str to Bunch

    Examples
    --------
    >>> from sklearn_relevance.fetchers import available_datasets
    >>> info = available_datasets()["atlas"]
    >>> info.licence
    'Apache-2.0 (repository); FSL terms for the template'
    """
    return {
        name: Bunch(description=d["description"], origin=d["origin"], licence=d["licence"],
                    files=[f[0] for f in d["files"]],
                    size_bytes=sum(f[2] for f in d["files"]))
        for name, d in DATASETS.items()
    }


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _advice(name, relpath, home):
    return (
        f"To use it without network access: on a machine with network access run "
        f"`python -c \"from sklearn_relevance.fetchers import fetch_dataset; "
        f"fetch_dataset('{name}')\"` and copy the file to {home / relpath}; or set "
        "SKLEARN_RELEVANCE_DATA to a folder that holds the data folder's files; or "
        f"point base_url= (or ${MIRROR_ENV}) at a mirror of the data folder, e.g. "
        "'file:///path/to/data'."
    )


def _download(url, target, sha256, timeout, name, relpath, home):
    """Stream ``url`` into a temporary file beside ``target``, check, rename."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as src:
                for block in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OSError(
                f"Could not download {relpath} of data set {name!r} from {url} ({reason}). "
                + _advice(name, relpath, home)
            ) from exc
        got = digest.hexdigest()
        if got != sha256:
            raise OSError(
                f"The file downloaded from {url} is not {relpath} of data set {name!r}: "
                f"its SHA-256 is {got}, expected {sha256}. Nothing was written; the "
                "source (or its mirror) holds another version of the file."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch_dataset(name, *, data_home=None, base_url=None, download_if_missing=True,
                  timeout=60):
    """The files of one data set in the data home, downloaded and checked as needed.

    Every file present is checked against its SHA-256; a missing file (or
    one with another checksum) is downloaded from ``base_url`` (a mirror of
    the data folder), else ``$SKLEARN_RELEVANCE_DATA_URL``, else its upstream
    URL, into a temporary file that is renamed into place only when its
    checksum matches.

    Parameters
    ----------
    name : str
        A key of :func:`available_datasets` (``"atlas"``, ``"imzml_examples"``,
        ``"ct_organs"``, ``"mri_volumes"``, ``"medmnist_adrenal3d"``, ...).
    data_home : str, path-like or None, default=None
        See :func:`get_data_home`.
    base_url : str or None, default=None
        A mirror with the data folder's layout (``https://host/data`` or
        ``file:///path/to/data``).
    download_if_missing : bool, default=True
        ``False`` raises instead of downloading.
    timeout : float, default=60
        Seconds a download may wait for the server.

    Returns
    -------
    data : Bunch
        ``path`` (the data home: the data set's files lie under it at their
        relative paths), ``files`` (dict relative path -> absolute path),
        ``description``, ``origin``, ``licence``.

    Raises
    ------
    OSError
        A file is missing and cannot be downloaded (no network, no URL, or a
        checksum mismatch); the message says what to do.

    Examples
    --------
    >>> from sklearn_relevance.fetchers import fetch_dataset
    >>> aal = fetch_dataset("atlas", base_url="file:///path/to/data")  # doctest: +SKIP
    >>> sorted(aal.files)[:1]  # doctest: +SKIP
    ['atlas/AAL.csv']
    """
    owner = "fetch_dataset"
    if name not in DATASETS:
        raise ValueError(
            f"The 'name' parameter of {owner} must be one of {sorted(DATASETS)}. "
            f"Got {name!r} instead."
        )
    if base_url is not None and not isinstance(base_url, str):
        raise ValueError(
            f"The 'base_url' parameter of {owner} must be a URL string or None. "
            f"Got {base_url!r} instead."
        )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(
            f"The 'timeout' parameter of {owner} must be a positive number. "
            f"Got {timeout!r} instead."
        )
    entry = DATASETS[name]
    home = get_data_home(data_home)
    mirror = base_url if base_url is not None else os.environ.get(MIRROR_ENV) or None
    files = {}
    for relpath, sha256, _, url in entry["files"]:
        target = home / relpath
        files[relpath] = target
        if target.is_file() and _sha256(target) == sha256:
            continue
        state = "has another checksum" if target.exists() else "is missing"
        if not download_if_missing:
            raise OSError(
                f"{relpath} of data set {name!r} {state} in {home} and "
                "download_if_missing=False. " + _advice(name, relpath, home)
            )
        source = f"{mirror.rstrip('/')}/{relpath}" if mirror else url
        if source is None:
            raise OSError(
                f"{relpath} of data set {name!r} {state} in {home}, and it has no "
                f"upstream copy ({entry['origin']}): it comes from a mirror of the data "
                "folder only. " + _advice(name, relpath, home)
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        _download(source, target, sha256, timeout, name, relpath, home)
    return Bunch(path=home, files=files, description=entry["description"],
                 origin=entry["origin"], licence=entry["licence"])


def _fetcher(name, doc):
    def fetch(*, data_home=None, base_url=None, download_if_missing=True, timeout=60):
        return fetch_dataset(name, data_home=data_home, base_url=base_url,
                             download_if_missing=download_if_missing, timeout=timeout)

    entry = DATASETS[name]
    fetch.__name__ = fetch.__qualname__ = f"fetch_{name}" if name != "atlas" else "fetch_atlas"
    fetch.__doc__ = (
        f"{doc}\n\n    {entry['description'][0].upper() + entry['description'][1:]}.\n"
        f"    Origin: {entry['origin']}. Licence: {entry['licence']}.\n\n"
        "    Parameters and returns as :func:`fetch_dataset`.\n\n"
        "    Examples\n    --------\n"
        f"    >>> from sklearn_relevance.fetchers import {fetch.__name__}\n"
        f"    >>> data = {fetch.__name__}()  # doctest: +SKIP\n"
        "    >>> sorted(data.files)  # doctest: +SKIP\n"
    )
    return fetch


fetch_atlas = _fetcher("atlas", "Fetch the MNI152 template and the AAL atlas (for load_atlas).")
fetch_imzml_examples = _fetcher("imzml_examples", "Fetch the imzML.org example files.")
fetch_ct_organs = _fetcher("ct_organs", "Fetch CT slices with organ masks (for load_ct_organs).")
fetch_mri_volumes = _fetcher("mri_volumes", "Fetch the MRI volumes (for load_mri_volume).")


def fetch_medmnist(name="adrenal3d", *, data_home=None, base_url=None,
                   download_if_missing=True, timeout=60):
    """Fetch a MedMNIST file (for :func:`~sklearn_relevance.datasets.load_medmnist_npz`).

    Parameters
    ----------
    name : {"adrenal3d", "breast", "pneumonia"}, default="adrenal3d"
        AdrenalMNIST3D (the official file), BreastMNIST (a re-saved copy) or
        the class-balanced PneumoniaMNIST subset.
    data_home, base_url, download_if_missing, timeout
        As :func:`fetch_dataset`.

    Returns
    -------
    data : Bunch
        As :func:`fetch_dataset`, with ``filename``: the ``.npz`` file.

    Examples
    --------
    >>> from sklearn_relevance.fetchers import fetch_medmnist
    >>> from sklearn_relevance.datasets import load_medmnist_npz
    >>> X, y = load_medmnist_npz(fetch_medmnist("adrenal3d").filename)  # doctest: +SKIP
    """
    names = {"adrenal3d": "medmnist_adrenal3d", "breast": "medmnist_breast",
             "pneumonia": "medmnist_pneumonia"}
    if name not in names:
        raise ValueError(
            f"The 'name' parameter of fetch_medmnist must be one of {sorted(names)}. "
            f"Got {name!r} instead."
        )
    data = fetch_dataset(names[name], data_home=data_home, base_url=base_url,
                         download_if_missing=download_if_missing, timeout=timeout)
    data.filename = next(iter(data.files.values()))
    return data
