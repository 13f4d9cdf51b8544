"""A Hugging Face causal LM served in-process, with LoRA adapters hot-swapped per request.

The base model is loaded once (a hub id or a local directory); LoRA adapters are attached to that
same base, at start-up (``settings.lora_adapters``) or while it serves (``load_adapter``,
``unload_adapter``), and each request names one adapter (or none, for the base), so one copy of
the weights serves RAG answers and review writing alike. What fails at start-up (a missing path,
an adapter trained for another base, no memory) fails in the constructor, with a message that
says what to fix; loading the base and reading, checking and attaching adapters is
``local_loading.py``.

Adapters change without pausing generation: a new adapter is read and checked against the base
(its recorded base model and every LoRA matrix's shape) outside the generation lock, and only
attaching the checked weights waits for the batch that is generating. An adapter being unloaded
takes no new requests; it is detached once the requests that were accepted with it have finished.

``complete`` and ``stream`` go through one dynamic batcher: requests arriving within
``LOCAL_BATCH_WINDOW_MS`` of each other with the same adapter and sampling knobs are left-padded
and generated together, streamed or not. Each row samples with its own random generator (a seed
writes the same text alone or batched), streams its own text, and stops as soon as its reader
goes away (a client that disconnects mid-answer) while the other rows go on
(``generation_rows.py``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList

from app.core.config import LLMSettings
from app.core.errors import Conflict, InvalidInput, ModelUnavailable, NotFound, RagError
from app.core.logger import get_logger
from app.hf.chat_template import chat_template_for, render_chat
from app.hf.device import resolve_device, serving_dtype
from app.hf.tokens import stop_token_ids
from app.models.base import ChatMessage, GenerationOptions
from app.models.batching import DynamicBatcher, call_in_loop
from app.models.generation_rows import RowSampler, RowStreamer, StopAbandoned, row_generator
from app.models.local_loading import (
    PreparedAdapter,
    attach_adapter,
    detach_adapter,
    first_line,
    load_base,
    load_tokenizer,
    prepare_adapter,
    quantization,
)
from app.models.review_model import unknown_adapter

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Sampling:
    """The knobs that must be equal for requests to share one ``generate`` call."""

    adapter: str | None
    max_new_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float


@dataclass(frozen=True, slots=True)
class _Request:
    prompt: str
    sampling: _Sampling
    seed: int | None
    sink: Callable[[str], None] | None = None
    """Where a streamed request's text goes as it is generated."""
    abandoned: threading.Event | None = None
    """Set when a streamed request's reader has gone: its row stops."""


@dataclass(slots=True)
class _Adapter:
    """An attached LoRA adapter."""

    path: Path
    users: int = 0
    """Requests accepted with it that have not finished."""
    unloading: bool = False


