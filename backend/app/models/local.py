"""A Hugging Face causal LM served in-process, with LoRA adapters hot-swapped per request.

The base model is loaded once (a hub id or a local directory); LoRA adapters are attached to that
same base, at start-up (``settings.lora_adapters``) or while it serves (``load_adapter``,
``unload_adapter``), and each request names one adapter (or none, for the base), so one copy of
the weights serves RAG answers and review writing alike. What fails at start-up (a missing path,
an adapter trained for another base, no memory) fails in the constructor, with a message that
says what to fix.

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
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
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
from app.core.errors import Conflict, InvalidInput, ModelUnavailable, NotFound, RagError
from app.core.logger import get_logger
from app.finetune.peft_compat import peft_deprecations_silenced
from app.finetune.prompts import chat_template_for
from app.hf.quantization import set_4bit_layout
from app.models.adapter_files import check_trained_on, read_adapter_config
from app.models.base import ChatMessage, GenerationOptions
from app.models.batching import DynamicBatcher, call_in_loop
from app.models.generation_rows import RowSampler, RowStreamer, StopAbandoned, row_generator

log = get_logger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# A LoRA matrix in an adapter's state dict: the module it adapts, and which side it is.
_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?:embedding_)?(?P<side>[AB])(?:\.weight)?$"
)


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


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An adapter read from disk and checked against the base, ready to attach."""

    name: str
    path: Path
    config: Any
    weights: dict[str, torch.Tensor]


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
        self.model = self._load_base()
        self.model.eval()
        self._stop_ids = _stop_token_ids(self.tokenizer, self.model)
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
            prepared = self._prepare(name, path)
            with self._lock:
                self._attach(prepared)
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
                self._detach(name)
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
        if options.adapter is not None:
            self._acquire(options.adapter)
        return _Request(prompt, sampling, options.seed)

    def _acquire(self, name: str) -> None:
        with self._adapters_changed:
            adapter = self._adapters.get(name)
            if adapter is None or adapter.unloading:
                known = [n for n, a in self._adapters.items() if not a.unloading]
                raise InvalidInput(
                    f"Unknown adapter {name!r}; available: {', '.join(known) or 'none are loaded'}.",
                    code="unknown_adapter",
                )
            adapter.users += 1
            self._adapters_changed.notify_all()

    def _release(self, name: str | None) -> None:
        if name is None:
            return
        with self._adapters_changed:
            self._adapters[name].users -= 1
            self._adapters_changed.notify_all()

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

    def _prepare(self, name: str, path: Path) -> _Prepared:
        """Read the adapter in ``path`` and check that it fits this base, touching nothing."""
        from peft import PeftConfig
        from peft.utils import load_peft_weights

        check_trained_on(name, path, read_adapter_config(name, path), self.base_model)
        if not any((path / weights).is_file() for weights in _WEIGHT_FILES):
            raise InvalidInput(
                f"LoRA adapter {name!r}: {path} has no {_WEIGHT_FILES[0]}.",
                code="invalid_adapter",
                params={"name": name, "path": str(path)},
            )
        try:
            with peft_deprecations_silenced():
                config = PeftConfig.from_pretrained(str(path))
            weights = load_peft_weights(str(path), device="cpu")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InvalidInput(
                f"Cannot load LoRA adapter {name!r} from {path}: {_first_line(exc)}",
                code="invalid_adapter",
                params={"name": name, "path": str(path)},
            ) from exc
        config.inference_mode = True
        self._check_shapes(name, path, weights)
        return _Prepared(name, path, config, weights)

    def _check_shapes(self, name: str, path: Path, weights: Mapping[str, torch.Tensor]) -> None:
        """Every LoRA matrix must adapt a module of the base with the sizes it was trained on."""
        base = self.model.get_base_model() if self._wrapped else self.model
        modules = dict(base.named_modules())
        for key, tensor in weights.items():
            match = _LORA_KEY.match(key)
            if match is None:
                continue
            module_name, side = match["module"], match["side"]
            module = modules.get(module_name)
            if module is None:
                raise _misfit(name, path, self.base_model, f"the base has no module {module_name}")
            features = _features(module)
            if features is None:
                continue
            # LoRA A reads the module's input (r x in); B writes its output (out x r).
            dim, want = (1, features[0]) if side == "A" else (0, features[1])
            if tensor.dim() < 2 or tensor.shape[dim] != want:
                raise _misfit(
                    name,
                    path,
                    self.base_model,
                    f"{module_name} maps {features[0]} to {features[1]} features, but the "
                    f"adapter's {key} has shape {tuple(tensor.shape)}",
                )

    def _attach(self, prepared: _Prepared) -> None:
        """Add the checked adapter to the model (under the generation lock); undone on failure."""
        from peft import PeftModel
        from peft.utils import set_peft_model_state_dict

        model = self.model
        try:
            with peft_deprecations_silenced():
                if self._wrapped:
                    model.add_adapter(prepared.name, prepared.config)
                else:
                    model = PeftModel(model, prepared.config, adapter_name=prepared.name)
                result = set_peft_model_state_dict(
                    model, prepared.weights, adapter_name=prepared.name
                )
            missing = [k for k in result.missing_keys if "lora_" in k and prepared.name in k]
            if missing:
                raise ValueError(f"the adapter has no weights for {missing[0]}")
        except torch.OutOfMemoryError as exc:
            self._discard(model, prepared.name)
            raise ModelUnavailable(
                f"Not enough memory on {self.device} for LoRA adapter {prepared.name!r}."
            ) from exc
        except (RuntimeError, ValueError, KeyError) as exc:
            self._discard(model, prepared.name)
            raise _misfit(prepared.name, prepared.path, self.base_model, _first_line(exc)) from exc
        model.eval()
        self.model, self._wrapped = model, True

    def _discard(self, model: Any, name: str) -> None:
        """Take a half-attached adapter off again."""
        if not hasattr(model, "peft_config") or name not in model.peft_config:
            return
        if self._wrapped:
            model.delete_adapter(name)
        else:
            model.unload()

    def _detach(self, name: str) -> None:
        """Remove adapter ``name`` (under the generation lock); the last one unwraps the base."""
        others = [n for n in self.model.peft_config if n != name]
        if not others:
            self.model, self._wrapped = self.model.unload(), False
            return
        if name in self.model.active_adapters:
            # Deleting the active adapter would make PEFT pick another one and warn.
            self.model.set_adapter(others[0])
        self.model.delete_adapter(name)

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


def _stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """EOS ids of the generation config and tokenizer, plus Llama-3's end-of-turn token."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    if isinstance(eot, int) and eot != tokenizer.unk_token_id:
        ids.add(eot)
    return sorted(i for i in ids if i is not None)


def _features(module: Any) -> tuple[int, int] | None:
    """(input, output) sizes of a linear or embedding module (wrapped by LoRA or not)."""
    if isinstance(module, torch.nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    sizes = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if all(isinstance(size, int) for size in sizes):
        return sizes[0], sizes[1]
    return None


def _misfit(name: str, path: Path, base: str, detail: str) -> InvalidInput:
    return InvalidInput(
        f"LoRA adapter {name!r} at {path} does not fit {base}: {detail}",
        code="adapter_shape_mismatch",
        params={"name": name, "model_base": base},
    )


def _generation_error(exc: Exception) -> Exception:
    if isinstance(exc, torch.OutOfMemoryError):
        return ModelUnavailable("The local model ran out of memory; ask for fewer tokens.")
    if isinstance(exc, InvalidInput | ModelUnavailable):
        return exc
    return ModelUnavailable(f"The local model failed: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
