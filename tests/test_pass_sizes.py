"""Pass sizes of the expanding explainers (IG, SmoothGrad, occlusion).

Without ``internal_batch_size``, a pass holds as many rows as the network's
activations allow within one memory budget (measured by a probe forward of
one row), never more inputs than the input budget, and at least one row.
The values never depend on the pass size.
"""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from sklearn_relevance.explainers import IntegratedGradients, Occlusion, SmoothGrad
from sklearn_relevance.explainers import _engine
from sklearn_relevance._batching import _BUDGET_TABLE, MEMORY_BUDGETS
from sklearn_relevance.explainers._engine import (
    activation_bytes,
    max_rows_for,
    pass_row_bytes,
)
from sklearn_relevance.modules import ImageCNN


def _conv(width, spatial=16):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 3),
    ).eval()


def test_probe_counts_each_storage_once():
    # conv output (4 x 8 x 8 floats) and the ReLU's: two storages of 1 KiB;
    # Flatten is a view of the ReLU output; the Linear gives 2 floats
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                           nn.Linear(256, 2)).eval()
    X = torch.randn(3, 1, 8, 8)
    assert activation_bytes(module, X) == (2 * 1024 + 8, 1024)
    inplace = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True),
                            nn.Flatten(), nn.Linear(256, 2)).eval()
    assert activation_bytes(inplace, X) == (1024 + 8, 1024)  # in place: one storage


