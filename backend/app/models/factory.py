"""Settings in, adapter out: the one place that knows which class serves which provider.

Adapters are imported inside their ``case``, so a provider's SDK or model libraries load only when
chosen, and a missing optional package becomes a ``ModelUnavailable`` saying what to install.
Adding a model is one adapter file and one ``case`` here (and one in ``capabilities_of``).

Two roles are built here: the chat model (``LLM_*``) and the review writer (``REVIEW_*``). When
both name the same local base, the review writer is that same ``LocalLLM``, with its adapters.
"""

from __future__ import annotations

from app.core.config import EmbeddingSettings, LLMSettings, Settings
from app.core.errors import ModelUnavailable
from app.models.adapter_files import same_model
from app.models.base import EmbeddingClient, LLMClient
from app.models.capabilities import Capabilities
from app.models.review_model import ReviewModel


def _missing(what: str, install: str, error: ImportError) -> ModelUnavailable:
    package = error.name or "a required package"
    return ModelUnavailable(
        f"{what} needs {package}, which is not installed: install with {install}"
    )


def capabilities_of(provider: str) -> Capabilities:
    """What the adapter serving ``provider`` (an ``LLM_PROVIDER`` or ``REVIEW_PROVIDER``) can do."""
    match provider:
        case "local":
            return Capabilities(
                writes_reviews=True, names_adapters=True, loads_adapters=True, loads_at_startup=True
            )
        case "openai":
            # vLLM with --enable-lora serves each adapter as a model of its own name.
            return Capabilities(writes_reviews=True, names_adapters=True)
        case "fake" | "anthropic":
            return Capabilities(writes_reviews=True)
        case _:
            # extractive quotes documents; none is no model at all.
            return Capabilities()


def shares_local_base(settings: Settings) -> bool:
    """Whether the chat model and the review writer are one local model, loaded once."""
    role = settings.review_role()
    return (
        settings.llm.provider == "local"
        and role.provider == "local"
        and role.model is not None
        and same_model(settings.llm.local.model, role.model)
    )


def build_review_model(settings: Settings, *, chat: LLMClient | None = None) -> ReviewModel:
    """The review writer chosen by ``REVIEW_PROVIDER``, with the adapters ``REVIEW_ADAPTERS`` names.

    ``chat``, when given, is the chat model of the same local base (``shares_local_base``): the
    adapters are loaded onto it instead of onto a second copy.
    """
    role = settings.review_role()
    capabilities = capabilities_of(role.provider)
    match role.provider:
        case "none":
            return ReviewModel("none", None, capabilities)
        case "fake":
            from app.models.fake import FakeLLM

            return ReviewModel("fake", FakeLLM(), capabilities)
        case "openai":
            try:
                from app.models.openai import OpenAILLM
            except ImportError as error:
                raise _missing("REVIEW_PROVIDER=openai", "pip install openai", error) from error
            return ReviewModel(
                "openai", OpenAILLM(role.llm), capabilities, configured=role.adapters
            )
        case "local":
            try:
                from app.models.local import LocalLLM
            except ImportError as error:
                raise _missing("REVIEW_PROVIDER=local", "pip install '.[local]'", error) from error
            if isinstance(chat, LocalLLM):
                chat.load_adapters(role.adapters)
                llm = chat
            else:
                llm = LocalLLM(role.llm)
            return ReviewModel(
                "local",
                llm,
                capabilities,
                configured=role.adapters,
                shares_chat_model=llm is chat,
            )
        case provider:
            raise ModelUnavailable(
                f"Review provider {provider!r} is not available in this build; "
                "choose local, openai, fake or none."
            )


def build_llm_client(settings: LLMSettings) -> LLMClient:
    """The chat model chosen by ``LLM_PROVIDER``; a local one never uses an adapter."""
    match settings.provider:
        case "extractive":
            from app.models.extractive import ExtractiveLLM

            return ExtractiveLLM()
        case "fake":
            from app.models.fake import FakeLLM

            return FakeLLM()
        case "openai":
            try:
                from app.models.openai import OpenAILLM
            except ImportError as error:
                raise _missing("LLM_PROVIDER=openai", "pip install openai", error) from error
            return OpenAILLM(settings)
        case "anthropic":
            try:
                from app.models.anthropic import AnthropicLLM
            except ImportError as error:
                raise _missing("LLM_PROVIDER=anthropic", "pip install anthropic", error) from error
            return AnthropicLLM(settings)
        case "local":
            try:
                from app.models.local import LocalLLM
            except ImportError as error:
                raise _missing("LLM_PROVIDER=local", "pip install '.[local]'", error) from error
            # Adapters belong to the review writer, which loads them onto this model when it
            # shares the base (build_review_model).
            return LocalLLM(settings.model_copy(update={"lora_adapters": {}}))
        case provider:
            raise ModelUnavailable(
                f"LLM provider {provider!r} is not available in this build; "
                "choose extractive, fake, openai, anthropic or local."
            )


def build_embedding_client(
    settings: EmbeddingSettings, llm: LLMSettings | None = None
) -> EmbeddingClient:
    """The embedder chosen by ``EMBEDDING_PROVIDER``.

    OpenAI embeddings reuse the OpenAI key, address, time-out and retries of ``llm``, so one
    ``OPENAI_API_KEY`` (or ``OPENAI_BASE_URL``) serves both.
    """
    match settings.provider:
        case "hash":
            from app.models.hash import HashEmbedder

            return HashEmbedder(settings.dimension)
        case "sentence-transformers":
            try:
                from app.models.sentence_transformers import SentenceTransformerEmbedder
            except ImportError as error:
                raise _missing(
                    "EMBEDDING_PROVIDER=sentence-transformers", "pip install '.[local]'", error
                ) from error
            return SentenceTransformerEmbedder(settings.model, settings.device, settings.batch_size)
        case "openai":
            return _openai_embedder(settings, llm)
        case provider:
            raise ModelUnavailable(
                f"Embedding provider {provider!r} is not available in this build; "
                "choose hash, sentence-transformers or openai."
            )


def _openai_embedder(settings: EmbeddingSettings, llm: LLMSettings | None) -> EmbeddingClient:
    try:
        from app.models.openai_embeddings import OpenAIEmbedder
    except ImportError as error:
        raise _missing("EMBEDDING_PROVIDER=openai", "pip install openai", error) from error
    key = llm.openai.api_key.get_secret_value().strip() if llm else ""
    base_url = llm.openai.base_url if llm else None
    if llm is None or (base_url is None and not key):
        raise ModelUnavailable(
            "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)."
        )
    return OpenAIEmbedder(
        settings.model,
        api_key=key,
        base_url=base_url,
        # EMBEDDING_DIMENSION's default belongs to the hash embedder; only an explicit value is sent.
        dimension=settings.dimension if "dimension" in settings.model_fields_set else None,
        batch_size=settings.batch_size,
        timeout_s=llm.timeout_s,
        max_retries=llm.max_retries,
    )
