"""PEP 562 lazy attribute loading for package ``__init__`` files.

Public names are re-exported from the package root without importing every
submodule (and its optional dependencies) at ``import sklearn_relevance``.
"""

from __future__ import annotations

import importlib


def attach(package_name: str, names: dict[str, str]):
    """Return ``(__getattr__, __dir__)`` resolving ``names[attr]`` submodules lazily.

    Parameters
    ----------
    package_name : str
        ``__name__`` of the package.
    names : dict
        Public name -> relative submodule (e.g. ``".gradient"``) defining it.
    """

    def __getattr__(attr):
        try:
            module = names[attr]
        except KeyError:
            raise AttributeError(
                f"module {package_name!r} has no attribute {attr!r}"
            ) from None
        mod = importlib.import_module(module, package_name)
        if module == f".{attr}":  # the name is the submodule itself
            return mod
        return getattr(mod, attr)

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
