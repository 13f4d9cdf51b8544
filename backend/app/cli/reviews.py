"""``rag generate`` and ``rag models list|load|unload``: reviews for a star rating, and the
adapters that write them."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.cli.common import print_json
from app.core.config import get_settings


def cmd_generate(args: argparse.Namespace) -> int:
    body = {
        "rating": args.rating,
        "scale": args.scale,
        "subject": args.subject,
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "adapter": args.adapter,
    }
    if args.local:
        answer, adapters = _generate_here(body)
    else:
        client = _api_client(args)
        answer = client.post("/api/reviews/generate", body)
        adapters = [] if args.adapter else _adapter_names(client.get("/api/models"))
    if args.json:
        print_json(answer)
        return 0
    for number, review in enumerate(answer["reviews"], start=1):
        print(f"{number}. [{review['rating']}/{args.scale}] {review['text']}")
    print(_written_by(answer, adapters), file=sys.stderr)
    return 0


def _generate_here(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``rag generate --local``: the review model of the settings, loaded in this process."""
    from app.models.factory import build_review_model
    from app.pipelines.reviews import ReviewRequest, review_writer_for, validate_request

    request = ReviewRequest(**body)
    # Before the model is loaded: a request no model can write for is refused at once.
    validate_request(request)
    reviews = build_review_model(get_settings())

    async def write() -> dict[str, Any]:
        try:
            writer = review_writer_for(reviews, request)
            written = await writer.generate(request)
        finally:
            await reviews.aclose()
        return {
            "reviews": [dataclasses.asdict(r) for r in written],
            "model": writer.model_name,
            "adapter": request.adapter,
        }

    return asyncio.run(write()), list(reviews.adapters())


def _written_by(answer: dict[str, Any], adapters: Sequence[str]) -> str:
    """Which model and adapter wrote the reviews, and the adapters the base left unused."""
    if answer["adapter"]:
        return f"written by {answer['model']} with the adapter {answer['adapter']!r}"
    line = f"written by {answer['model']} without an adapter (the base model)"
    if adapters:
        line += f"; loaded adapters: {', '.join(adapters)} (choose one with --adapter)"
    return line


def _api_client(args: argparse.Namespace) -> Any:
    from app.api_client import ApiClient, default_server

    settings = get_settings()
    key = settings.auth.client_key.get_secret_value() or None
    return ApiClient(args.server or default_server(settings.api), api_key=key)


def _adapter_names(models: dict[str, Any]) -> list[str]:
    return [adapter["name"] for adapter in models["reviews"]["adapters"]]


def cmd_models_list(args: argparse.Namespace) -> int:
    models = _api_client(args).get("/api/models")
    if args.json:
        print_json(models)
        return 0
    print(f"chat     {_role_line(models['chat'])}")
    reviews = models["reviews"]
    shared = ", the chat model's base" if reviews["shares_chat_model"] else ""
    print(f"reviews  {_role_line(reviews)}{shared}")
    if not reviews["adapters"] and reviews["loads_adapters"]:
        print("no adapters (load one: rag models load NAME PATH)")
    for adapter in reviews["adapters"]:
        print(f"  {adapter['name']}  [{adapter['origin']}]  {adapter['path']}")
        for line in _run_lines(adapter["run"]):
            print(f"      {line}")
    return 0


def cmd_models_load(args: argparse.Namespace) -> int:
    # The server reads the folder: a relative path means the one under this directory.
    path = str(Path(args.path).expanduser().resolve())
    adapter = _api_client(args).post("/api/models/adapters", {"name": args.name, "path": path})
    if args.json:
        print_json(adapter)
        return 0
    print(f"loaded {adapter['name']} from {adapter['path']}")
    for line in _run_lines(adapter["run"]):
        print(f"  {line}")
    return 0


def cmd_models_unload(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    _api_client(args).delete(f"/api/models/adapters/{quote(args.name, safe='')}")
    print(f"unloaded {args.name}")
    return 0


def _role_line(role: dict[str, Any]) -> str:
    if role["name"] is None:
        return f"{role['provider']} (off)"
    loaded = ", ".join(v for v in (role["device"], role["dtype"], role["quantization"]) if v)
    return f"{role['provider']}  {role['name']}" + (f" ({loaded})" if loaded else "")


def _run_lines(run: dict[str, Any] | None) -> list[str]:
    """How an adapter was trained and scored, from its run record."""
    if run is None:
        return ["no run record (run.json)"]
    trained = [run["method"] or "?"]
    if run["data"]:
        examples = f"{run['examples']:,} reviews from " if run["examples"] is not None else ""
        trained.append(f"{examples}{Path(run['data']).name}")
    if run["steps"] is not None:
        trained.append(f"{run['steps']:,}/{run['total_steps'] or '?'} steps")
    if run["final_loss"] is not None:
        trained.append(f"final loss {run['final_loss']:.4g}")
    trained.append(f"finished {run['finished_at']}" if run["finished_at"] else "unfinished")
    lines = [", ".join(trained)]
    scores = run["eval"]
    if scores:
        shown = [
            f"{name.replace('_', ' ')} {value:.3g}"
            for name, value in scores.items()
            if isinstance(value, float)
        ]
        lines.append("eval: " + ", ".join(shown))
    return lines


def add_generate(commands: Any) -> None:
    """Add ``generate`` to the ``rag`` command."""
    generate = commands.add_parser("generate", help="write reviews for a star rating")
    generate.add_argument("--rating", type=int, required=True, help="stars, 1..scale")
    generate.add_argument("--scale", type=int, choices=(5, 10), default=10)
    generate.add_argument("--subject", default=None, help="movie or product name")
    generate.add_argument("--n", type=int, default=1, help="how many reviews (1-8)")
    generate.add_argument(
        "--adapter", default=None, help="LoRA adapter name (default: the base model)"
    )
    generate.add_argument("--temperature", type=float, default=0.9)
    generate.add_argument("--top-p", type=float, default=0.95)
    generate.add_argument("--max-new-tokens", type=int, default=128)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--json", action="store_true", help="print the /api/reviews object")
    where = generate.add_mutually_exclusive_group()
    where.add_argument(
        "--server", default=None, help="the rag server to ask (default: API_HOST and API_PORT)"
    )
    where.add_argument(
        "--local", action="store_true", help="load the review model in this process instead"
    )
    generate.set_defaults(func=cmd_generate)


def add_models(commands: Any) -> None:
    """Add ``models`` to the ``rag`` command."""
    models = commands.add_parser("models", help="the server's models; load or unload adapters")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    models_list = models_commands.add_parser("list", help="both models and the loaded adapters")
    models_list.add_argument("--json", action="store_true", help="print the /api/models object")
    models_list.set_defaults(func=cmd_models_list)
    models_load = models_commands.add_parser(
        "load", help="load an adapter folder on the server, no restart"
    )
    models_load.add_argument("name", metavar="NAME", help="what review requests will name")
    models_load.add_argument("path", metavar="PATH", help="the folder rag finetune train wrote")
    models_load.add_argument("--json", action="store_true")
    models_load.set_defaults(func=cmd_models_load)
    models_unload = models_commands.add_parser(
        "unload", help="unload an adapter once the requests using it have finished"
    )
    models_unload.add_argument("name", metavar="NAME")
    models_unload.set_defaults(func=cmd_models_unload)
    for command in (models_list, models_load, models_unload):
        command.add_argument(
            "--server", default=None, help="the rag server (default: API_HOST and API_PORT)"
        )
