"""Fully sharded data parallel training (``training.fsdp``): PyTorch's FSDP2 (``fully_shard``) over a run's
processes, so a model whose weights, gradients and optimizer state do not fit one device (full fine-tuning of
the paper's 13B target) trains across several.

Each decoder layer (the model's ``_no_split_modules``) is one shard group and the root holds the rest (the
embeddings, and an lm_head tied to them, stay in one group). We call ``fully_shard`` ourselves, the function
accelerate's FSDP plugin calls, because accelerate 1.15 routes FSDP only on GPU-like device types and falls
back to DDP on CPU: this way the same code trains on GPUs and, over gloo, in the CPU tests.

Every function here that touches a sharded model's weights is collective: all ranks call it, in the same order.
Evaluation does not run in lockstep: :func:`gathered` all-gathers the full weights on every rank for the block,
after which one rank can run forwards alone (validation, benchmarks), and shards them again at its end.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def shard(model, device: torch.device):
    """Shard ``model`` in place over every process of the run (each decoder layer a group, then the root)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_classes = set(getattr(base, "_no_split_modules", None) or ())
    if not layer_classes:
        raise ValueError(f"training.fsdp: {type(base).__name__} names no decoder layer class (_no_split_modules), "
                         "so it cannot be sharded layer by layer; train it without training.fsdp")
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for module in model.modules():
        if type(module).__name__ in layer_classes:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind a shard (collective for a sharded one; the tensor itself otherwise)."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def like(target: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` (a whole tensor, which every rank holds) laid out as ``target``: this rank's shard of it."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(target, DTensor):
        return value
    return distribute_tensor(value.detach().to(target.device), target.device_mesh, target.placements,
                             src_data_rank=None)  # every rank has the whole value: each takes its part


@contextmanager
def gathered(model):
    """For the block, every rank holds the full weights of a sharded ``model``, and forwards need no other rank:
    one rank may evaluate alone. Collective on entry and exit; nothing for a model that is not sharded."""
    from torch.distributed.fsdp import FSDPModule

    groups = [m for m in model.modules() if isinstance(m, FSDPModule)] if isinstance(model, torch.nn.Module) else []
    for group in groups:
        group.set_reshard_after_forward(False, recurse=False)  # a forward would otherwise shard them again
        group.unshard()
    try:
        yield model
    finally:
        for group in groups:
            group.reshard()
            group.set_reshard_after_forward(True, recurse=False)


def optimizer_state(model, optimizer) -> dict:
    """The optimizer's whole state, each parameter's keyed by its name (collective: every rank gathers its shards).

    Ours rather than ``torch.distributed.checkpoint``'s ``get_optimizer_state_dict``: that one fills an empty state
    (a checkpoint before the first step) by stepping the optimizer once at lr 0, which starts Adam's step count at
    1 and moves every later update (a resumed run then differed from an uninterrupted one)."""
    names = {id(p): n for n, p in model.named_parameters()}
    state = {}
    for group in optimizer.param_groups:
        for p in group["params"]:  # the same order on every rank, as the gathers must be
            if p in optimizer.state:
                state[names[id(p)]] = {k: full(v).detach().cpu().clone() if torch.is_tensor(v) else v
                                       for k, v in optimizer.state[p].items()}
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [names[id(p)] for p in g["params"]]}
              for g in optimizer.param_groups]
    return {"state": state, "param_groups": groups}


def load_optimizer_state(model, optimizer, saved: dict) -> None:
    """Load :func:`optimizer_state`'s dict (which every rank read): each rank takes its shard of each tensor."""
    names = {id(p): n for n, p in model.named_parameters()}
    state, groups, index = {}, [], 0
    for group, saved_group in zip(optimizer.param_groups, saved["param_groups"], strict=True):
        ids = []
        for p in group["params"]:
            name = names[id(p)]
            if name in saved["state"]:
                state[index] = {k: like(p, v) if torch.is_tensor(v) and tuple(v.shape) == tuple(p.shape) else v
                                for k, v in saved["state"][name].items()}
            ids.append(index)
            index += 1
        if [names[id(p)] for p in group["params"]] != saved_group["params"]:
            raise RuntimeError("the checkpoint's optimizer holds other parameters than this model trains")
        groups.append({**{k: v for k, v in saved_group.items() if k != "params"}, "params": ids})
    optimizer.load_state_dict({"state": state, "param_groups": groups})
