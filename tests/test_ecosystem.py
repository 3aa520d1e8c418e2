"""Habits of the surrounding ecosystems: the README example, the HTML repr,
the console script's name, compare_explainers on tabular data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_relevance import RelevanceNetClassifier, compare_explainers

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs_and_uses_the_pipeline_path(monkeypatch):
    """The README's example, with fewer epochs and a smaller grid."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Example\s+```python\n(.*?)```", text, re.S).group(1)
    assert "explain(grid, X[:5])" in code and "best[:-1].transform" not in code
    code = (code.replace("max_epochs=10", "max_epochs=1")
                .replace("[0, 0.01, 0.03]", "[0, 0.01]").replace("cv=3", "cv=2"))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["relevance"].shape == (5, 64)
    assert namespace["ig"].shape == (5, 64)


def test_html_repr_lists_no_default_callback_parameters():
    html = RelevanceNetClassifier(relevance_penalty=0.1)._repr_html_()
    assert "callbacks__" not in html
    assert "relevance_penalty" in html
    # a callback parameter set explicitly is shown
    html = RelevanceNetClassifier(callbacks__print_log__floatfmt=".2f")._repr_html_()
    assert "callbacks__print_log__floatfmt" in html
    assert "callbacks__epoch_timer" not in html


@pytest.mark.parametrize("argv0, prog", [
    ("/venv/bin/sklearn-relevance", "sklearn-relevance"),
    ("/src/sklearn_relevance/__main__.py", "python -m sklearn_relevance"),
])
def test_cli_help_names_the_command_run(monkeypatch, argv0, prog):
    from sklearn_relevance.__main__ import build_parser

    monkeypatch.setattr("sys.argv", [argv0, "--help"])
    assert build_parser().format_usage().startswith(f"usage: {prog} ")


@pytest.fixture(scope="module")
def tabular():
    X, y = load_digits(return_X_y=True)
    X = (X[:200] / 16).astype(np.float32)
    clf = RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y[:200])
    return clf, X[:16], y[:16]


def test_compare_explainers_on_tabular_data(tabular):
    clf, X, y = tabular
    table = compare_explainers(clf, X, y, n_bootstrap=0, random_state=0)
    # the defaults that need spatial axes (Grad-CAM) are left out by themselves
    assert "gradcam" not in table.index and "gradient_x_input" in table.index
    assert set(table.columns) >= {"fidelity", "sparseness"}
    assert np.isfinite(table[["fidelity", "sparseness"]].to_numpy()).all()
    masks = np.zeros_like(X, dtype=bool)
    masks[:, 20:44] = True
    table = compare_explainers(
        clf, X, y, masks=masks, explainers=["gradient", "lrp", "occlusion"],
        metrics=["mask_roc_auc", "relevance_mass_accuracy", "pointing_game"],
        n_bootstrap=0, random_state=0)
    assert np.isfinite(table.to_numpy()).all()


def test_compare_explainers_on_tabular_data_refuses_spatial_methods(tabular):
    clf, X, y = tabular
    with pytest.raises(ValueError, match="'gradcam'.*X has 0"):
        compare_explainers(clf, X, y, explainers=["gradcam"])
    with pytest.raises(ValueError, match="'xrai_dice'.*X has 0"):
        compare_explainers(clf, X, y, masks=np.ones_like(X, bool), metrics=["xrai_dice"])
