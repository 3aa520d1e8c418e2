"""The docs' code for files and atlases defines what it uses."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _blocks(page):
    text = (DOCS / page).read_text()
    for block in re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text):
        yield "\n".join(line[4:] for line in block.splitlines())


def _undefined(code):
    tree = ast.parse(code)
    defined = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.comprehension):
            defined |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
    return {n.id for n in ast.walk(tree)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - defined


def test_ct_mri_atlas_snippet_defines_its_names():
    atlas = [b for b in _blocks("ct_mri.rst") if "load_atlas" in b and "RegionRelevance" in b]
    assert len(atlas) == 1
    # the user's own files and labels are the only inputs
    assert _undefined(atlas[0]) == {"paths", "y"}
    assert "interpolation=\"nearest\"" in atlas[0]


@pytest.mark.parametrize("page", ["ct_mri.rst"])
def test_one_output_folder_per_example_command(page):
    text = (DOCS / page).read_text()
    outputs = set(re.findall(r"adrenal_lrp_3d\.py[^`]*?--output\s+(\S+)", text, flags=re.S))
    assert outputs == {"docs/_generated_studies/adrenal"}


def test_files_page_is_in_the_toctree_and_api():
    assert "   files\n" in (DOCS / "index.rst").read_text()
    api = (DOCS / "api.rst").read_text()
    for name in ("volumes.read_nifti", "volumes.read_dicom_series", "resampling.ResampleToGrid",
                 "relevance_io.write_relevance_nifti", "relevance_io.write_relevance_imzml",
                 "relevance_io.write_ion_images", "fetchers.fetch_dataset",
                 "plotting.plot_orthogonal_slices"):
        assert f"   {name}\n" in api
