"""Optimiser states allocated before the first step: the same steps, bit for bit."""

from __future__ import annotations

import pytest
import torch

from models.optimization import allocate_states
from tests.test_speed import OFFICIAL, build, one_step

IMPLS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "default": {}}


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*shape, generator=g)) for shape in ((64, 3, 4, 4), (64,), (5,))]


def _steps(optimizer, params, n: int = 3) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        optimizer.step()


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize(
    "cls, extra",
    [
        (torch.optim.Adam, {}),
        (torch.optim.AdamW, {"weight_decay": 0.01}),
        (torch.optim.Adam, {"amsgrad": True}),
    ],
)
def test_allocated_states_step_exactly_as_lazy_ones(impl, cls, extra):
    lazy_params, early_params = _params(), _params()
    lazy = cls(lazy_params, lr=2e-4, betas=(0.5, 0.999), **extra, **IMPLS[impl])
    early = cls(early_params, lr=2e-4, betas=(0.5, 0.999), **extra, **IMPLS[impl])
    assert allocate_states(early) == 3 and allocate_states(early) == 0  # once only
    _steps(lazy, lazy_params)
    _steps(early, early_params)
    for a, b in zip(lazy_params, early_params):
        assert torch.equal(a, b)
    for a, b in zip(lazy_params, early_params):
        sa, sb = lazy.state[a], early.state[b]
        assert sa.keys() == sb.keys()
        for key in sa:
            assert sa[key].dtype == sb[key].dtype and sa[key].device == sb[key].device, key
            assert torch.equal(sa[key], sb[key]), key


def test_a_resumed_state_is_kept_and_other_optimizers_left_alone():
    params = _params()
    adam = torch.optim.Adam(params, lr=1e-3)
    _steps(adam, params, 1)
    before = {id(p): adam.state[p]["exp_avg"] for p in params}
    assert allocate_states(adam) == 0
    assert all(adam.state[p]["exp_avg"] is before[id(p)] for p in params)
    nadam = torch.optim.NAdam(_params(), lr=1e-3)
    assert allocate_states(nadam) == 0 and len(nadam.state) == 0


def test_frozen_parameters_get_no_state():
    params = _params()
    params[2].requires_grad_(False)
    adam = torch.optim.Adam(params, lr=1e-3)
    assert allocate_states(adam) == 2 and params[2] not in adam.state


@pytest.mark.parametrize("extra", [(), OFFICIAL])
def test_the_paper_model_steps_the_same_with_states_allocated_first(tmp_path, extra):
    reference = one_step(build(tmp_path, *extra))
    model = build(tmp_path, *extra)
    assert model.allocate_optimizer_states() == sum(
        1 for net in model.nets.values() for p in net.parameters() if p.requires_grad
    )
    stepped = one_step(model)
    for name in reference:
        for key in reference[name]:
            assert torch.equal(reference[name][key], stepped[name][key]), f"{name}.{key}"
