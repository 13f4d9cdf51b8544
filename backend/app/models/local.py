"""A Hugging Face causal LM served in-process, with LoRA adapters hot-swapped per request.

``LOCAL_MODEL`` is loaded once (a hub id or a local directory); every adapter in ``LORA_ADAPTERS``
is loaded onto that same base, and each request names one adapter (or none, for the base), so
one copy of the weights serves RAG answers and review writing alike. Everything that can fail at
loading (a missing path, an adapter trained for another base, no memory) fails in the
constructor, at start-up, with a message that says what to fix.

``complete`` and ``stream`` go through one dynamic batcher: requests arriving within
``LOCAL_BATCH_WINDOW_MS`` of each other with the same adapter and sampling knobs are left-padded
and generated together, streamed or not. Each row samples with its own random generator (a seed
writes the same text alone or batched), streams its own text, and stops as soon as its reader
goes away (a client that disconnects mid-answer) while the other rows go on
(``generation_rows.py``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessorList,
    StoppingCriteriaList,
)

from app.core.config import LLMSettings
from app.core.errors import InvalidInput, ModelUnavailable
from app.core.logger import get_logger
from app.finetune.peft_compat import peft_deprecations_silenced
from app.finetune.prompts import chat_template_for
from app.hf.quantization import set_4bit_layout
from app.models.base import ChatMessage, GenerationOptions
from app.models.batching import DynamicBatcher, call_in_loop
from app.models.generation_rows import RowSampler, RowStreamer, StopAbandoned, row_generator

log = get_logger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


class LocalLLM:
    """``LLMClient`` over a local transformers model and its LoRA adapters."""

    def __init__(self, settings: LLMSettings) -> None:
        self._settings = settings
        self.device = resolve_device(settings.local_device)
        self.dtype = resolve_dtype(settings.local_dtype, self.device)
        self.quantization = _quantization(settings)
        self.base_model = settings.local_model
        self.tokenizer = _load_tokenizer(settings.local_model)
        self.chat_template = chat_template_for(self.tokenizer)
        model = self._load_base()
        self.adapters: tuple[str, ...] = tuple(settings.lora_adapters)
        self.model = _attach_adapters(model, settings.local_model, settings.lora_adapters)
        self.model.eval()
        self._stop_ids = _stop_token_ids(self.tokenizer, self.model)
        # One generate() at a time: the active adapter is model-wide state.
        self._lock = threading.Lock()
        self._batcher: DynamicBatcher[_Request, str] = DynamicBatcher(
            self._generate_batch,
            key=lambda request: request.sampling,
            max_batch_size=settings.local_max_batch_size,
            window_s=settings.local_batch_window_ms / 1000,
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

    async def complete(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> str:
        """Generate the reply, batched with whatever other requests arrive at the same time."""
        return await self._batcher.submit(self._request(messages, options))

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
        options = options or GenerationOptions()
        if options.adapter is not None and options.adapter not in self.adapters:
            known = ", ".join(self.adapters) or "none are configured"
            raise InvalidInput(
                f"Unknown adapter {options.adapter!r}; available: {known}.",
                code="unknown_adapter",
            )
        if not messages:
            raise InvalidInput("No messages to answer.", code="empty_prompt")
        prompt = self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=True,
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
        return _Request(prompt, sampling, options.seed)

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
            if sampling.adapter is None and self.adapters:
                with self.model.disable_adapter():
                    output = self.model.generate(**inputs, **kwargs)
            else:
                if sampling.adapter is not None:
                    self.model.set_adapter(sampling.adapter)
                output = self.model.generate(**inputs, **kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [
            text.strip()
            for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ]

    def _load_base(self) -> Any:
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if self.quantization:
            if self.device.type != "cuda":
                raise ModelUnavailable(
                    f"LOCAL_LOAD_IN_{self.quantization.upper()} needs a CUDA GPU (bitsandbytes); "
                    f"the device is {self.device}. Unset it to load the model unquantised."
                )
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=self.quantization == "4bit",
                load_in_8bit=self.quantization == "8bit",
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=self.dtype,
            )
            kwargs["device_map"] = {"": self.device}
        try:
            model = AutoModelForCausalLM.from_pretrained(self.base_model, **kwargs)
            if self.quantization == "4bit":
                set_4bit_layout(model, "inference")
            elif not self.quantization:
                model.to(self.device)
        except torch.OutOfMemoryError as exc:
            raise ModelUnavailable(
                f"Not enough memory on {self.device} to load {self.base_model}; try "
                "LOCAL_LOAD_IN_4BIT=true, a smaller LOCAL_MODEL or LOCAL_DEVICE=cpu."
            ) from exc
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"Cannot load LOCAL_MODEL={self.base_model!r}: {exc}") from exc
        return model


def resolve_device(setting: str) -> torch.device:
    """``auto`` → CUDA, then MPS, then CPU; anything else as given, if it exists here."""
    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as exc:
        raise ModelUnavailable(f"LOCAL_DEVICE={setting!r} is not a device name.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(f"LOCAL_DEVICE={setting} but no CUDA GPU is available.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelUnavailable(f"LOCAL_DEVICE={setting} but MPS is not available.")
    return device


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` → bf16 on GPUs that compute in it, fp16 on other GPUs, fp32 on CPU."""
    if setting != "auto":
        return _DTYPES[setting]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    # CPU matmuls in half precision are slow or unsupported.
    return torch.float32


