"""What each study does and how long it runs: the command line's help text.

The runtimes are wall-clock times of whole runs (all seeds) measured on the
project's shared 2-core CPU with ``/usr/bin/time python -m
sklearn_relevance.studies <name> [--quick]``; other jobs shared that CPU, so
an idle 2-core machine is faster. ``MEASURED`` says where each figure comes
from.
"""

from __future__ import annotations

import textwrap

#: name -> (one-line summary, description, full run, --quick run)
STUDY_INFO = {
    "ct": (
        "importance estimators on lesion images: fidelity against expert masks",
        "Trains a small CNN on synthetic 2D lesion images (with ring-shaped distractors) "
        "for several training seeds and scores every importance estimator the library "
        "ships (gradient family, IG, SmoothGrad, guided backprop, Grad-CAM, occlusion, "
        "LRP, XRAI) by fidelity, mask ROC-AUC, Dice and sparseness, with Student-t "
        "intervals over seeds, ranking stability and chance levels.",
        "about 25 minutes", "about 1 minute",
    ),
    "mri": (
        "LRP alpha1-beta0 relevance per AAL region on an MNI152 cohort",
        "Builds a cohort with known atrophy on the real MNI152 template and AAL atlas "
        "(needs the shared data's atlas folder: fetch_atlas), trains a 3D CNN on two "
        "input scalings for five seeds, explains the patient output with LRP "
        "alpha1-beta0 and ranks the atlas regions by relevance gain and density.",
        "about 10 minutes", "about 1 minute",
    ),
    "drr": (
        "deep relevance regularisation across labs, paired over data and network seeds",
        "Repeats the demo's comparison (relevance penalty chosen by leave-one-lab-out "
        "against penalty 0, on a lab neither model saw) over data seeds x network seeds "
        "in three simulator settings, as paired accuracy differences with intervals.",
        "about 40 minutes", "about 1 minute",
    ),
    "multimodal": (
        "modality importance against ground truth, beside chance levels",
        "Scores modality-importance estimators on eight simulated image + tabular cases "
        "with known importances (rank-biased overlap and RMSE) for several seeds, beside "
        "random and uniform estimators.",
        "about 5 minutes", "under a minute",
    ),
}

#: Where each runtime comes from.
MEASURED = {
    "mri": "the full run's findings (docs/_generated_studies/mri/mri_findings.inc)",
}


def help_text(name):
    """Description, expected runtime and output of one study, for ``--help``."""
    _, description, full, quick = STUDY_INFO[name]
    runtime = (f"Expected runtime on a 2-core CPU: {full} (--quick: {quick}). Writes CSV, "
               "markdown and reStructuredText tables and 150 dpi figures under --out "
               f"(default: studies_output/{name}).")
    return "\n\n".join(textwrap.fill(part, 78) for part in (description, runtime))


def catalog_text():
    """One line per study with its expected runtime, for the commands' epilogs."""
    lines = ["studies (expected runtime of a full run on a 2-core CPU):"]
    for name, (summary, _, full, _) in STUDY_INFO.items():
        lines.append(f"  {name:<11} {summary}\n  {'':<11} ({full})")
    return "\n".join(lines)
