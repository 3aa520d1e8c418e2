"""Benchmarks and studies use the package's public names only.

A benchmark (``benchmarks/*.py``) or a study (``sklearn_relevance/studies``)
is what a user could write: it may import the public modules and names of
``sklearn_relevance``, its own helpers (the benchmarks' ``_timing``,
``_ims_process``, ...; the studies' own ``_common``, ``_findings``, ...),
and anything outside the package, but no private module or name (a leading
underscore) of another part of the package. The imports are read with
``ast``, those inside functions and in code strings run by child processes
included.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "sklearn_relevance"
STUDIES = (PACKAGE, "studies")


def _private(part):
    return part.startswith("_") and not part.startswith("__")


def _files():
    found = sorted((REPO / "benchmarks").glob("*.py"))
    found += sorted((REPO / PACKAGE / "studies").rglob("*.py"))
    return found


def _package_of(path):
    """The package a file's relative imports start from (a tuple of names)."""
    rel = path.relative_to(REPO).with_suffix("").parts
    return tuple(rel[:-1])


#: imports written in code strings (children run with ``python -c``)
_IN_STRING = re.compile(r"(?m)^\s*(?:from\s+(sklearn_relevance[\w.]*)\s+import\s+([\w ,]+)"
                        r"|import\s+(sklearn_relevance[\w.]*))")


def _string_imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for m in _IN_STRING.finditer(node.value):
                if m.group(3):
                    yield node.lineno, [m.group(3).split(".")]
                else:
                    names = [n.split(" as ")[0].strip() for n in m.group(2).split(",")]
                    yield node.lineno, [m.group(1).split(".") + [n] for n in names if n]


def private_imports(source, package=()):
    """``[(line, imported name)]``: the private names of ``sklearn_relevance``
    that ``source`` imports from outside their own package.

    ``package`` is the importing file's package (``("sklearn_relevance",
    "studies")`` for a study, ``()`` for a benchmark); private modules and
    names inside it, or inside one of its subpackages, are its own.
    """
    found = []
    tree = ast.parse(source)
    imports = [(n, None) for n in ast.walk(tree)] + [
        (None, hit) for hit in _string_imports(tree)]
    for node, in_string in imports:
        if in_string is not None:
            lineno, targets = in_string
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
            else:
                base = []
            module = base + (node.module.split(".") if node.module else [])
            targets = [module + [alias.name] for alias in node.names]
            lineno = node.lineno
        elif isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
            lineno = node.lineno
        else:
            continue
        for parts in targets:
            if not parts or parts[0] != PACKAGE:
                continue
            if package and tuple(parts[: len(package)]) == tuple(package):
                continue  # the file's own package (and its subpackages)
            if any(_private(p) for p in parts[1:]):
                found.append((lineno, ".".join(parts)))
    return found


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_public_names_are_imported(path):
    package = _package_of(path) if path.is_relative_to(REPO / PACKAGE) else ()
    bad = private_imports(path.read_text(), package)
    assert not bad, f"{path.relative_to(REPO)} imports private names: {bad}"


def test_the_check_sees_private_imports():
    studies = STUDIES
    # a benchmark reaching into private modules and names
    assert private_imports("from sklearn_relevance._inference import inference_copy")
    assert private_imports("import sklearn_relevance.ims._parser")
    assert private_imports("from sklearn_relevance.ims import _parser")
    assert private_imports(
        "def f():\n    from sklearn_relevance.explainers.lrp._conservation import LayerProbe")
    assert private_imports("from sklearn_relevance.explainers import _segmentation as s")
    # ... also in the code a benchmark hands to a child process
    assert private_imports('CODE = """\nif x:\n    from sklearn_relevance.ims._layout import parse\n"""')
    assert private_imports("CODE = 'import sklearn_relevance._inference'")
    assert private_imports("CODE = 'from sklearn_relevance.ims import read_imzml, _parser'")
    assert not private_imports("CODE = 'from sklearn_relevance.ims import read_imzml'")
    # a study reaching out of its package, absolutely or relatively
    assert private_imports("from sklearn_relevance._paths import file_problem", studies)
    assert private_imports("from .._validation import device_problem", studies)
    assert private_imports("from .. import _paths", studies)
    # public names, the studies' own private modules, other packages: fine
    assert not private_imports("from sklearn_relevance.inference import inference_copy")
    assert not private_imports("from sklearn_relevance import __version__")
    assert not private_imports("import _timing\nfrom bench_imzml import _parser")
    assert not private_imports("from ._common import save_figure, _private", studies)
    assert not private_imports("from sklearn_relevance.studies._findings import x", studies)
    assert not private_imports("from sklearn.utils._param_validation import Interval")