def _quantization(settings: LLMSettings) -> str | None:
    if settings.local_load_in_4bit:
        return "4bit"
    if settings.local_load_in_8bit:
        return "8bit"
    return None


def _load_tokenizer(model: str) -> Any:
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"Cannot load the tokenizer of LOCAL_MODEL={model!r}: {exc}. Set LOCAL_MODEL to a "
            "local model directory or a Hugging Face id that is downloaded or reachable."
        ) from exc
    # Left padding: in a batch every prompt must end where generation starts.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _attach_adapters(model: Any, base: str, adapters: dict[str, Path]) -> Any:
    """Wrap ``model`` with every named LoRA adapter, checking each one fits this base."""
    if not adapters:
        return model
    from peft import PeftModel

    peft_model = None
    for name, path in adapters.items():
        _check_adapter_dir(name, path, base)
        try:
            with peft_deprecations_silenced():
                if peft_model is None:
                    peft_model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
                else:
                    peft_model.load_adapter(str(path), adapter_name=name)
        except RuntimeError as exc:
            # A shape mismatch: the adapter was trained on a model of another size.
            raise ModelUnavailable(
                f"LoRA adapter {name!r} at {path} does not fit {base}: {_first_line(exc)}"
            ) from exc
        except (OSError, ValueError, KeyError) as exc:
            raise ModelUnavailable(
                f"Cannot load LoRA adapter {name!r} from {path}: {_first_line(exc)}"
            ) from exc
    return peft_model


def _check_adapter_dir(name: str, path: Path, base: str) -> None:
    config_file = path / "adapter_config.json"
    if not path.is_dir():
        raise ModelUnavailable(f"LORA_ADAPTERS: {name}={path} is not a directory.")
    if not config_file.is_file():
        raise ModelUnavailable(
            f"LORA_ADAPTERS: {name}={path} has no adapter_config.json; point it at the folder "
            "`rag finetune train --output` wrote."
        )
    try:
        trained_on = json.loads(config_file.read_text(encoding="utf-8")).get(
            "base_model_name_or_path"
        )
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelUnavailable(f"LoRA adapter {name!r}: unreadable {config_file}: {exc}") from exc
    if trained_on and not _same_model(trained_on, base):
        raise ModelUnavailable(
            f"LoRA adapter {name!r} at {path} was trained on {trained_on}, not on "
            f"LOCAL_MODEL={base}; serve it with the base it was trained on."
        )


def _same_model(a: str, b: str) -> bool:
    """Same id, same directory, or a hub id and a local copy with the same final name."""
    if a == b:
        return True
    path_a, path_b = Path(a).expanduser(), Path(b).expanduser()
    if path_a.exists() and path_b.exists():
        return path_a.resolve() == path_b.resolve()
    return path_a.name == path_b.name


def _stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """EOS ids of the generation config and tokenizer, plus Llama-3's end-of-turn token."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    if isinstance(eot, int) and eot != tokenizer.unk_token_id:
        ids.add(eot)
    return sorted(i for i in ids if i is not None)


def _generation_error(exc: Exception) -> Exception:
    if isinstance(exc, torch.OutOfMemoryError):
        return ModelUnavailable("The local model ran out of memory; ask for fewer tokens.")
    if isinstance(exc, InvalidInput | ModelUnavailable):
        return exc
    return ModelUnavailable(f"The local model failed: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
