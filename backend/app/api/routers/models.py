"""``/api/models``: which language model is configured and, for a local one, how it is loaded."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import LLMDep, SettingsDep
from app.api.schemas import ProviderInfo
from app.pipelines.reviews import servable_adapters

router = APIRouter(prefix="/api/models", tags=["models"])


@runtime_checkable
class _LoadedLocally(Protocol):
    """What a model loaded in this process reports (``LocalLLM``)."""

    base_model: str
    device: object
    dtype: object
    quantization: str | None


class ModelsResponse(BaseModel):
    llm: ProviderInfo
    base_model: str | None = Field(description="Base model id or folder (local provider only).")
    adapters: list[str] = Field(description="LoRA adapters a request may name.")
    device: str | None = Field(description="cpu, cuda, mps (local provider only).")
    dtype: str | None = Field(description="float32, bfloat16, float16 (local provider only).")
    quantization: str | None = Field(description="4bit, 8bit or null.")


@router.get("", response_model=ModelsResponse)
async def models(llm: LLMDep, settings: SettingsDep) -> ModelsResponse:
    """The configured LLM provider, and the base model, adapters, device, dtype and quantisation
    of a local one (null for remote providers)."""
    info = ProviderInfo(provider=settings.llm.provider, name=llm.name)
    adapters = servable_adapters(settings.llm)
    if not isinstance(llm, _LoadedLocally):
        return ModelsResponse(
            llm=info, base_model=None, adapters=adapters, device=None, dtype=None, quantization=None
        )
    return ModelsResponse(
        llm=info,
        base_model=llm.base_model,
        adapters=adapters,
        device=str(llm.device),
        dtype=str(llm.dtype).removeprefix("torch."),
        quantization=llm.quantization,
    )
