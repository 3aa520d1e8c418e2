"""Sphinx configuration for sklearn-relevance."""

import sklearn_relevance

project = "sklearn-relevance"
copyright = "sklearn-relevance developers"
version = release = sklearn_relevance.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autosummary_generate = True
numpydoc_show_class_members = False
exclude_patterns = ["_build", "_generated_studies"]  # included, never built as pages
html_static_path = ["_static"]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://pytorch.org/docs/stable", None),
    "skorch": ("https://skorch.readthedocs.io/en/stable", None),
}
numpydoc_show_inherited_class_members = False
suppress_warnings = ["ref.ref"]  # labels of inherited scikit-learn docstrings
