"""Reading untrusted files into text under limits, so that one bad file costs bounded time and memory.

``parse_bounded`` runs ``load_documents`` in a parsing process, not in the caller's: the file gets
``timeout_s`` of wall-clock time and ``memory_mb`` of memory (``RLIMIT_DATA`` over what the
process holds when it starts), and the loaders check what it inflates, how deep its HTML nests
and how long its documents are (``ReadLimits``). A file over a limit fails alone with
``TooLarge`` and a stable code: ``parse_timeout``, ``parse_memory``, ``file_too_large``,
``too_deep`` or ``document_too_long``.

A few parsing processes (``workers`` per set of limits) are kept and reused: a file costs a round
trip over a socket instead of a process start (about half a second, most of it importing the
loaders), and a process keeps what it loaded (Kiwi, for the spacing of PDF text) for the next
file. Each is a fresh interpreter (``subprocess``), not a ``multiprocessing`` child: those
import the caller's main module again, which a script without a ``__main__`` guard does not
survive. One that ran out of time or memory, or died, is killed and replaced on the next call.
None outlives its work: the caller kills it at the deadline, its own alarm kills it soon after if
the caller is gone, and it exits when the caller's end of its socket closes. ``stop_parsing``
kills them all at once, so that shutting down never waits for a file.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from app.core.config import ParseSettings
from app.core.errors import ErrorParams, InvalidInput, RagError, TooLarge, Unavailable
from app.retriever.loaders import LoadedDocument, load_documents
from app.retriever.loaders.common import (
    ReadLimits,
    current_limits,
    document_too_long,
    using_limits,
)

# Not ``-m app.retriever.parsing``: run as ``__main__``, the module's replies would be pickled
# as ``__main__`` classes that the caller does not have.
_PROCESS_MAIN = "import sys; from app.retriever.parsing import serve; serve(int(sys.argv[1]))"
# What a parsing process answers once it is ready for files, and how long that may take.
_READY = "ready"
_START_TIMEOUT_S = 120.0
# Seconds past the deadline after which a parsing process whose caller is gone kills itself.
_ALARM_GRACE_S = 5


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What reading one file may cost (``PARSE_*``, see ``ParseSettings``)."""

    timeout_s: float
    memory_mb: int
    max_expanded_mb: float
    max_html_depth: int
    max_document_chars: int
    workers: int

    @classmethod
    def from_settings(cls, settings: ParseSettings) -> ParseLimits:
        """The limits the settings give."""
        return cls(
            timeout_s=settings.timeout_s,
            memory_mb=settings.memory_mb,
            max_expanded_mb=settings.max_expanded_mb,
            max_html_depth=settings.max_html_depth,
            max_document_chars=settings.max_document_chars,
            workers=settings.workers,
        )

    @property
    def read(self) -> ReadLimits:
        """The limits the loaders check as they read."""
        return ReadLimits(
            max_expanded_bytes=int(self.max_expanded_mb * 1024 * 1024),
            max_html_depth=self.max_html_depth,
            max_document_chars=self.max_document_chars,
        )


def parse_bounded(filename: str, data: bytes, limits: ParseLimits) -> list[LoadedDocument]:
    """``load_documents(filename, data)`` in a parsing process, under ``limits``.

    Raises what ``load_documents`` raises, ``TooLarge`` for a file over a limit, ``InvalidInput``
    when the parser dies on the file, and ``Unavailable`` when parsing was stopped meanwhile
    (``stop_parsing``). Waits for a free parsing process when all of them are busy.
    """
    return _pool(limits).parse(filename, data)


