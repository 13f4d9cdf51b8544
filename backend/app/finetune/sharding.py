"""Sharding the frozen base across processes with FSDP2, for bases too big for one GPU.

Without it every process holds the whole base and the trainer sums the adapter's gradients
itself (``train.py``). With it (``accelerate launch --config_file deploy/accelerate/fsdp.yaml``)
each decoder layer's weights are split across the processes and gathered only while that layer
runs, so a GPU holds about 1/N of the base plus one layer at a time.

The trainer shards with PyTorch's ``fully_shard`` itself rather than through
``accelerator.prepare``: its loss calls the decoder and the output layer directly (logits only
where a label is), which needs the root of the sharded module to be that loss, and the same code
then runs on CPU processes (gloo), where it is tested. The FSDP settings of the accelerate config
(layer classes, resharding after forward, CPU offload) are honoured.

Full (unsharded) tensors are gathered for saving, so checkpoints and the final adapter have the
same layout whatever the number of processes: a sharded run can be resumed by one process and
the other way round.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from app.core.errors import InvalidInput


def fsdp_plugin(accelerator: Any) -> Any | None:
    """The FSDP settings this process was launched with, or ``None`` when not sharding.

    On GPUs accelerate builds the plugin itself; on CPU it falls back to plain multi-process, so
    the plugin is built from the environment that ``accelerate launch`` set from the config.
    """
    from accelerate.utils import (
        DistributedType,
        FullyShardedDataParallelPlugin,
        parse_flag_from_env,
    )

    if accelerator.distributed_type == DistributedType.FSDP:
        plugin = accelerator.state.fsdp_plugin
    elif accelerator.num_processes > 1 and parse_flag_from_env("ACCELERATE_USE_FSDP"):
        plugin = FullyShardedDataParallelPlugin()
    else:
        return None
    if plugin.fsdp_version != 2:
        raise InvalidInput(
            "the trainer shards with FSDP2: set fsdp_version: 2 in the accelerate config "
            "(deploy/accelerate/fsdp.yaml)"
        )
    if plugin.activation_checkpointing:
        raise InvalidInput(
            "set fsdp_activation_checkpointing: false; the trainer checkpoints activations "
            "itself (--gradient-checkpointing, on by default)"
        )
    return plugin


def shard(
    root: nn.Module,
    model: Any,
    plugin: Any,
    *,
    device: torch.device,
    compute_dtype: torch.dtype,
) -> None:
    """Shard ``root`` (which holds ``model``) in place: each decoder layer, then the rest.

    Parameters move to ``device`` as they are sharded, so the model may be loaded on the CPU
    first and no GPU ever holds all of it.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        FSDPModule,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
    )

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    offload = plugin.cpu_offload if isinstance(plugin.cpu_offload, OffloadPolicy) else None
    options: dict[str, Any] = {
        "mesh": mesh,
        # The adapter is fp32 on a bf16 base; FSDP gathers one dtype per layer, so both compute in
        # the base's dtype while the sharded adapter (and its optimizer state) stays fp32.
        "mp_policy": MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32),
        "offload_policy": offload or OffloadPolicy(),
    }
    if isinstance(offload, CPUOffloadPolicy) and device.type == "cpu":
        raise InvalidInput("FSDP CPU offload needs GPUs; set fsdp_offload_params: false")

    layer_names = set(plugin.transformer_cls_names_to_wrap or model._no_split_modules or ())
    layers = [m for m in model.modules() if type(m).__name__ in layer_names]
    if not layers:
        raise InvalidInput(
            f"no layer of class {sorted(layer_names)} in the model; set "
            "fsdp_transformer_layer_cls_to_wrap to its decoder layer class"
        )
    for layer in layers:
        fully_shard(layer, reshard_after_forward=plugin.reshard_after_forward, **options)
    # The root's parameters (embeddings, final norm, output layer) are needed at both ends of
    # the step; resharding them in between would only gather them again.
    fully_shard(root, reshard_after_forward=False, **options)
    for module in root.modules():
        if isinstance(module, FSDPModule):
            # The loss is already divided by the step's label count over all processes, so the
            # reduced gradient must be the sum of the processes' gradients, not their mean; a
            # plain SUM is also the one reduction every backend has (gloo lacks AVG).
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor on the CPU; gathering a shard is collective (every process must call)."""
    from torch.distributed.tensor import DTensor

    if isinstance(tensor, DTensor):
        tensor = tensor.full_tensor()
    return tensor.detach().cpu()


def like(full: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """``full`` laid out as ``param`` is: this process's shard of it when ``param`` is sharded."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(param, DTensor) and full.dim() > 0:
        # Every process holds the full tensor, so each takes its own shard without communicating.
        return distribute_tensor(
            full.to(param.device), param.device_mesh, param.placements, src_data_rank=None
        )
    return full
