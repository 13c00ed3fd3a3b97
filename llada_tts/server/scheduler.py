"""Dynamic batching across requests, on top of ``LladaTTS.prepare`` / ``sample_chunks``.

A request is planned into chunks exactly as ``synthesize`` / ``llada-tts say`` plan it (the
library's ``prepare``). Its chunks wait in the scheduler; ONE worker thread runs the model, one
``sample_chunks`` call (= one ``sample()`` call over a batch of canvases + the codec decodes) at
a time, so the event loop stays free to accept, stream and cancel.

Batching. When the worker is idle and a request arrives, the scheduler waits up to
``batch_wait_ms`` for more (or until ``max_batch`` chunks are pending), then fills a batch. While
a batch runs, arrivals queue up and the next batch starts as soon as the worker is free (no
wait). Every request in a masked-diffusion batch runs the same number of denoising steps, so
batched rows share every forward pass. Rows of one batch must share their sampler options (the
canvas is sized for the longest chunk, as in ``synthesize``'s batches); a batch also stays under
the library's memory cap (``batch_token_limit``: rows x canvas tokens).

Fairness: round-robin over requests. The requests with chunks left stand in a rotation. A batch
is filled in passes over the rotation, starting at its head: each pass takes the NEXT chunk (in
text order) of every request that shares the head's sampler options, until ``max_batch`` rows;
a request gets a second row in the same batch only when fewer requests than ``max_batch`` are
waiting. Requests that got rows move to the back of the rotation, so the next batch starts with
those that waited (including requests with other options, which head the next batch). A long
request therefore advances one chunk per pass like everyone else: it never blocks short ones,
and a short request waits at most about (waiting requests / max_batch) batches for each chunk.
Each request's chunks finish in text order, so its audio streams in order.

Admission (``--max-queue``). A request holds one slot from ``submit`` until its response is over:
its last byte is handed to the server, it failed, or its client left — i.e. until the handler
calls ``cancel``. A request whose chunks are all sampled but whose audio is still being sent (a
slow or paused client) still counts: its undelivered audio is held in memory, and the limit is
exactly "at most ``max_queue`` speech responses in progress at once". ``jobs`` is that set and
``llada_tts_active_requests`` its size; ``submit`` refuses with 503 when ``max_queue`` are held.

Cancelling a request (client gone, response over) drops its pending chunks at once and gives its
slot back; rows already in the running batch finish and are discarded.

Seeds: a batch draws from one generator seeded with its first row's seed + chunk index, so a
request's audio is reproducible from its seed only when it is sampled alone (``--max-batch 1``).

Requests that are not batched (``submit_whole``): a request speaking with a registered reference
voice runs as one ``synthesize(..., reference=...)`` call on the same model thread, between batches
(``sample_chunks`` takes no reference: every row of a batch would need the reference's ids at the
start of its canvas). It holds a slot like any request and its audio arrives as one piece when the
whole text is done; with the same seed it is reproducible at any ``--max-batch``. ``run`` runs
other model work (encoding an uploaded voice) on that thread too, outside the slots.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace

from llada_tts.server.errors import overloaded
from llada_tts.server.metrics import Metrics

log = logging.getLogger("llada_tts.server")


@dataclass(frozen=True)
class ChunkReady:
    """A chunk of the request is sampled and decoded, in text order."""

    audio: object  # llada_tts.synthesis.pipeline._ChunkAudio, or any object with ``.wave`` (float32 [n])


@dataclass(frozen=True)
class JobFailed:
    """The request failed (its last event): no more chunks come."""

    error: BaseException


@dataclass(frozen=True)
class JobDone:
    """Every chunk of the request was delivered (its last event)."""


JobEvent = ChunkReady | JobFailed | JobDone


@dataclass(eq=False)
class Job:
    """One admitted request: its prepared run and the events the handler reads (``ChunkReady``
    per chunk, then ``JobDone``; or ``JobFailed`` at any point)."""

    run: object  # llada_tts.synthesis.pipeline._Run
    key: tuple
    events: asyncio.Queue[JobEvent] = field(default_factory=asyncio.Queue)
    next_chunk: int = 0  # the next chunk to put in a batch
    finished: bool = False  # no more chunks will be sampled (all delivered, failed or cancelled)
    submitted: float = field(default_factory=time.perf_counter)
    whole: bool = False  # runs outside the batches (``submit_whole``)
    future: object = None  # its model-thread call, while one is pending


    @property
    def pending(self) -> int:
        return 0 if self.finished else len(self.run.plans) - self.next_chunk


class Scheduler:
    def __init__(self, tts, *, max_batch: int = 8, batch_wait_ms: float = 20.0, max_queue: int = 64,
                 max_duration: float | None = None, metrics: Metrics | None = None):
        from llada_tts.synthesis.defaults import batch_token_limit

        self.tts = tts
        self.max_batch, self.batch_wait = max_batch, batch_wait_ms / 1000.0
        self.max_queue = max_queue
        self.token_budget = batch_token_limit(max_duration)
        self.metrics = metrics or Metrics()
        self.rotation: deque[Job] = deque()  # requests with chunks left to schedule
        self.jobs: set[Job] = set()  # the slots: admitted, response not over (<= max_queue; see the docstring)
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llada-tts-model")
        self._task: asyncio.Task | None = None
        self.batches = 0

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="llada-tts-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- requests ---------------------------------------------------------------------------------
    def submit(self, run) -> Job:
        """Admit a prepared run, or raise a 503 ApiError (with Retry-After) when ``max_queue`` requests
        hold a slot (admitted and ``cancel`` not yet called, even if all their chunks are sampled)."""
        if len(self.jobs) >= self.max_queue:
            raise overloaded(f"the server is busy: {len(self.jobs)} requests are in progress (--max-queue "
                             f"{self.max_queue}); retry shortly")
        job = Job(run, _options_key(run.options))
        self.jobs.add(job)
        self.rotation.append(job)
        self._update_gauges()
        self._wake.set()
        return job

    def submit_whole(self, fn) -> Job:
        """Admit a request that runs as one call ``fn() -> audio`` (an object with ``.wave``) on the
        model thread, outside the batches (see the module docstring); 503 like ``submit``. Its events
        are one ``ChunkReady(audio)`` and ``JobDone()``, or one ``JobFailed(exception)``."""
        if len(self.jobs) >= self.max_queue:
            raise overloaded(f"the server is busy: {len(self.jobs)} requests are in progress (--max-queue "
                             f"{self.max_queue}); retry shortly")
        job = Job(SimpleNamespace(plans=[None], options={}), ("whole",), next_chunk=1, whole=True)
        self.jobs.add(job)
        self._update_gauges()
        job.future = self._executor.submit(fn)  # cancel() of a call not started yet is immediate

        def done(f):
            job.future = None
            if not f.cancelled():
                self._deliver(job, 0, f.exception() or f.result())

        asyncio.wrap_future(job.future).add_done_callback(done)  # delivered on the event loop
        return job

    async def run(self, fn):
        """``fn()`` on the model thread (after the batch in progress), outside the slots."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def cancel(self, job: Job) -> bool:
        """The request is over (response sent, failed, or client gone): drop its pending chunks and
        give its slot back. Idempotent; True when this call gave the slot back. Its rows in a
        running batch finish and are discarded."""
        self._stop_sampling(job)
        if job.future is not None:  # not started yet: never runs; running: finishes and is discarded
            job.future.cancel()
        if job not in self.jobs:
            return False
        self.jobs.discard(job)
        self._update_gauges()
        return True

    def _stop_sampling(self, job: Job) -> None:
        """No more chunks for this job; it keeps its slot until ``cancel``."""
        job.finished = True
        try:
            self.rotation.remove(job)
        except ValueError:
            pass

    @property
    def queue_depth(self) -> int:
        return sum(j.pending for j in self.rotation)

    def _update_gauges(self) -> None:
        self.metrics.queue_depth = self.queue_depth
        self.metrics.active = len(self.jobs)

    # --- the batching loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        idle = True
        while True:
            if not self.queue_depth:
                idle = True
                self._wake.clear()
                await self._wake.wait()
                continue
            if idle and self.batch_wait > 0:  # gather arrivals for up to batch_wait
                deadline = loop.time() + self.batch_wait
                while self.queue_depth < self.max_batch and (left := deadline - loop.time()) > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), left)
                    except asyncio.TimeoutError:
                        break
            idle = False
            try:
                rows = self.pick()
            except Exception as e:  # noqa: BLE001  a bug here must not stop the loop: fail what waits
                log.error("the scheduler failed to form a batch", exc_info=e)
                for job in list(self.rotation):
                    self._deliver(job, 0, e)
                continue
            if not rows:
                continue
            self._update_gauges()
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.tts.sample_chunks,
                                                     [(job.run, i) for job, i in rows])
            except Exception as e:  # noqa: BLE001  a failed batch fails its requests, never the server
                log.error("sample_chunks failed for a batch of %d rows", len(rows), exc_info=e)
                results = [e] * len(rows)
            self.batches += 1
            self.metrics.batch(len(rows), time.perf_counter() - start)
            for (job, i), result in zip(rows, results):
                self._deliver(job, i, result)
            self._update_gauges()

    def pick(self) -> list[tuple[Job, int]]:
        """The next batch, round-robin (see the module docstring): [(job, chunk index)]."""
        from llada_tts.synthesis.plan import sampler_config

        waiting = [j for j in self.rotation if j.pending]
        if not waiting:
            return []
        key = waiting[0].key
        options = waiting[0].run.options
        group = [j for j in waiting if j.key == key]
        rows: list[tuple[Job, int]] = []
        taken: dict[Job, int] = {}
        frames = 0
        while len(rows) < self.max_batch:
            added = False
            for job in group:
                if len(rows) >= self.max_batch:
                    break
                i = job.next_chunk + taken.get(job, 0)
                if i >= len(job.run.plans):
                    continue
                if rows and self.token_budget is not None:
                    longest = max(frames, job.run.plans[i].frames)
                    if (len(rows) + 1) * sampler_config(longest, options).gen_length > self.token_budget:
                        continue
                frames = max(frames, job.run.plans[i].frames)
                rows.append((job, i))
                taken[job] = taken.get(job, 0) + 1
                added = True
            if not added:
                break
        for job, n in taken.items():  # served: to the back of the rotation, in their order
            job.next_chunk += n
            self.rotation.remove(job)
            if job.pending:
                self.rotation.append(job)
        return rows

    def _deliver(self, job: Job, index: int, result) -> None:
        if job.finished:
            return  # cancelled (or failed) while its rows ran
        if isinstance(result, BaseException):
            job.events.put_nowait(JobFailed(result))
            self._stop_sampling(job)  # the slot is given back when the handler has answered (cancel)
            return
        job.events.put_nowait(ChunkReady(result))
        if index == len(job.run.plans) - 1:
            job.events.put_nowait(JobDone())
            self._stop_sampling(job)  # still holds its slot while its audio is being sent


def _options_key(options: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in options.items()))