def stop_parsing() -> None:
    """Kill every parsing process now; files being read fail with ``Unavailable``. A later
    ``parse_bounded`` starts new ones."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


@dataclass(frozen=True, slots=True)
class _Refusal:
    """An application error raised in a parsing process, sent whole (its code and params too)."""

    kind: type[RagError]
    message: str
    code: str
    params: ErrorParams


@dataclass(frozen=True, slots=True)
class _OutOfMemory:
    """The file needed more memory than the parsing process may take."""


@dataclass(frozen=True, slots=True)
class _Failure:
    """Any other exception of a loader (a bug), to be raised again in the caller."""

    error: Exception


_Reply = list[LoadedDocument] | _Refusal | _OutOfMemory | _Failure


@dataclass(frozen=True, slots=True)
class _Setup:
    """What a parsing process is told before its first file."""

    limits: ReadLimits
    memory_bytes: int
    timeout_s: float


class _Worker:
    """One parsing process and the caller's end of its socket."""

    def __init__(self, limits: ParseLimits) -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _PROCESS_MAIN, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
            self.connection = Connection(ours.detach())

    def start(self, limits: ParseLimits) -> None:
        """Send the process its limits and wait until it has imported the loaders."""
        try:
            self.connection.send(
                _Setup(limits.read, limits.memory_mb * 1024 * 1024, limits.timeout_s)
            )
            if self.connection.poll(_START_TIMEOUT_S) and self.connection.recv() == _READY:
                return
        except (EOFError, OSError):
            pass
        exitcode = self.process.poll()
        self.end()
        reason = (
            f"not ready in {_START_TIMEOUT_S:g} s" if exitcode is None else _exit_reason(exitcode)
        )
        raise Unavailable(f"A parsing process could not be started ({reason}).")

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def ask(self, filename: str, data: bytes, timeout_s: float) -> _Reply | None:
        """The reply for one file; None when the deadline passed first."""
        # The process may stop reading (the file is over its memory limit); its reply waits.
        with contextlib.suppress(BrokenPipeError):
            self.connection.send((filename, data))
        if not self.connection.poll(timeout_s):
            return None
        reply: _Reply = self.connection.recv()
        return reply

    def end(self) -> None:
        """Kill the process (if it still runs) and release it."""
        self.process.kill()
        self.process.wait()
        self.connection.close()


class _Pool:
    """Up to ``limits.workers`` parsing processes, started when needed and reused."""

    def __init__(self, limits: ParseLimits) -> None:
        self._limits = limits
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        # Workers handed out or being started: at most ``limits.workers``.
        self._taken = 0
        self._changed = threading.Condition()
        self._closed = False

    def parse(self, filename: str, data: bytes) -> list[LoadedDocument]:
        worker = self._acquire()
        reusable = False
        try:
            reply = self._ask(worker, filename, data)
            reusable = not isinstance(reply, _OutOfMemory)
            return self._documents(filename, reply)
        finally:
            self._release(worker, reusable=reusable)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
            self._changed.notify_all()
        for worker in idle:
            worker.end()
        # Their callers see the socket close and release them.
        for worker in busy:
            worker.process.kill()

    def _acquire(self) -> _Worker:
        with self._changed:
            while not self._closed and not self._idle and self._taken >= self._limits.workers:
                self._changed.wait()
            if self._closed:
                raise _stopped()
            self._taken += 1
            worker = self._idle.pop() if self._idle else None
        if worker is not None and not worker.alive():
            worker.end()
            worker = None
        try:
            # Started outside the lock: an interpreter takes a while, and closing must not wait.
            if worker is None:
                worker = _Worker(self._limits)
                worker.start(self._limits)
        except BaseException:
            if worker is not None:
                worker.end()
            self._give_back_slot()
            raise
        with self._changed:
            self._busy.add(worker)
            closed = self._closed
        if closed:
            self._release(worker, reusable=False)
            raise _stopped()
        return worker

    def _release(self, worker: _Worker, *, reusable: bool) -> None:
        with self._changed:
            self._busy.discard(worker)
            keep = reusable and not self._closed and worker.alive()
            if keep:
                self._idle.append(worker)
        if not keep:
            worker.end()
        self._give_back_slot()

    def _give_back_slot(self) -> None:
        with self._changed:
            self._taken -= 1
            self._changed.notify()

    def _ask(self, worker: _Worker, filename: str, data: bytes) -> _Reply:
        timeout_s = self._limits.timeout_s
        try:
            reply = worker.ask(filename, data, timeout_s)
        except (EOFError, OSError):
            reply = None
            died = True
        else:
            died = False
        if self._closed:
            raise _stopped()
        if reply is not None:
            return reply
        if died:
            worker.process.kill()
            exitcode = worker.process.wait()
            # Its own alarm: the deadline passed while the file was still being sent.
            if exitcode != -signal.SIGALRM:
                raise InvalidInput(
                    f"{filename} could not be read: the parser stopped on it "
                    f"({_exit_reason(exitcode)}). The file may be damaged."
                )
        raise TooLarge(
            f"{filename} took longer than {timeout_s:g} s to read and was stopped; "
            "split it into smaller files.",
            code="parse_timeout",
            params={"filename": filename, "limit_s": timeout_s},
        )

    def _documents(self, filename: str, reply: _Reply) -> list[LoadedDocument]:
        if isinstance(reply, list):
            return reply
        if isinstance(reply, _Refusal):
            raise reply.kind(reply.message, code=reply.code, params=reply.params)
        if isinstance(reply, _OutOfMemory):
            limit_mb = self._limits.memory_mb
            raise TooLarge(
                f"{filename} needs more than {limit_mb} MB of memory to read and was stopped; "
                "split it into smaller files.",
                code="parse_memory",
                params={"filename": filename, "limit_mb": limit_mb},
            )
        raise reply.error


