"""Checks for scripts and command lines: why a file or a device cannot be used.

Each returns a short phrase saying what is wrong, or None when nothing is,
so that the caller words its own error (naming its option or flag) before
any work starts. The estimators, readers and the command line use the same
checks.
"""

from __future__ import annotations

from ._paths import file_problem as _file_problem
from ._validation import device_problem as _device_problem

__all__ = ["file_problem", "device_problem"]


def file_problem(path):
    """Why ``path`` cannot be read as a regular file (a phrase), or None.

    A folder, a FIFO, a socket or a device is not "missing": the phrase says
    what the path is instead, so that the user does not look for a typo.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str or None
        For example ``"does not exist"``, ``"is a folder, not a file"``,
        ``"is a FIFO (named pipe), not a regular file"``; None for a
        regular file.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_relevance.checks import file_problem
    >>> folder = tempfile.mkdtemp()
    >>> file_problem(os.path.join(folder, "labels.csv"))
    'does not exist'
    >>> file_problem(folder)
    'is a folder, not a file'
    >>> with open(os.path.join(folder, "labels.csv"), "w") as fh:
    ...     _ = fh.write("pixel,label\\n")
    >>> file_problem(os.path.join(folder, "labels.csv")) is None
    True
    """
    return _file_problem(path)


def device_problem(device):
    """Why torch cannot use ``device`` here (a phrase), or None when it can.

    Parameters
    ----------
    device : str, torch.device or None
        None (leave the network where it is) and ``"cpu"`` are always usable.

    Returns
    -------
    str or None
        For example ``"CUDA is not available (torch finds no CUDA GPU)"``
        or ``"this machine has 1 CUDA device(s)"``.

    Examples
    --------
    >>> from sklearn_relevance.checks import device_problem
    >>> device_problem("cpu") is None
    True
    >>> device_problem("gpu")
    "it is not a torch device (expected e.g. 'cpu', 'cuda' or 'cuda:0')"
    """
    return _device_problem(device)
