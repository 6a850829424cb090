"""Partners' EPCIS documents read away from the event loop: parsing and schema checking hold
the GIL for seconds on a large document, so they run in worker processes, one document of a
tenant at a time, while every other tenant's calls keep being answered.

A document's events come back as pickles of a hundred events each, loaded one after another on
a thread: one pickle of 10,000 events took about 100 ms to load, all of it holding the GIL,
which every other tenant's call then waited for."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from tracecore import epcis
from tracecore.epcis import schema
from tracecore.errors import TraceError, Unavailable
from tracecore.events import Event
from tracecore.ledger import exchange
from tracecore.ledger.tenants import LEDGER, Tenant

#: Events per pickle handed back by a reader: about 1 ms of loading each.
EVENTS_PER_PICKLE = 100

Packed = tuple[list[bytes], list[epcis.Refusal], dict[str, tuple[str, str]]]
"""A document read in a reader process: its events in pickles of ``EVENTS_PER_PICKLE``, its
refusals and the external parties it names."""

#: Default bound of one imported document.
DEFAULT_MAX_BYTES = exchange.MAX_DOCUMENT_BYTES


@dataclass(frozen=True, slots=True)
class Sent:
    """A document to read, and the sender's custodian and credential its events are held to."""

    text: str
    custodian: str = ""
    credential: str = ""


@dataclass
class Importer:
    """The worker processes that read documents, and the turn each tenant waits for."""

    max_bytes: int = DEFAULT_MAX_BYTES
    """Largest document one import may send (``pharmatrace serve --max-import-mib``)."""
    workers: int = 0
    """Worker processes; 0: one per core (at least two, so one tenant cannot hold them all)."""
    make_way: Callable[[], None] = field(default=lambda: None, repr=False)
    """Called between two pickles of a document's events while they are loaded: the writer's
    ``make_way``, which lets other tenants' writes run (``WriteSide.open`` sets it)."""
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)
    _turns: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def read(self, tenant: Tenant, text: str, custodian: str = "", credential: str = ""
                   ) -> exchange.Imported:
        """The document's events, each held to the sender's ``custodian`` and ``credential``
        (set here, in the reader, rather than event by event on the event loop);
        InvalidArgument naming the problem (its size, its JSON, its nesting, the first event
        that does not conform)."""
        exchange.check_size(text, self.max_bytes)
        # A tenant's documents are read one after another: a tenant sending many at once
        # queues behind itself and leaves the other workers to other tenants.
        turn = self._turns.setdefault(tenant.name, asyncio.Lock())
        async with turn:
            loop = asyncio.get_running_loop()
            try:
                packed = await loop.run_in_executor(
                    self._executor(), _read, tenant.path / LEDGER, tenant.name,
                    text, self.max_bytes, custodian, credential)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): the next import gets fresh ones.
                self.close()
                raise Unavailable("the document reader stopped while reading this document; "
                                  "send it again") from None
            # Within the turn: the tenant's next document is not handed on before this one.
            return await asyncio.to_thread(_unpack, packed, self.make_way)

    async def read_many(self, tenant: Tenant, documents: Sequence[Sent]
                        ) -> list[exchange.Imported | TraceError]:
        """Several documents of a tenant read side by side, on every worker, in one turn of the
        tenant: each document's events, or the error that refused it alone."""
        answers: dict[int, exchange.Imported | TraceError] = {}
        texts = [document.text for document in documents]
        for i, text in enumerate(texts):
            try:
                exchange.check_size(text, self.max_bytes)
            except TraceError as exc:
                answers[i] = exc
        sized = [i for i in range(len(texts)) if i not in answers]
        turn = self._turns.setdefault(tenant.name, asyncio.Lock())
        async with turn:
            loop = asyncio.get_running_loop()
            executor = self._executor()
            read = await asyncio.gather(*(loop.run_in_executor(
                executor, _read, tenant.path / LEDGER, tenant.name, texts[i],
                self.max_bytes, documents[i].custodian, documents[i].credential)
                for i in sized), return_exceptions=True)
            # Loaded within the turn, so that a tenant's runs of documents reach the writer in
            # the order they were read: the next run's turn starts only once this one returns.
            for i, outcome in zip(sized, read, strict=True):
                if isinstance(outcome, BrokenProcessPool):
                    self.close()
                    outcome = Unavailable("the document reader stopped while reading this "
                                          "document; send it again")
                elif isinstance(outcome, BaseException) and not isinstance(outcome, TraceError):
                    raise outcome
                answers[i] = (outcome if isinstance(outcome, TraceError)
                              else await asyncio.to_thread(_unpack, outcome, self.make_way))
        return [answers[i] for i in range(len(texts))]

    def close(self) -> None:
        """Stops the worker processes at once (a document being read is abandoned), so that
        shutting down never waits for a large document."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            workers = list(pool._processes.values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: the server process runs gRPC and LMDB threads that a fork
            # would copy in an unknown state.
            workers = self.workers or max(2, os.cpu_count() or 1)
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_reader)
            # The pool starts a process only when a document finds none idle, and a process
            # takes a second or more to start: every one is started now, with the first
            # document, rather than in the middle of a run of documents read side by side.
            for _ in range(workers):
                self._pool.submit(int)
            # Set from here, not in the process itself: its start (the interpreter, the
            # reading code, the schema) takes a second or more of a core before it could.
            for process in self._pool._processes.values():
                if process.pid is not None:
                    os.sched_setscheduler(process.pid, READER_POLICY, os.sched_param(0))
        return self._pool


#: The readers' scheduling policy: they run on what the server's own threads leave of the
#: cores, and any of those threads that wakes takes a core from them at once. Niced by 5 (the
#: policy before), a reader can hold a core for its time slice against a waking server thread.
#: Another tenant's small writes during a 10,000-event import, p99 over 7 alternated runs at
#: load about 2: median 20.2 ms (16-43) against 28.5 ms (21-41) niced.
READER_POLICY = os.SCHED_IDLE


def _start_reader() -> None:
    """Readies a new reader process for its first document: the reading code imported and the
    EPCIS schema compiled (together over a second), so that no document waits for them. The
    readers yield the cores to the server's calls when both want them (``READER_POLICY``): a
    tenant's documents do not slow another tenant's answers."""
    schema.conforms({})


def _read(ledger_path: Path, tenant: str, text: str, max_bytes: int, custodian: str,
          credential: str) -> Packed:
    """``exchange.import_from`` in a reader process, its events packed for the way back."""
    events, refusals, external = exchange.import_from(ledger_path, tenant, text, max_bytes,
                                                      custodian, credential)
    return ([pickle.dumps(events[i:i + EVENTS_PER_PICKLE], pickle.HIGHEST_PROTOCOL)
             for i in range(0, len(events), EVENTS_PER_PICKLE)], refusals, external)


def _unpack(packed: Packed, make_way: Callable[[], None]) -> exchange.Imported:
    """The events of a packed document, loaded one pickle at a time, making way for other
    tenants' writes between two."""
    pickles, refusals, external = packed
    events: list[tuple[int, Event]] = []
    for data in pickles:
        events += pickle.loads(data)  # noqa: S301 (our own reader process pickled it)
        make_way()
    return events, refusals, external