_pools: dict[ParseLimits, _Pool] = {}
_pools_lock = threading.Lock()
# Parsing processes would end on their own once this process is gone; they are not left to.
atexit.register(stop_parsing)


def _pool(limits: ParseLimits) -> _Pool:
    with _pools_lock:
        pool = _pools.get(limits)
        if pool is None:
            pool = _pools[limits] = _Pool(limits)
        return pool


def _stopped() -> Unavailable:
    return Unavailable("Reading files was stopped: the service is shutting down.")


def _exit_reason(exitcode: int) -> str:
    if exitcode < 0:
        return f"signal {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


# ----------------------------------------------------------------- inside a parsing process


def serve(fd: int) -> None:
    """The life of a parsing process: read each file sent on the socket ``fd`` until the caller
    closes it."""
    # Ctrl+C reaches the whole process group; the caller decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    connection = Connection(fd)
    try:
        setup: _Setup = connection.recv()
    except EOFError:
        return
    _limit_memory(setup.memory_bytes)
    connection.send(_READY)
    with using_limits(setup.limits):
        while True:
            try:
                filename, data = connection.recv()
            except EOFError:
                return
            # The file alone is over the limit; what is left of it on the socket is lost.
            except MemoryError:
                connection.send(_OutOfMemory())
                return
            signal.alarm(math.ceil(setup.timeout_s) + _ALARM_GRACE_S)
            reply = _read(filename, data)
            del data
            signal.alarm(0)
            try:
                connection.send(reply)
            except BrokenPipeError:
                return
            # Pickling the documents needs as much memory again; nothing was sent yet.
            except MemoryError:
                connection.send(_OutOfMemory())
                return
            # Large documents are not kept alive until the next file arrives.
            del reply


def _read(filename: str, data: bytes) -> _Reply:
    try:
        documents = load_documents(filename, data)
        _check_lengths(filename, documents)
    except Exception as exc:
        if _out_of_memory(exc):
            return _OutOfMemory()
        if isinstance(exc, RagError):
            return _Refusal(type(exc), exc.message, exc.code, exc.params)
        # The caller logs it; the frames it shows would be its own.
        exc.add_note("In the parsing process:\n" + "".join(traceback.format_exception(exc)))
        return _Failure(_sendable(exc))
    return documents


def _check_lengths(filename: str, documents: list[LoadedDocument]) -> None:
    """Refuse a document longer than the limit before anything analyses it."""
    limit = current_limits().max_document_chars
    for number, document in enumerate(documents, start=1):
        if len(document.text) > limit:
            where = f"{filename} document {number}" if len(documents) > 1 else filename
            raise document_too_long(filename, where, len(document.text))


def _sendable(exc: Exception) -> Exception:
    """``exc``, or a ``RuntimeError`` with its type and text when it does not survive pickling."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a ``MemoryError``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _limit_memory(extra_bytes: int) -> None:
    """Let this process take ``extra_bytes`` more memory than it holds now (Linux)."""
    # RLIMIT_DATA, not RLIMIT_AS: address space only reserved counts against RLIMIT_AS (the
    # kiwipiepy import reserves about 1 GB, each thread's malloc arena 64 MB) though unused.
    held = _data_bytes()
    if held is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = held + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def _data_bytes() -> int | None:
    """What ``RLIMIT_DATA`` counts in this process now (``VmData``); None off Linux."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text(encoding="ascii").splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return None
