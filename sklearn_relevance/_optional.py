"""Import optional dependencies with an error that says how to install them."""

from __future__ import annotations

import importlib


def require(module, *, owner, package=None, extra=None):
    """Import ``module`` or raise an ``ImportError`` naming what to install.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"matplotlib.pyplot"``.
    owner : str
        What needs it, for the message (``"plot_comparison"``).
    package : str, optional
        The distribution to install (default: the top-level module name).
    extra : str, optional
        The sklearn-relevance extra that brings it (``"plot"``).

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = package or module.split(".")[0]
        how = f"`pip install 'sklearn-relevance[{extra}]'` (or `pip install {package}`)" \
            if extra else f"`pip install {package}`"
        raise ImportError(
            f"{owner} needs the optional package '{package}', which could not be "
            f"imported ({exc}). Install it with {how}."
        ) from exc
