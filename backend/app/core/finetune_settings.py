"""Settings of fine-tuning in the app: where data sets and training jobs keep their files, how big
an uploaded data set may be, and the worker processes that train."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from app.core.settings_base import settings_config


class FinetuneSettings(BaseSettings):
    """Fine-tuning jobs and their data sets."""

    model_config = settings_config("FINETUNE_")

    dir: Path | None = Field(
        default=None,
        description="Folder of uploaded data sets and of each training job's adapter, checkpoints "
        "and logs (unset: RAG_DATA_DIR/finetune). Workers on other machines must see it at the "
        "same path.",
    )
    max_dataset_mb: int = Field(
        default=1024, ge=1, description="Largest review file, in MB, an upload may bring."
    )
    workers: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Training worker processes the server starts and stops with itself; they run "
        "only fine-tuning jobs, so that uploads never wait behind a training run (0: none, "
        "`rag worker --queues finetune` runs them apart).",
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Training jobs one training worker runs at once; jobs on the same device "
        "still take turns unless started with exclusive=false.",
    )
    stop_grace_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a training process is given to save a checkpoint and exit when its "
        "worker stops or its job is cancelled, before it is killed.",
    )
