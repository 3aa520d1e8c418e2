"""The package's floors: imports only run down, never in a circle, and no
module reaches into another package's private rooms.

The map (``docs/design_notes.md``, "Layers") lists each room (a top-level
module or subpackage) on a floor; a module may import from its own floor
and the floors below. The imports are read with ``ast`` from the source,
including imports inside functions, so a hidden (lazy) cycle counts too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import sklearn_relevance

PACKAGE = "sklearn_relevance"
ROOT = pathlib.Path(sklearn_relevance.__file__).parent

#: Floors, lowest first: a room may import rooms on its floor or below.
FLOORS = [
    # 0. ground floor: tensors, targets, validation, batching, the module
    #    lock, the network behind an estimator, optional imports
    {"_lazy", "_optional", "_batching", "_validation", "_targets", "_tensors",
     "_module_access", "_nets", "_baselines", "_masks", "_stream", "_module_calls",
     "_pickle_guard", "_paths", "_fit_checks", "_mask_alignment",
     "_dicom", "_png", "_data_registry", "checks"},
    # 1. data: synthetic data sets, imaging mass spectrometry I/O, plots;
    #    scans in, relevance files out, resampling, fetchers
    {"datasets", "ims", "plotting", "volumes", "resampling", "relevance_io", "fetchers"},
    # 2. explainers and the fast inference copy they run on (any torch module)
    {"explainers", "_inference", "_input_stem", "_trunk_rewrites", "_which_network",
     "_private_trace", "_copy_proof", "_copy_key", "inference"},
    # 3. the model zoo (LRP learns about its sums through ``lrp_role``, so
    #    nothing below imports it)
    {"modules"},
    # 3b. the explanation request and the one target policy (every caller's
    #    explain goes through them)
    {"_request", "_target_policy"},
    # 4. what uses explainers: training penalties and metrics
    {"penalties", "metrics", "_penalty_config", "_penalty_scale"},
    # 5. the shared estimator base (with its mixins: set-up, training
    #    steps, predictions, batches) and its random stream per fit
    {"_base_net", "_net_setup", "_net_steps", "_net_predict", "_net_batches",
     "_fit_random"},
    # 6. estimators and what wraps them
    {"estimators", "transformers", "model_selection", "callbacks", "_explain"},
    # 7. studies (compare_explainers' checks and scoring beside it)
    {"evaluation", "_evaluation_checks", "_evaluation_scores", "multimodal"},
    # 8. entry points: the lazy top-level namespace and the command line
    {"", "__main__", "studies"},
]

#: Known departures, each in a file that is being rewritten elsewhere; every
#: entry is (importing module, imported module) and names what will fix it.
ALLOWED = {
}


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(modules):
    """``{module: {(imported module, imported name), ...}}`` inside the package."""
    out = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        package = name.split(".") if is_pkg else name.split(".")[:-1]
        if name == "":
            package = []
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    target = base + (node.module.split(".") if node.module else [])
                elif node.module and node.module.split(".")[0] == PACKAGE:
                    target = node.module.split(".")[1:]
                else:
                    continue
                target = ".".join(target)
                for alias in node.names:
                    sub = f"{target}.{alias.name}" if target else alias.name
                    if sub in modules:  # "from . import module"
                        found.add((sub, None))
                    else:
                        found.add((target, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == PACKAGE:
                        found.add((".".join(parts[1:]), None))
        out[name] = {(t, n) for t, n in found if t != name}
    return out


def _room(module):
    return module.split(".")[0] if module else ""


def _floor(module):
    room = _room(module)
    for i, rooms in enumerate(FLOORS):
        if room in rooms:
            return i
    raise AssertionError(f"the room {room!r} of {module!r} is on no floor of FLOORS")


def _package_of(module, modules):
    path = modules[module]
    parts = module.split(".") if path.name == "__init__.py" and module else module.split(".")[:-1]
    return [p for p in parts if p]


MODULES = _modules()
IMPORTS = _imports(MODULES)


def test_every_room_is_on_a_floor():
    for module in MODULES:
        _floor(module)


def test_no_import_runs_up_the_floors():
    up = sorted({
        (m, t) for m, targets in IMPORTS.items() for t, _ in targets
        if _floor(t) > _floor(m) and (m, t) not in ALLOWED
    })
    assert not up, f"imports running up the floors: {up}"


def test_no_import_cycle_between_modules():
    graph = {m: {t for t, _ in targets if t in MODULES and (m, t) not in ALLOWED}
             for m, targets in IMPORTS.items()}
    # a package's __init__ importing its own submodules is no cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not (m and t.startswith(m + ".")
                                                 and MODULES[m].name == "__init__.py")}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def _private_reach(module, target, name):
    """Whether ``module`` reaches into a private room of another package.

    Private modules and names (a leading underscore) may be used within their
    package and by its subpackages; the top-level package's private modules
    (the ground floor) are therefore shared by all.
    """
    own = _package_of(module, MODULES)
    parts = [p for p in target.split(".") if p]
    if name is not None:
        parts = parts + [name]
    for depth, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = parts[:depth]  # the package holding the private part
            if ".".join(owner) in MODULES and MODULES[".".join(owner)].name != "__init__.py":
                owner = owner[:-1]  # a name in a module belongs to its package
            if own[: len(owner)] != owner:
                return True
    return False


def test_no_private_name_is_used_across_packages():
    reaches = sorted(
        (m, t, n) for m, targets in IMPORTS.items() for t, n in targets
        if _private_reach(m, t, n) and (m, t) not in ALLOWED
    )
    assert not reaches, f"private names used across packages: {reaches}"


@pytest.mark.parametrize("pair", sorted(ALLOWED))
def test_allowed_departures_still_exist(pair):
    # an entry that no longer matches an import must leave the list
    module, target = pair
    assert any(t == target for t, _ in IMPORTS.get(module, ())), pair


def test_checks_see_a_violation():
    # the checks would see an upward import, a cycle and a private reach
    assert _floor("explainers.lrp.composites") < _floor("modules.spectrum")
    assert _private_reach("transformers", "metrics._checks", "as_batch")
    assert _private_reach("metrics.fidelity", "explainers._baselines", "resolve_baselines")
    assert not _private_reach("explainers.lrp._lrp", "explainers._base", "BaseExplainer")
    assert not _private_reach("metrics.fidelity", "_tensors", "forward")
    assert _floor("ims._demo") < _floor("estimators")
