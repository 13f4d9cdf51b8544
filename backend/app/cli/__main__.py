"""``python -m app.cli``: the ``rag`` command."""

from __future__ import annotations

import sys

from app.cli import main

sys.exit(main())
