"""Quiet one known warning between the pinned peft and transformers releases.

peft 0.21 reads ``model.is_gradient_checkpointing`` whenever it wraps a model; transformers 5
renamed that property and warns (``FutureWarning``) on every read. The warning is about peft's
code, not ours, and nothing a user can act on, so it is silenced exactly there and nowhere else.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def peft_deprecations_silenced() -> Iterator[None]:
    """Suppress transformers' rename warnings that peft triggers while wrapping a model."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield
