"""The models' optimisers: the implementation ``--optimizer_impl`` selects, their states allocated
before the first step, and one parameter stepped at a time inside a backward pass.

:class:`models.base_model.BaseModel` uses these; a model only calls ``make_optimizer`` and
``backward_and_step``.
"""

from __future__ import annotations

from functools import partial

import torch

from util.errors import UserError

IMPLEMENTATIONS = ("auto", "fused", "foreach", "default")


def build_optimizer(
    optimizer_class: type[torch.optim.Optimizer], params: list, impl: str, device_type: str, **kwargs
) -> torch.optim.Optimizer:
    """``optimizer_class(params, **kwargs)`` in implementation ``impl`` (see ``make_optimizer``)."""
    if impl == "auto":
        impl = "fused" if fused_supported(optimizer_class, params) else "default"
    if impl == "fused" and not fused_supported(optimizer_class, params):
        raise UserError(
            f"--optimizer_impl fused: {optimizer_class.__name__} has no fused implementation for "
            f"these parameters on the {device_type}; use auto, foreach or default"
        )
    if impl == "fused":
        kwargs = {**kwargs, "fused": True}
    elif impl == "foreach":
        kwargs = {**kwargs, "foreach": True}
    return optimizer_class(params, **kwargs)


def fused_supported(optimizer_class: type, params: list) -> bool:
    """Whether ``optimizer_class(params, fused=True)`` can be built (float parameters on a device
    PyTorch has fused kernels for); building one allocates no state."""
    try:
        optimizer_class([dict(p) if isinstance(p, dict) else p for p in params], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def _scalar_dtype(fused: bool) -> torch.dtype:
    """The dtype of Adam's step counter (as ``torch.optim.optimizer._get_scalar_dtype``)."""
    if fused:
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def allocate_states(optimizer: torch.optim.Optimizer) -> int:
    """Create now the state Adam (or AdamW) creates for each parameter at its first step; return
    how many parameters got one.

    The state is the one Adam makes: a zero step counter (on the parameter's device for the fused
    and capturable implementations, else a CPU scalar) and zero first and second moments shaped
    like the parameter, so the first step computes exactly what it would have (tested bit for
    bit). Why: created inside the first backward pass, the moments (twice the parameters: 1.3 GB
    for the paper's model) are interleaved in the heap with that pass's short-lived blocks, whose
    holes then stay mapped: 0.1-0.2 GB more peak memory, measured. Parameters that already have a
    state (a resumed run) keep it. Other optimisers (NAdam, ...) are left to create theirs.
    """
    if not isinstance(optimizer, torch.optim.Adam):
        return 0
    count = 0
    for group in optimizer.param_groups:
        on_device = bool(group.get("fused")) or bool(group.get("capturable"))
        for p in group["params"]:
            if not p.requires_grad or optimizer.state.get(p):
                continue
            if on_device:
                step = torch.zeros((), dtype=_scalar_dtype(bool(group.get("fused"))), device=p.device)
            else:
                step = torch.tensor(0.0, dtype=_scalar_dtype(False), device="cpu")
            state = {
                "step": step,
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            optimizer.state[p] = state
            count += 1
    return count


def step_one_parameter(optimizer: torch.optim.Optimizer, group: dict, param: torch.Tensor) -> None:
    """Run ``optimizer``'s step on ``param`` alone (a post-accumulate-grad hook of
    ``BaseModel.backward_and_step``), then free its gradient.

    The optimiser's state stays keyed by the parameter and its groups keep their lists (restored
    at once), so its ``state_dict`` is the one a whole step would leave.
    """
    lists = [g["params"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["params"] = [param] if g is group else []
    try:
        optimizer.step()
    finally:
        for g, params in zip(optimizer.param_groups, lists):
            g["params"] = params
    param.grad = None


def backward_and_step(
    loss: torch.Tensor,
    optimizers: list[torch.optim.Optimizer],
    *,
    grad_scaler: torch.amp.GradScaler | None = None,
    inside: bool = True,
) -> None:
    """Back-propagate ``loss`` and step ``optimizers`` (their gradients zeroed first).

    ``loss`` must be the whole objective of those optimisers' parameters in this iteration (one
    backward pass). ``inside``: each parameter is updated the moment its gradient is complete (a
    post-accumulate-grad hook runs its optimiser on it alone) and the gradient is then freed, so
    the gradients of the networks never exist all at once (about a quarter of the training memory
    of the paper's model). The update is the optimiser's own, parameter by parameter, hence
    identical to stepping after the backward pass. A float16 ``grad_scaler`` must see every
    gradient before any step, so it steps after the pass, as does ``inside=False``.
    """
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    if grad_scaler is not None:
        grad_scaler.scale(loss).backward()
        for optimizer in optimizers:
            grad_scaler.step(optimizer)
        return
    if not inside:
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        return
    handles = [
        p.register_post_accumulate_grad_hook(partial(step_one_parameter, optimizer, group))
        for optimizer in optimizers
        for group in optimizer.param_groups
        for p in group["params"]
        if p.requires_grad
    ]
    try:
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
