"""How a conversation is rendered as text, the same way for training and for generation.

Training and serving call the same functions, so an adapter sees at generation time the exact
text it was trained on.

Some chat templates (Llama-3, Mi:dm 2.0) always inject a long default system prompt and today's date,
even when the caller passes a system message. For a ~35-character review that is hundreds of
wasted tokens per example, and the date makes the rendered text change from one day to the next.
``chat_template_for`` detects this and falls back to the same Llama-3 layout without the injected
text; the adapter directory then saves the tokenizer with that template, so plain
``apply_chat_template`` on it reproduces the training format.
"""

from __future__ import annotations

import re
from typing import Any

from app.core.errors import InvalidInput

# The Llama-3 layout with nothing injected: only the messages given, each closed by <|eot_id|>.
COMPACT_LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- message['content'] | trim }}{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)
_LLAMA3_TOKENS = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
_PROBE = ("probe-system-a1", "probe-user-b2", "probe-assistant-c3")


def template_injects_text(tokenizer: Any, chat_template: str | None = None) -> bool:
    """Whether the chat template adds text of its own (a default system prompt, a date)."""
    system, user, assistant = _PROBE
    rendered = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
        chat_template=chat_template,
        tokenize=False,
    )
    for fixed in (*_PROBE, *_special_strings(tokenizer)):
        rendered = rendered.replace(fixed, " ")
    leftover = re.sub(r"\b(system|user|assistant)\b", " ", rendered)
    return bool(re.sub(r"[\s:|<>/\[\]]+", "", leftover))


def chat_template_for(tokenizer: Any) -> str:
    """The chat template used for training and generation with this tokenizer."""
    vocab = tokenizer.get_vocab()
    llama3 = all(token in vocab for token in _LLAMA3_TOKENS)
    try:
        template = tokenizer.get_chat_template()
    except ValueError as exc:
        if llama3:
            return COMPACT_LLAMA3_TEMPLATE
        raise InvalidInput(
            "the tokenizer has no chat template; use a chat (instruct) model"
        ) from exc
    if not template_injects_text(tokenizer, template):
        return template
    if llama3:
        return COMPACT_LLAMA3_TEMPLATE
    # A template we cannot shorten safely: keep it; it costs tokens but stays correct.
    return template


def render_chat(
    tokenizer: Any,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool,
    chat_template: str | None = None,
) -> str:
    """Render ``messages`` as text with the template ``chat_template_for`` chooses."""
    return tokenizer.apply_chat_template(
        messages,
        chat_template=chat_template or chat_template_for(tokenizer),
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def _special_strings(tokenizer: Any) -> list[str]:
    specials = set(tokenizer.all_special_tokens)
    specials.update(str(t) for t in tokenizer.added_tokens_decoder.values())
    return sorted(specials, key=len, reverse=True)
