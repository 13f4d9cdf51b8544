"""The ``accelerate launch`` configs in deploy/accelerate, read by accelerate itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DistributedType

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "deploy" / "accelerate"


@pytest.mark.parametrize("name", ["multi_gpu.yaml", "multi_node.yaml"])
def test_config_loads_as_data_parallel_processes(name: str) -> None:
    """The trainer splits rows and sums adapter gradients itself: one full replica per GPU."""
    config = load_config_from_file(str(CONFIGS / name))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert config.mixed_precision == "no"
    assert not config.use_cpu
    assert config.num_processes % config.num_machines == 0


def test_fsdp_config_shards_llama_decoder_layers_with_fsdp2() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = load_config_from_file(str(CONFIGS / "fsdp.yaml"))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == DistributedType.FSDP
    assert config.mixed_precision == "no" and not config.use_cpu
    fsdp = config.fsdp_config
    assert fsdp["fsdp_version"] == 2
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    # The layer class named must be the one Llama models (Mi:dm's architecture) are built from.
    llama = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=32,
        )
    )
    assert {fsdp["fsdp_transformer_layer_cls_to_wrap"]} == set(llama._no_split_modules)
    assert fsdp["fsdp_activation_checkpointing"] is False


def test_multi_node_config_names_the_rendezvous() -> None:
    config = load_config_from_file(str(CONFIGS / "multi_node.yaml"))
    assert config.num_machines > 1 and config.machine_rank == 0
    assert config.main_process_ip and config.main_process_port


def test_the_launched_module_is_the_rag_command() -> None:
    """``accelerate launch -m app.cli finetune train`` runs the same parser as ``rag``."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "finetune", "train", "--help"],
        cwd=ROOT / "backend",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--resume" in result.stdout
