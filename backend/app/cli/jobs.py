"""``rag jobs list|show|cancel|pause|resume``: background jobs and their per-file results."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from app.cli.common import open_components, print_json


def _job_line(job: Any) -> str:
    done, total = job.progress["done"], job.progress["total"]
    error = f"  ({job.error['message']})" if job.error else ""
    return (
        f"{job.id}  {job.kind:8} {job.status:9} {done:>6}/{total:<6} "
        f"{job.created_at:%Y-%m-%d %H:%M:%S}{error}"
    )


def cmd_jobs_list(args: argparse.Namespace) -> int:
    with open_components() as components:
        page = components.jobs.page(limit=args.limit, cursor=args.cursor)
    if args.json:
        print_json(
            {
                "jobs": [dataclasses.asdict(j) for j in page.jobs],
                "total": page.total,
                "next_cursor": page.next_cursor,
            }
        )
        return 0
    if not page.jobs:
        print("no jobs")
    for job in page.jobs:
        print(_job_line(job))
    if page.next_cursor is not None:
        print(f"{page.total} jobs; more with --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    from app.jobs import finetune_records

    with open_components() as components:
        job = components.jobs.require(args.job_id)
        steps = finetune_records.metrics(components.jobs, job.id) if job.kind == "finetune" else []
    if args.json:
        print_json({**dataclasses.asdict(job), "logged_steps": steps})
        return 0
    print(_job_line(job))
    if job.kind == "finetune":
        _print_training(job, steps)
    for result in job.results:
        error = f"  {result['error']['message']}" if result.get("error") else ""
        print(f"  {result['outcome']:9} {result['chunks']:>6}  {result['filename']}{error}")
    return 0


def _print_training(job: Any, steps: list[dict[str, Any]]) -> None:
    state = job.metrics
    governor = state.get("governor") or {}
    if job.status == "running":
        reason = f" ({governor['reason']})" if governor.get("reason") else ""
        eta = f", about {state['eta_s'] / 60:.0f} min to go" if state.get("eta_s") else ""
        print(f"  {governor.get('state', state.get('phase', 'training'))}{reason}{eta}")
    if steps:
        last = steps[-1]
        print(
            f"  step {last['step']}: loss {last['loss']:.4f}, {last['tokens_per_s']:,.0f} tokens/s"
        )
    if job.pause_requested:
        print("  asked to pause: rag jobs resume " + job.id)
    if state.get("published"):
        print("  published as " + ", ".join(state["published"]))


def _set_paused(job_id: str, paused: bool) -> int:
    from app.jobs import finetune_records

    with open_components() as components:
        job = finetune_records.set_paused(components.jobs, job_id, paused)
    print(f"{job.id} {'asked to pause' if paused else 'asked to go on'}")
    return 0


def cmd_jobs_pause(args: argparse.Namespace) -> int:
    return _set_paused(args.job_id, True)


def cmd_jobs_resume(args: argparse.Namespace) -> int:
    return _set_paused(args.job_id, False)


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    with open_components() as components:
        job = components.jobs.cancel(args.job_id)
    state = "cancelled" if job.status == "cancelled" else "asked to stop"
    print(f"{job.id} {state}")
    return 0


def add_jobs(commands: Any) -> None:
    """Add ``jobs`` to the ``rag`` command."""
    jobs = commands.add_parser("jobs", help="list, show, cancel, pause or resume background jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    jobs_list = jobs_commands.add_parser("list", help="jobs, newest first")
    jobs_list.add_argument("--limit", type=int, default=20)
    jobs_list.add_argument("--cursor", default=None, help="where the page before ended")
    jobs_list.add_argument("--json", action="store_true")
    jobs_list.set_defaults(func=cmd_jobs_list)
    jobs_show = jobs_commands.add_parser("show", help="one job and its results")
    jobs_show.add_argument("job_id", metavar="ID")
    jobs_show.add_argument("--json", action="store_true")
    jobs_show.set_defaults(func=cmd_jobs_show)
    jobs_cancel = jobs_commands.add_parser("cancel", help="cancel a job")
    jobs_cancel.add_argument("job_id", metavar="ID")
    jobs_cancel.set_defaults(func=cmd_jobs_cancel)
    for name, func, what in (
        ("pause", cmd_jobs_pause, "pause a training job (it saves a checkpoint and idles)"),
        ("resume", cmd_jobs_resume, "let a paused training job go on"),
    ):
        command = jobs_commands.add_parser(name, help=what)
        command.add_argument("job_id", metavar="ID")
        command.set_defaults(func=func)