def test_rows_follow_the_network_not_only_the_input():
    X = torch.randn(4, 1, 16, 16)
    narrow, wide = _conv(4), _conv(64)
    rows_narrow = max_rows_for(X, None, module=narrow)
    rows_wide = max_rows_for(X, None, module=wide)
    # same input, 16x the activations: far fewer rows per pass
    assert rows_wide * 8 <= rows_narrow
    row_in = X[0].numel() * 4
    for module, rows in ((narrow, rows_narrow), (wide, rows_wide)):
        per_row = pass_row_bytes(module, X)
        assert rows == max(min(MEMORY_BUDGETS["pass_activations_cpu"] // per_row,
                               MEMORY_BUDGETS["explain_pass_input"] // row_in), 1)
    # the input budget still caps networks with small activations
    tiny = nn.Sequential(nn.Flatten(), nn.Linear(256, 2)).eval()
    assert max_rows_for(X, None, module=tiny) == MEMORY_BUDGETS["explain_pass_input"] // row_in
    assert max_rows_for(X, 7, module=wide) == 7  # internal_batch_size wins


def test_a_row_larger_than_the_budget_gives_one_row(monkeypatch):
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", 1024)
    X = torch.randn(4, 1, 16, 16)
    assert max_rows_for(X, None, module=_conv(8)) == 1


def test_accelerator_budget_and_forward_only_passes(monkeypatch):
    module, X = _conv(8), torch.randn(4, 1, 16, 16)
    kept, largest = activation_bytes(module, X)
    row_in = X[0].numel() * 4
    # on the CPU forward-only passes are sized like gradient passes
    assert pass_row_bytes(module, X, backward=False) == row_in + kept + 2 * largest
    monkeypatch.setattr(_engine, "_on_cpu", lambda X: False)
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_accelerator", 100 * (row_in + 2 * largest))
    assert pass_row_bytes(module, X, backward=False) == row_in + 2 * largest
    with torch.no_grad():
        assert max_rows_for(X, None, module=module) == 100
    budget = MEMORY_BUDGETS["pass_activations_accelerator"]
    assert max_rows_for(X, None, module=module) == budget // (row_in + kept + 2 * largest)


def test_probe_leaves_the_module_and_the_random_state_alone():
    torch.manual_seed(0)
    module = ImageCNN((1, 16, 16), 2).eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    X = torch.randn(3, 1, 16, 16)
    state = torch.get_rng_state()
    assert activation_bytes(module, X) is not None
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def test_probe_runs_once_per_module_and_shape():
    calls = []

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            calls.append(x.shape[0])
            return self.conv(x).flatten(1).sum(1, keepdim=True)

    module = Counting().eval()
    X = torch.randn(5, 1, 8, 8)
    first = max_rows_for(X, None, module=module)
    assert calls == [1]
    assert max_rows_for(X, None, module=module) == first and calls == [1]
    max_rows_for(torch.randn(5, 1, 10, 10), None, module=module)
    assert calls == [1, 1]  # a new sample shape is measured again


def test_training_mode_keeps_the_input_rule():
    # a probe in training mode would draw dropout masks and write BatchNorm
    # statistics: no probe, the input-bytes rule of the CPU
    module = ImageCNN((1, 16, 16), 2).train()
    X = torch.randn(3, 1, 16, 16)
    assert activation_bytes(module, X) is None
    assert max_rows_for(X, None, module=module) == MEMORY_BUDGETS["explain_pass_input_cpu"] // (16 * 16 * 4)
    assert module.features[1].num_batches_tracked.item() == 0


def test_failing_probe_falls_back_and_the_explainer_reports():
    module = nn.Sequential(nn.Flatten(), nn.Linear(10, 2)).eval()
    X = torch.randn(3, 1, 4, 4)  # 16 features: the module cannot take it
    assert activation_bytes(module, X) is None
    with pytest.raises(ValueError, match="'X' parameter"):
        IntegratedGradients(n_steps=4).explain(module, X, target=0)


@pytest.mark.parametrize("make", [
    lambda: IntegratedGradients(n_steps=12),
    lambda: SmoothGrad(n_samples=6, random_state=0),
    lambda: Occlusion(window=4),
])
def test_values_do_not_depend_on_the_pass_size(make, monkeypatch):
    torch.manual_seed(0)
    module = ImageCNN((1, 16, 16), 3).eval()
    X, target = torch.randn(6, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    default = make().explain(module, X, target)
    one_row = make().set_params(internal_batch_size=1).explain(module, X, target)
    all_rows = make().set_params(internal_batch_size=10_000).explain(module, X, target)
    # a tiny budget: the adaptive rule down to a few rows per pass
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", 3 * pass_row_bytes(module, X))
    small = make().explain(module, X, target)
    scale = float(default.abs().max())
    for other in (one_row, all_rows, small):
        torch.testing.assert_close(other, default, rtol=0, atol=1e-5 * scale)


def test_probe_is_thread_local():
    # a forward of another thread during the probe is not counted
    module = _conv(16)
    X = torch.randn(2, 1, 16, 16)
    big = torch.randn(64, 1, 64, 64)
    stop = threading.Event()

    def hammer():
        with torch.no_grad():
            while not stop.is_set():
                module(big)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        measured = activation_bytes(module, X)  # the module the other thread runs
    finally:
        stop.set()
        thread.join()
    assert measured == activation_bytes(_conv(16), X)  # an idle twin


def test_every_memory_budget_comes_from_the_one_table():
    """Module-level budgets name an entry of ``_batching.MEMORY_BUDGETS``
    instead of typing a number, so one table holds every budget."""
    import ast
    import pathlib

    import sklearn_relevance
    from sklearn_relevance._batching import MEMORY_BUDGETS

    root = pathlib.Path(sklearn_relevance.__file__).parent
    literal = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                continue
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if not any(n.endswith(("BUDGET", "_MIN_BYTES")) for n in names):
                continue
            refs = {n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", None)
                    for n in ast.walk(node.value)}
            if "MEMORY_BUDGETS" not in refs and path.name != "_batching.py":
                literal.append(f"{path.relative_to(root)}: {names}")
    assert not literal, f"budgets typed outside MEMORY_BUDGETS: {literal}"
    assert all(isinstance(v, int) and v > 0 for v in MEMORY_BUDGETS.values())


def test_weight_heavy_networks_get_passes_that_amortise_their_weights(monkeypatch):
    # 8 x 8 x 8 activations per row against a 512 x 600 dense layer: the
    # activation budget alone would give 2 rows
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                           nn.Linear(512, 600), nn.ReLU(), nn.Linear(600, 2)).eval()
    X = torch.randn(4, 1, 8, 8)
    row = pass_row_bytes(module, X)
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", 2 * row)
    kept = activation_bytes(module, X)[0]
    weights = _engine.weight_bytes(module)
    wanted = -(-_engine.WEIGHT_SHARE * weights // kept)
    assert wanted > 2
    assert max_rows_for(X, None, module=module) == min(wanted, MEMORY_BUDGETS["pass_activations_weights"] // row)
    # capped by the input budget (dense networks keep their passes) ...
    assert max_rows_for(X, None, budget=3 * X[0].numel() * 4, module=module) == 3
    # ... and by the weights' budget
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_weights", 3 * row)
    assert max_rows_for(X, None, module=module) == 3
    # forward-only passes read the weights once whatever their rows: no rule
    with torch.no_grad():
        assert max_rows_for(X, None, module=module) == 2


def test_stem_split_only_where_a_row_and_its_stem_outputs_fit(monkeypatch):
    from sklearn_relevance._inference import inference_copy
    from sklearn_relevance._input_stem import input_stem

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).double().eval()
    X = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    fast = inference_copy(net, X)
    split = input_stem(fast)
    rows = []
    split.stem.register_forward_hook(lambda m, args, out: rows.append(len(args[0])))
    ig = IntegratedGradients(n_steps=10)
    expected = ig.explain(net, X, 1)
    torch.testing.assert_close(ig.explain(fast, X, 1), expected)
    assert sum(rows) <= 3 * len(X) + 1  # split: not once per step (+ the probe)
    # one row plus 4 stem outputs no longer fits: the plain passes run
    row = pass_row_bytes(fast, X)
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", row + split.output_nbytes(X))
    rows.clear()
    torch.testing.assert_close(ig.explain(fast, X, 1), expected)
    assert sum(rows) == 10 * len(X)


def test_one_sizing_rule_reads_the_one_table(monkeypatch):
    """Five functions sized passes from a table re-aliased into a dozen module
    constants; chunk_size_for and the explainers' max_rows_for now share one
    rule, _batching.pass_rows, which reads the budgets by name at call time."""
    import sklearn_relevance._batching as batching
    from sklearn_relevance._batching import chunk_size_for, pass_rows

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("row_bytes"))
        return pass_rows(*args, **kwargs)

    monkeypatch.setattr(batching, "pass_rows", spy)
    monkeypatch.setattr(_engine, "pass_rows", spy)
    X = torch.randn(4, 1, 16, 16)
    assert chunk_size_for(1024, 4) == max(MEMORY_BUDGETS["array_work"] // 1024 // 4, 1)
    rows = max_rows_for(X, None, module=_conv(4))
    assert len(calls) == 2 and calls[1] is not None
    # a budget changed in the one table changes the passes at once
    monkeypatch.setitem(_BUDGET_TABLE, "explain_pass_input", 2 * 16 * 16 * 4)
    assert max_rows_for(X, None, module=_conv(4)) == min(rows, 2)
    for name in ("EXPLAIN_MEMORY_BUDGET", "FORWARD_PASS_BUDGET", "CPU_EXPLAIN_BUDGET",
                 "PASS_MEMORY_BUDGET", "WEIGHT_PASS_BUDGET"):
        assert not hasattr(_engine, name)


def _conv3d():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Linear(4, 2)).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_row_3d_passes_become_two_where_aten_would_pick_its_slow_kernel(
        monkeypatch, dtype):
    # ATen runs a one-row float32 Conv3d of few channels on its native im2col
    # kernel (about 5x slower than oneDNN's from two rows on): where the
    # budget gives one row and one row fits it, the pass takes two
    net, X = _conv3d().to(dtype), torch.randn(4, 1, 8, 8, 8, dtype=dtype)
    row = pass_row_bytes(net, X)
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", row + 1)
    assert max_rows_for(X, None, module=net) == (2 if dtype == torch.float32 else 1)
    # a row beyond the budget stays one row (memory is what limits there)
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", row // 2)
    assert max_rows_for(X, None, module=net) == 1
    # 2D networks are not concerned
    X2 = torch.randn(4, 1, 16, 16, dtype=dtype)
    net2 = _conv(8).to(dtype)
    monkeypatch.setitem(_BUDGET_TABLE, "pass_activations_cpu", pass_row_bytes(net2, X2) + 1)
    assert max_rows_for(X2, None, module=net2) == 1
