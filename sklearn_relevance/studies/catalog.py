"""What each study does and how long it runs: the command line's help text.

The runtimes are the CPU time (user + system) of whole runs, all seeds,
measured on 2026-12-06 on the project's 2-core CPU: the studies run torch
with one thread and no worker processes, so their CPU time is the wall time
on an idle 2-core machine. That machine was shared (load average 15-17) and
the wall times there were 4-15 times longer (``MEASURED``).
``python benchmarks/bench_study_runtimes.py [--quick]`` measures both.
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
        "about 2 minutes", "about 10 seconds",
    ),
    "mri": (
        "LRP alpha1-beta0 relevance per AAL region on an MNI152 cohort",
        "Builds a cohort with known atrophy on the real MNI152 template and AAL atlas "
        "(needs the shared data's atlas folder: fetch_atlas), trains a 3D CNN on two "
        "input scalings for five seeds, explains the patient output with LRP "
        "alpha1-beta0 and ranks the atlas regions by relevance gain and density.",
        "about 2.5 minutes", "about 10 seconds",
    ),
    "drr": (
        "deep relevance regularisation across labs, paired over data and network seeds",
        "Repeats the demo's comparison (relevance penalty chosen by leave-one-lab-out "
        "against penalty 0, on a lab neither model saw) over data seeds x network seeds "
        "in three simulator settings, as paired accuracy differences with intervals.",
        "about 5.5 minutes", "about 10 seconds",
    ),
    "multimodal": (
        "modality importance against ground truth, beside chance levels",
        "Scores modality-importance estimators on eight simulated image + tabular cases "
        "with known importances (rank-biased overlap and RMSE) for several seeds, beside "
        "random and uniform estimators.",
        "about 2.5 minutes", "about 10 seconds",
    ),
}

#: name -> (CPU s of the full run, wall s on the loaded machine, CPU s of --quick):
#: full runs sampled from /proc/<pid>/stat every 10 s (the last sample, within
#: 10 s of the end), --quick runs by benchmarks/bench_study_runtimes.py --quick.
MEASURED = {
    "ct": (106, 1787, 8.6),
    "mri": (139, 554, 7.8),
    "drr": (313, 2351, 6.8),
    "multimodal": (132, 1989, 5.2),
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