class LocalLLM:
    """``LLMClient`` over a local transformers model and its LoRA adapters."""

    def __init__(self, settings: LLMSettings) -> None:
        self._settings = settings
        local = settings.local
        self.device = resolve_device(local.device)
        self.dtype = serving_dtype(local.dtype, self.device)
        self.quantization = quantization(local)
        self.base_model = local.model
        self.tokenizer = load_tokenizer(local.model)
        self.chat_template = chat_template_for(self.tokenizer)
        self.model = load_base(self.base_model, self.device, self.dtype, self.quantization)
        self.model.eval()
        self._stop_ids = stop_token_ids(self.tokenizer, self.model)
        # One generate() at a time: the active adapter is model-wide state, and adapters are
        # attached and detached only between batches.
        self._lock = threading.Lock()
        self._wrapped = False
        """Whether ``model`` is a PEFT model (it is while any adapter is attached)."""
        # Guards the adapter table; notified whenever an adapter or its user count changes.
        self._adapters_changed = threading.Condition()
        self._adapters: dict[str, _Adapter] = {}
        self._loading: set[str] = set()
        self.load_adapters(settings.lora_adapters)
        self._batcher: DynamicBatcher[_Request, str] = DynamicBatcher(
            self._generate_batch,
            key=lambda request: request.sampling,
            max_batch_size=local.max_batch_size,
            window_s=local.batch_window_ms / 1000,
            name="local-llm-batcher",
        )
        log.info(
            "local model %s on %s (%s%s), adapters: %s",
            self.base_model,
            self.device,
            str(self.dtype).removeprefix("torch."),
            f", {self.quantization}" if self.quantization else "",
            ", ".join(self.adapters) or "none",
        )

    @property
    def name(self) -> str:
        """``local:<model>``."""
        return f"local:{self.base_model}"

    @property
    def batch_sizes(self) -> list[int]:
        """Size of every batch generated so far, in order."""
        return self._batcher.batch_sizes

    @property
    def adapters(self) -> tuple[str, ...]:
        """Adapters a request may name now, in the order they were loaded."""
        return tuple(self.adapter_paths)

    @property
    def adapter_paths(self) -> dict[str, Path]:
        """Each adapter a request may name now, and the folder it was loaded from."""
        with self._adapters_changed:
            return {n: a.path for n, a in self._adapters.items() if not a.unloading}

    def load_adapters(self, adapters: Mapping[str, Path]) -> None:
        """Attach adapters named in the settings; the first that cannot be served stops with
        ``ModelUnavailable``, so that a bad path stops start-up."""
        for name, path in adapters.items():
            try:
                self.load_adapter(name, path)
            except RagError as exc:
                raise ModelUnavailable(exc.message) from exc

    def load_adapter(self, name: str, path: Path) -> None:
        """Attach the LoRA adapter in folder ``path`` as ``name``, while generation goes on.

        ``InvalidInput`` when ``path`` holds no adapter or one that does not fit this base (trained
        on another model, or matrices of other shapes), ``Conflict`` when ``name`` is taken. A
        failed load leaves the model as it was.
        """
        with self._adapters_changed:
            if name in self._adapters or name in self._loading:
                raise Conflict(
                    f"An adapter named {name!r} is already loaded; unload it first or choose "
                    "another name.",
                    code="adapter_exists",
                    params={"name": name},
                )
            self._loading.add(name)
            self._adapters_changed.notify_all()
        try:
            # Read and checked outside the generation lock; only attaching waits for the batch.
            prepared = self._prepare(name, path)
            with self._lock:
                self.model = attach_adapter(
                    self.model, prepared, self.base_model, wrapped=self._wrapped
                )
                self._wrapped = True
            with self._adapters_changed:
                self._adapters[name] = _Adapter(path)
        finally:
            with self._adapters_changed:
                self._loading.discard(name)
                self._adapters_changed.notify_all()
        log.info("adapter %s loaded from %s", name, path)

    def unload_adapter(self, name: str) -> None:
        """Detach adapter ``name`` once the requests accepted with it have finished.

        From the call on, new requests naming it are refused; it blocks until it is detached.
        """
        with self._adapters_changed:
            adapter = self._adapters.get(name)
            if adapter is None or adapter.unloading:
                raise NotFound(
                    f"No adapter named {name!r} is loaded.",
                    code="adapter_not_found",
                    params={"name": name},
                )
            adapter.unloading = True
            self._adapters_changed.notify_all()
            self._adapters_changed.wait_for(lambda: adapter.users == 0)
        try:
            with self._lock:
                self.model, self._wrapped = detach_adapter(self.model, name)
        except BaseException:
            with self._adapters_changed:
                adapter.unloading = False
                self._adapters_changed.notify_all()
            raise
        with self._adapters_changed:
            del self._adapters[name]
            self._adapters_changed.notify_all()
        log.info("adapter %s unloaded", name)

    async def complete(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> str:
        """Generate the reply, batched with whatever other requests arrive at the same time."""
        request = self._request(messages, options)
        try:
            return await self._batcher.submit(request)
        finally:
            self._release(request.sampling.adapter)

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> AsyncIterator[str]:
        """Yield the reply piece by piece as the model produces it, batched like ``complete``."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        abandoned = threading.Event()

        def sink(piece: str) -> None:
            # Called by the generating thread.
            if not abandoned.is_set():
                call_in_loop(loop, pieces.put_nowait, piece)

        request = replace(self._request(messages, options), sink=sink, abandoned=abandoned)
        generation = asyncio.ensure_future(self._batcher.submit(request))
        # Scheduled after every piece the batch handed over, so it arrives last.
        generation.add_done_callback(lambda _: pieces.put_nowait(None))
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            await generation
        finally:
            # Reached early when the reader stops (closed or cancelled, e.g. the client hung up):
            # this row ends at its next token instead of holding the batch for the rest.
            abandoned.set()
            generation.cancel()
            self._release(request.sampling.adapter)

    async def check(self) -> None:
        """The model was loaded at start-up; nothing can be missing now."""

    async def aclose(self) -> None:
        """Stop the batcher and free accelerator memory."""
        await asyncio.to_thread(self._batcher.close)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _request(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None
    ) -> _Request:
        """The batcher's request; one that names an adapter holds it until ``_release``."""
        options = options or GenerationOptions()
        if not messages:
            raise InvalidInput("No messages to answer.", code="empty_prompt")
        prompt = render_chat(
            self.tokenizer,
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            chat_template=self.chat_template,
        )
        sampling = _Sampling(
            adapter=options.adapter,
            max_new_tokens=options.max_tokens or self._settings.max_tokens,
            temperature=(
                self._settings.temperature if options.temperature is None else options.temperature
            ),
            top_p=1.0 if options.top_p is None else options.top_p,
            repetition_penalty=options.repetition_penalty or 1.0,
        )
        if options.adapter is not None:
            self._acquire(options.adapter)
        return _Request(prompt, sampling, options.seed)

    def _acquire(self, name: str) -> None:
        with self._adapters_changed:
            adapter = self._adapters.get(name)
            if adapter is None or adapter.unloading:
                raise unknown_adapter(
                    name, (n for n, a in self._adapters.items() if not a.unloading)
                )
            adapter.users += 1
            self._adapters_changed.notify_all()

    def _release(self, name: str | None) -> None:
        if name is None:
            return
        with self._adapters_changed:
            self._adapters[name].users -= 1
            self._adapters_changed.notify_all()

    def _prepare(self, name: str, path: Path) -> PreparedAdapter:
        """Read the adapter in ``path`` and check that it fits this base, touching nothing."""
        return prepare_adapter(name, path, self.model, self.base_model, wrapped=self._wrapped)

    def _generate_batch(self, requests: Sequence[_Request]) -> list[str]:
        try:
            return self._generate(requests)
        except Exception as exc:
            raise _generation_error(exc) from exc

    def _generate(self, requests: Sequence[_Request]) -> list[str]:
        """One ``generate`` call for requests that share their sampling knobs."""
        sampling = requests[0].sampling
        inputs = self.tokenizer(
            [r.prompt for r in requests],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(self.model.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "repetition_penalty": sampling.repetition_penalty,
            "eos_token_id": self._stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if any(r.sink for r in requests):
            kwargs["streamer"] = RowStreamer(self.tokenizer, [r.sink for r in requests])
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [StopAbandoned([r.abandoned for r in requests])]
            )
        # Greedy decoding in generate(); sampling, when asked for, is the last logits processor's.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.temperature > 0:
            generators = [row_generator(r.seed, self.model.device) for r in requests]
            kwargs["logits_processor"] = LogitsProcessorList(
                [RowSampler(generators, sampling.temperature, sampling.top_p)]
            )
        with self._lock, torch.inference_mode():
            if sampling.adapter is None and self._wrapped:
                with self.model.disable_adapter():
                    output = self.model.generate(**inputs, **kwargs)
            else:
                if sampling.adapter is not None:
                    if not self._wrapped or sampling.adapter not in self.model.peft_config:
                        # Unloaded while the request waited, after its caller had gone.
                        raise InvalidInput(
                            f"Unknown adapter {sampling.adapter!r}.", code="unknown_adapter"
                        )
                    self.model.set_adapter(sampling.adapter)
                output = self.model.generate(**inputs, **kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [
            text.strip()
            for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ]


def _generation_error(exc: Exception) -> Exception:
    if isinstance(exc, torch.OutOfMemoryError):
        return ModelUnavailable("The local model ran out of memory; ask for fewer tokens.")
    if isinstance(exc, InvalidInput | ModelUnavailable):
        return exc
    return ModelUnavailable(f"The local model failed: {first_line(exc)}")
