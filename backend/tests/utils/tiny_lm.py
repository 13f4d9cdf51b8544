"""A tiny local chat model for tests: byte-level BPE trained on NSMC reviews + a small Llama.

The directory it writes loads offline with ``AutoTokenizer`` / ``AutoModelForCausalLM``, exactly like
a model from the hub. Its chat template copies Mi:dm 2.0's Llama-3 layout, including the injected
date header and default system prompt, so code that renders chats meets the same problem it meets
with the real model.
"""

from __future__ import annotations

import csv
import gzip
import random
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
NSMC_TRAIN = SHARED_DATA / "nsmc" / "train.tsv.gz"

BOS, PAD, EOS = "<|begin_of_text|>", "<pad>", "<|end_of_text|>"
EOT, HEADER_START, HEADER_END = "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, PAD, EOS, EOT, HEADER_START, HEADER_END]

# Same structure as Mi:dm 2.0's template (shortened default prompt): the date and the default
# system text are always there, and the caller's system message is appended after them.
MIDM_LIKE_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}"
    "{%- if strftime_now is defined %}{%- set date_string = strftime_now('%d %b %Y') %}"
    "{%- else %}{%- set date_string = '04 Jul 2025' %}{%- endif %}"
    "{%- endif %}"
    "{%- if messages[0].role == 'system' %}"
    "{%- set system_message = messages[0].content | trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2024\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- '당신은 사용자에게 유용하고 안전한 응답을 제공하는 한국어 어시스턴트입니다.\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + message.content | trim }}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


def read_nsmc_sample(data: Path, n: int, seed: int = 0) -> list[tuple[int, str]]:
    """``n`` (rating, review) pairs drawn evenly from the first rows of an NSMC TSV."""
    rows: list[tuple[int, str]] = []
    with gzip.open(data, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for row in reader:
            if len(row) == 4 and row[3].strip():
                rows.append((int(row[2]), row[3].strip()))
            if len(rows) >= 4 * n:
                break
    return random.Random(seed).sample(rows, min(n, len(rows)))


def build_tiny_model_dir(
    path: Path,
    *,
    data: Path | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    pretrain_steps: int = 0,
    seed: int = 0,
) -> Path:
    """Write a tokenizer + ``LlamaForCausalLM`` into ``path``; optionally pre-train it on reviews."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from app.hf.chat_template import COMPACT_LLAMA3_TEMPLATE
    from app.models.review_prompt import review_messages

    source = data or NSMC_TRAIN
    reviews = read_nsmc_sample(source, 3000, seed)
    tokenizer = _train_tokenizer([text for _, text in reviews], vocab_size)
    path.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if pretrain_steps:
        # Pre-train on short chats so the base knows the layout and Korean review text; without
        # this its logits are near uniform and a LoRA adapter barely moves them.
        chats = [
            tokenizer.apply_chat_template(
                [*review_messages(rating, 10), {"role": "assistant", "content": text}],
                chat_template=COMPACT_LLAMA3_TEMPLATE,
                tokenize=False,
            )
            for rating, text in reviews
        ]
        _pretrain(model, tokenizer, chats, pretrain_steps, seed)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids(EOT), tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _train_tokenizer(texts: list[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from app.models.review_prompt import REVIEW_SYSTEM_PROMPT, review_user_prompt

    # The prompt strings join the corpus so they get merges of their own, as in a real tokenizer.
    prompts = [REVIEW_SYSTEM_PROMPT] + [review_user_prompt(r, 10) for r in range(1, 11)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts + prompts * 50, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        # Like Mi:dm: padding shares the end-of-text id, so label masks must not key on pad ids.
        pad_token=EOS,
        extra_special_tokens=[EOT, HEADER_START, HEADER_END],
    )
    tokenizer.chat_template = MIDM_LIKE_TEMPLATE
    return tokenizer


def _pretrain(model, tokenizer, chats: list[str], steps: int, seed: int) -> None:
    import torch

    ids: list[int] = []
    for chat in chats:
        ids += tokenizer(chat, add_special_tokens=False)["input_ids"]
    block, batch = 128, 16
    stream = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    # One thread: the model is too small to gain from more, and on a shared machine extra
    # threads spin against other processes and run many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.train()
    try:
        for _ in range(steps):
            rows = stream[torch.randint(len(stream), (batch,), generator=generator)]
            loss = model(input_ids=rows, labels=rows).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        torch.set_num_threads(threads)
    model.eval()
