"""The runner: claims queued executions from the store and runs each in a child process.

Owns the concurrency limit, the maximum runtime and cancellation; the store stays the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import resource
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from tether import aio, errors, limits
from tether.actions import executions as execution_actions
from tether.actions import users
from tether.actions.context import Context
from tether.actions.membership import Membership
from tether.runner.batching import Batcher
from tether.runner.forkserver import ForkServer
from tether.runner.process import ChildProcess, describe_exit
from tether.runner.requests import Requests
from tether.statuses import ENDED, Event, Status, StopReason
from tether.store import executions
from tether.store.executions import Execution

log = logging.getLogger(__name__)

CLAIM_POLL_S = 1.0  # look for queued executions this often even without a wake-up
# On a store other processes share, look this often for cancels of running executions that
# were announced elsewhere and whose notification may have been lost.
CANCEL_POLL_S = 1.0
# the soft limit of open files taken when the hard one is unlimited (Linux's default nr_open)
NO_HARD_LIMIT_FILES = 1024 * 1024
CLAIM_BATCH = 8  # executions claimed per transaction when many are queued
RUNNING_ANNOUNCE_S = 0.05  # a received execution still running after this is reported RUNNING
LOG_FLUSH_S = 0.05
# Ends written per transaction at most: those that come while one batch is written are
# written together next (a cancel of thousands ends them all at once).
END_BATCH = 500
# Children signalled to stop between two turns of the loop at most (see _signal_stops).
SIGNAL_BATCH = 50
# The log entries of one execution held for the store at most, by count and by bytes (one
# update's worth, outgoing.MAX_LOG_PER_UPDATE and MAX_LOG_BYTES_PER_UPDATE): past either the
# runner starts writing them and reads on, and a second batch waits for that write before
# it is written while the child blocks on its full channel or pipe. A fast writer's log
# costs the server two batches, not what it writes in LOG_FLUSH_S or while a write to the
# store is slow.
LOG_BATCH = 500
LOG_BATCH_BYTES = 1024 * 1024
# After its end, how long a child's programs may keep its fds 1 and 2 open before their
# last output is given up (they are killed with its process group right after).
OUTPUT_DRAIN_S = 1.0
LOG_CUT = (
    "[log cut: this execution wrote more than {mb} MiB of log; the rest was dropped "
    "(the workspace's --execution-log-mb)]"
)
STORE_FAILED_MESSAGE = (
    "this execution was stopped because the workspace could not store its log: {detail}; "
    "its last log lines were lost: run it again once that is mended"
)
RESTART_MESSAGE = (
    "the workspace stopped while this execution was running; it was not resumed and will not "
    "run again: start a new execution if it is still needed"
)


@dataclass
class Running:
    """One execution this runner is running."""

    execution: Execution
    process: ChildProcess
    stop_reason: StopReason | None = None
    waits: int = 0  # requests waiting on other executions; a cancel may leave two at once
    is_cancel_pending: bool = False  # cancelled before the script was handed over
    killer: asyncio.TimerHandle | None = None
    deadline: asyncio.TimerHandle | None = None
    log_lines: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    held_bytes: int = 0  # of log_lines, against LOG_BATCH_BYTES
    log_bytes: int = 0  # of entries kept so far, against the runner's per-execution cap
    is_log_cut: bool = False  # past the cap: the marker is written, further entries dropped
    store_failure: str | None = None  # why the store refused its log (the disk is full)
    # The last write of held log entries started: each write waits for the one started
    # before it, which keeps the entries (from the channel and from the child's fds 1 and 2)
    # in order in the store.
    log_writing: asyncio.Task[None] | None = None
    log_timer: asyncio.TimerHandle | None = None
    is_flush_owed: bool = False  # the timer fired during a write: write once it ends
    output: asyncio.Task[None] | None = None


class Runner:
    """Runs this workspace's executions, at most ``max_running`` of them at once."""

    def __init__(
        self,
        ctx: Context,
        *,
        membership: Membership,
        max_running: int,
        cancel_grace_s: float,
        sandbox: dict[str, Any] | None = None,
        max_log_mb: int = limits.DEFAULT_EXECUTION_LOG_MB,
    ) -> None:
        self._ctx = ctx
        self._membership = membership
        self._max_running = max_running
        self._grace_s = cancel_grace_s
        self._max_log_mb = max_log_mb
        # Ends the store refused (a full disk): written by the claim loop once it takes them.
        self._owed_ends: dict[str, tuple[str, str | None]] = {}
        # Ends that come at once (a cancel of thousands) are written together.
        self._endings = Batcher(functools.partial(execution_actions.end_all, ctx), END_BATCH)
        # Executions asked to stop whose children have not had the signal yet, and the task
        # that sends it (while there are any).
        self._to_signal: list[Running] = []
        self._signaller: asyncio.Task[None] | None = None
        self._server = ForkServer(sandbox)
        self._owner_rights = users.OwnerRights(ctx)  # who may do what, for every Requests
        self._running: dict[str, Running] = {}
        # Of those, how many wait on others and hold no slot: counted as they change, since
        # every claim and every end asks, and 3,000 sleeping made counting them a tenth of
        # a mass cancel's work.
        self._waiting_count = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._spare: asyncio.Task[ChildProcess] | None = None
        # Cancels that arrived while their execution was being claimed, before it was known here.
        self._early_cancels: set[str] = set()
        # Whether the last look for work stopped for want of a slot (not for want of work).
        self._is_short_of_room = False
        self._cancels_checked_at = 0.0  # time.monotonic() of the last look for cancels

    async def start(self) -> None:
        """Start the fork server and begin claiming (the membership has joined already)."""
        raise_open_files_limit()
        await self._server.start()
        log.info("executions run %s", describe_sandbox(self.sandbox))
        self._ctx.events.listen(Event.QUEUED, lambda _key: self._wake.set())
        self._ctx.events.listen(Event.CANCEL, self._on_cancel)
        self._membership.on_lost(self.fence)
        self._loop_task = asyncio.create_task(self._claim_loop())

    async def fence(self) -> None:
        """The lease was lost: kill every execution's process group at once and write
        nothing more about them (whoever reaps this process ends them)."""
        for running in list(self._running.values()):
            running.stop_reason = StopReason.FENCED
            running.process.kill()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming, kill running children, and end their executions."""
        await aio.stop_tasks(self._loop_task, self._signaller)  # killed now instead
        for running in list(self._running.values()):
            running.stop_reason = StopReason.SHUTDOWN
            running.process.kill()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._discard_spare()
        await self._server.stop()

    @property
    def sandbox(self) -> dict[str, Any]:
        """Whether the sandbox is on and, if so, which account children run as."""
        return {k: v for k, v in self._server.readiness.items() if k != "scratch_root"}

    @property
    def active_count(self) -> int:
        """Running executions that hold a slot (those waiting on others do not)."""
        return len(self._running) - self._waiting_count

    async def _claim_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._settle_owed_ends()
                await self._claim_while_room()
                await self._look_for_cancels()
            except errors.StoreUnavailable as exc:
                log.warning("claiming executions failed: %s", exc.message)
            except Exception:  # the loop's edge: record and go on
                log.exception("claiming executions failed")
            await aio.wait_event(self._wake, CLAIM_POLL_S)

    async def _claim_while_room(self) -> None:
        while (room := self._max_running - self.active_count) > 0:
            self._is_short_of_room = False
            limit = min(room, CLAIM_BATCH)
            process_id = self._membership.process_id
            if process_id is None or not self._membership.check():
                return  # fencing: the membership wakes the loop when it has rejoined
            claimed = await asyncio.to_thread(
                execution_actions.claim_some, self._ctx, process_id, limit
            )
            if claimed and (
                self._membership.process_id != process_id or not self._membership.check()
            ):
                # The answer came after the lease was lost (a store cut off mid-claim, then
                # healed): the claim stands under the lost id, and whoever reaps that id ends
                # them; running them now would run them under no lease.
                log.error(
                    "dropped %d executions claimed under the lost lease %s",
                    len(claimed),
                    process_id,
                )
                return
            for ex in claimed:
                process = await self._spawn(ex)
                running = Running(ex, process)
                self._running[ex.id] = running
                running.is_cancel_pending = ex.is_cancel_requested
                task = asyncio.create_task(self._run(running))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if len(claimed) < limit:
                return  # none left queued; a new one announces itself (Event.QUEUED)
        # Queued executions may be waiting for a slot: a slot freed must wake the loop.
        self._is_short_of_room = True

    async def _look_for_cancels(self) -> None:
        """The poll behind cancels announced in other processes (shared stores only)."""
        now = time.monotonic()
        if self._ctx.origin is None or not self._running:
            return
        if now - self._cancels_checked_at < CANCEL_POLL_S:
            return
        self._cancels_checked_at = now
        ids = list(self._running)
        for execution_id in await asyncio.to_thread(
            execution_actions.cancels_requested, self._ctx, ids
        ):
            running = self._running.get(execution_id)
            if running is not None:
                self._stop(running, StopReason.CANCEL)

    def _slot_freed(self) -> None:
        if self._is_short_of_room:
            self._wake.set()

    async def _spawn(self, ex: Execution) -> ChildProcess:
        """A process for ``ex``; a claimed execution that gets none ends ENDED_ERROR."""
        try:
            if not self._server.is_running:
                # Its children died with it (they die with their parent); new ones need it.
                log.warning("the fork server is gone: starting a new one")
                await self._discard_spare()
                await self._server.restart()
            return await self._take_spare()
        except Exception:
            await asyncio.to_thread(
                execution_actions.end,
                self._ctx,
                ex.id,
                Status.ENDED_ERROR,
                "the engine could not start a process for this execution: see the server log",
            )
            raise

    async def _take_spare(self) -> ChildProcess:
        """A ready child (forked ahead of need), and the next one forked in the background."""
        spare, self._spare = self._spare, None
        process: ChildProcess | None = None
        if spare is not None:
            try:
                process = await spare
            except Exception:  # a spare that failed is replaced below; the cause is logged
                log.exception("forking a spare child failed")
        if process is None:
            process = await ChildProcess.spawn(self._server)
        self._spare = asyncio.create_task(ChildProcess.spawn(self._server))
        return process

    async def _discard_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is None:
            return
        with contextlib.suppress(Exception):
            process = await spare
            process.kill()
            await process.close()

    def _on_cancel(self, execution_id: str) -> None:
        running = self._running.get(execution_id)
        if running is not None:
            self._stop(running, StopReason.CANCEL)
        else:
            if len(self._early_cancels) > 1000:
                self._early_cancels.clear()  # ids of executions claimed elsewhere accumulate
            self._early_cancels.add(execution_id)

    def _stop(self, running: Running, reason: StopReason) -> None:
        if running.stop_reason is not None:
            return
        running.stop_reason = reason
        self._to_signal.append(running)
        if self._signaller is None or self._signaller.done():
            self._signaller = asyncio.create_task(self._signal_stops())
        running.killer = asyncio.get_running_loop().call_later(self._grace_s, running.process.kill)

    async def _signal_stops(self) -> None:
        """Raise the cancel signal in the children asked to stop, SIGNAL_BATCH at a time with
        the loop's other work in between. Each signal wakes a child, which takes a core at
        once: 3,000 in a row held the loop (the cancel's own answer, the children's ends)
        for seconds."""
        while self._to_signal:
            batch = self._to_signal[:SIGNAL_BATCH]
            del self._to_signal[:SIGNAL_BATCH]
            for running in batch:
                if self._running.get(running.execution.id) is running:  # not ended meanwhile
                    running.process.signal_cancel()
            await asyncio.sleep(0)

    async def _run(self, running: Running) -> None:
        ex = running.execution
        try:
            try:
                end = await self._converse(running)
                if not self._may_write(running):
                    return
                status, message = await self._outcome(running, end)
            except errors.StoreUnavailable as exc:
                log.warning("execution %s stopped: %s", ex.id, exc.message)
                running.process.kill()
                status = Status.ENDED_ERROR
                message = STORE_FAILED_MESSAGE.format(detail=exc.message)
            except Exception:  # the runner's edge: the execution must still end
                log.exception("running execution %s failed", ex.id)
                running.process.kill()
                status = Status.ENDED_ERROR
                message = "the engine failed while running this execution: see the server log"
            if not self._may_write(running):
                return  # fenced: another process has taken over what this one ran
            await self._end(ex.id, status, message)
        finally:
            for timer in (running.killer, running.deadline, running.log_timer):
                if timer is not None:
                    timer.cancel()
            if running.output is not None:
                running.output.cancel()
                await asyncio.gather(running.output, return_exceptions=True)
            if running.log_writing is not None:  # a write that failed ended it: done already
                await asyncio.gather(running.log_writing, return_exceptions=True)
            running.process.kill()
            await running.process.close()
            if self._running.pop(ex.id, None) is running and running.waits:
                self._waiting_count -= 1
            self._slot_freed()

    async def _converse(self, running: Running) -> dict[str, Any] | None:
        """Hand the script to the child and answer its requests until it reports its end."""
        ex, process = running.execution, running.process
        running.output = asyncio.create_task(
            process.read_output(lambda stream, line: self._add_output(running, stream, line))
        )
        await process.send(
            {"op": "run", "execution": executions.as_record(ex), "script": ex.script}
        )
        if ex.max_runtime_s:
            running.deadline = asyncio.get_running_loop().call_later(
                ex.max_runtime_s, self._stop, running, StopReason.TIMEOUT
            )
        if running.is_cancel_pending or ex.id in self._early_cancels:
            self._early_cancels.discard(ex.id)
            self._stop(running, StopReason.CANCEL)
        if ex.origin == executions.RECEIVED:
            announcing = asyncio.create_task(self._announce_running(running))
            self._tasks.add(announcing)
            announcing.add_done_callback(self._tasks.discard)
        requests = Requests(
            self._ctx, ex, self._owner_rights, lambda waiting: self._set_waiting(running, waiting)
        )
        # Requests are answered in tasks so that the channel keeps being read meanwhile: a
        # cancel can interrupt a long wait, and the script's finally block then sends new
        # requests (the child skips the answer to the interrupted one by its rid).
        answering: set[asyncio.Task[None]] = set()
        try:
            while True:
                message = await self._next_message(running)
                if message is None or message.get("op") == "end":
                    await self._drain_output(running)
                    return message
                task = asyncio.create_task(self._reply(process, requests, message))
                answering.add(task)
                task.add_done_callback(answering.discard)
        finally:
            for task in answering:
                task.cancel()
            await asyncio.gather(*answering, return_exceptions=True)

    async def _announce_running(self, running: Running) -> None:
        """Report RUNNING over the link once the execution has run a moment and not ended."""
        await asyncio.sleep(RUNNING_ANNOUNCE_S)
        if self._running.get(running.execution.id) is running and self._may_write(running):
            with contextlib.suppress(errors.TetherError):
                await asyncio.to_thread(
                    execution_actions.announce_running, self._ctx, running.execution.id
                )

    async def _next_message(self, running: Running) -> dict[str, Any] | None:
        """The child's next message that is not a log line; log lines are stored in batches,
        each within LOG_FLUSH_S of its first line."""
        while True:
            message = await running.process.receive()
            if message is not None and message.get("op") == "log":
                await self._hold_entry(
                    running,
                    float(message["time"]),
                    str(message["message"]),
                    dict(message.get("fields") or {}),
                )
                continue
            await self._flush_log(running)
            return message

    async def _reply(
        self, process: ChildProcess, requests: Requests, message: dict[str, Any]
    ) -> None:
        if not self._membership.check():
            return  # the lease is lost: the child is being killed, its requests change nothing
        await process.send(await self._answer(requests, message))

    def _may_write(self, running: Running) -> bool:
        """Whether this runner may still write about ``running`` (not once its lease is lost)."""
        return running.stop_reason != StopReason.FENCED and self._membership.check()

    async def _answer(self, requests: Requests, message: dict[str, Any]) -> dict[str, Any]:
        rid = message.get("rid")
        try:
            return {"rid": rid, "result": await requests.answer(message)}
        except errors.TetherError as exc:
            return {"rid": rid, "error": {"kind": exc.kind, "message": exc.message}}
        except Exception as exc:  # the request's edge: the script sees an error, the log the cause
            log.exception("answering %s failed", message.get("op"))
            return {
                "rid": rid,
                "error": {"kind": "error", "message": f"the engine could not answer: {exc}"},
            }

    def _set_waiting(self, running: Running, is_waiting: bool) -> None:
        was_waiting = running.waits > 0
        running.waits += 1 if is_waiting else -1
        if self._running.get(running.execution.id) is running:
            self._waiting_count += (running.waits > 0) - was_waiting
        if is_waiting:
            self._slot_freed()

    async def _add_output(self, running: Running, stream: str, line: str) -> None:
        """A line a program of the script wrote to fd 1 or 2 (the script's own print() comes
        over the channel); stored within LOG_FLUSH_S, as the channel's lines are."""
        fields = {} if stream == "stdout" else {"stream": stream}
        await self._hold_entry(running, time.time(), line, fields)

    async def _hold_entry(
        self, running: Running, at: float, text: str, fields: dict[str, Any]
    ) -> None:
        """Hold one log entry for the store: written with its batch once that is full, or
        LOG_FLUSH_S after the first entry held (one timer, not one per line: a timeout
        around every read of the channel cost a tenth of the engine's time on a big log)."""
        self._add_entry(running, at, text, fields)
        await self._make_room(running)
        if running.log_timer is None and running.log_lines:
            running.log_timer = asyncio.get_running_loop().call_later(
                LOG_FLUSH_S, self._flush_in_background, running
            )

    async def _make_room(self, running: Running) -> None:
        """Once the held entries reach a batch, start writing them and read on: the next
        batch fills while this one is written, and waits for that write before it starts.
        Both readers (the channel, the child's fds 1 and 2) may wait here on the same write:
        whichever goes on first writes the batch, the other finds it taken."""
        while len(running.log_lines) >= LOG_BATCH or running.held_bytes >= LOG_BATCH_BYTES:
            writing = running.log_writing
            if _is_under_way(writing):
                await asyncio.shield(writing)
            else:
                self._write_held(running)

    def _add_entry(self, running: Running, at: float, text: str, fields: dict[str, Any]) -> None:
        """Keep one log entry for the store, cut to the entry cap; past the execution's log
        cap (or once the store refused its log) entries are dropped, the first with a marker."""
        if running.is_log_cut or running.store_failure is not None:
            return
        # Cut here too: a script can write to its channel without flow_api.
        text = limits.cut_text(text, limits.MAX_LOG_ENTRY_BYTES)
        fields, fields_bytes = limits.cut_fields(fields)
        size = limits.text_bytes(text) + fields_bytes
        running.log_bytes += size
        if running.log_bytes > self._max_log_mb * 1024 * 1024:
            running.is_log_cut = True
            text, fields = LOG_CUT.format(mb=self._max_log_mb), {}
            size = len(text)
        running.log_lines.append((at, text, fields))
        running.held_bytes += size

    def _flush_in_background(self, running: Running) -> None:
        """LOG_FLUSH_S after the first entry held: write the held entries now, or, while a
        write is still under way (the store is slower than that), as soon as it ends; never
        a second write queued behind it, which would hold a third batch."""
        running.log_timer = None
        writing = running.log_writing
        if _is_under_way(writing):
            if not running.is_flush_owed:
                running.is_flush_owed = True
                writing.add_done_callback(lambda ended: self._write_owed(running, ended))
        else:
            self._write_held(running)

    def _write_owed(self, running: Running, ended: asyncio.Task[None]) -> None:
        """The write under way when the flush timer fired has ended: write what is held,
        unless a full batch has started a newer write (which took the entries along), or
        the write was cancelled (the runner is stopping)."""
        running.is_flush_owed = False
        if ended.cancelled():
            return
        if running.log_lines and not _is_under_way(running.log_writing):
            self._write_held(running)

    async def _drain_output(self, running: Running) -> None:
        """Wait for the last lines the child's programs wrote (it closed its fds 1 and 2)."""
        if running.output is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTPUT_DRAIN_S):
                    await asyncio.shield(running.output)
        await self._flush_log(running)

    async def _flush_log(self, running: Running) -> None:
        """Write the held entries; return once they and every entry before them are stored."""
        await self._write_held(running)

    def _write_held(self, running: Running) -> asyncio.Task[None]:
        """Start writing the held entries after the writes started before; the task."""
        lines, running.log_lines = running.log_lines, []
        running.held_bytes = 0
        if running.log_timer is not None:  # armed for the entries taken now
            running.log_timer.cancel()
            running.log_timer = None
        running.log_writing = asyncio.create_task(
            self._write_log(running, lines, after=running.log_writing)
        )
        return running.log_writing

    async def _write_log(
        self,
        running: Running,
        lines: list[tuple[float, str, dict[str, Any]]],
        *,
        after: asyncio.Task[None] | None,
    ) -> None:
        if after is not None:
            await after  # a write that failed fails every write after it
        if not lines or not self._may_write(running) or running.store_failure is not None:
            return
        try:
            await asyncio.to_thread(
                execution_actions.append_log, self._ctx, running.execution.id, lines
            )
        except errors.StoreUnavailable as exc:
            # A full disk: stop the execution rather than lose its log unnoticed; its end is
            # written once the store takes writes again (_settle_owed_ends).
            running.store_failure = exc.message
            running.log_lines = []
            running.held_bytes = 0
            self._stop(running, StopReason.STORE)

    async def _end(self, execution_id: str, status: str, message: str | None) -> None:
        """End an execution; one the store cannot end now (a full disk) is ended later."""
        failure = await self._endings.write(execution_actions.Ending(execution_id, status, message))
        if isinstance(failure, errors.StoreUnavailable):
            log.warning(
                "execution %s cannot be ended now (%s): trying again every %g s",
                execution_id,
                failure.message,
                CLAIM_POLL_S,
            )
            self._owed_ends[execution_id] = (status, message)
        elif isinstance(failure, errors.TetherError):  # deleted meanwhile: nothing left to end
            log.warning("execution %s could not be ended: %s", execution_id, failure.message)
        elif failure is not None:  # the runner's edge: record and go on with the others
            log.error("ending execution %s failed", execution_id, exc_info=failure)

    async def _settle_owed_ends(self) -> None:
        """Write the ends the store refused before; stop at the first it still refuses."""
        for execution_id, (status, message) in list(self._owed_ends.items()):
            try:
                await asyncio.to_thread(
                    execution_actions.end, self._ctx, execution_id, status, message
                )
            except errors.StoreUnavailable:
                return  # refused still: the next round tries again
            except errors.NotFound:
                pass
            del self._owed_ends[execution_id]
            log.info("execution %s ended %s at last", execution_id, status)

    async def _outcome(
        self, running: Running, end: dict[str, Any] | None
    ) -> tuple[str, str | None]:
        reason = running.stop_reason
        limit = running.execution.max_runtime_s
        if reason == StopReason.TIMEOUT:
            return (
                Status.ENDED_ERROR,
                f"the execution exceeded its maximum runtime of {limit:g} s and was stopped",
            )
        if reason == StopReason.SHUTDOWN:
            return Status.ENDED_ERROR, RESTART_MESSAGE
        if reason == StopReason.STORE:
            return Status.ENDED_ERROR, STORE_FAILED_MESSAGE.format(detail=running.store_failure)
        if end is not None and end.get("status") in ENDED:
            if reason == StopReason.CANCEL and end["status"] != Status.ENDED_CANCELLED:
                return Status.ENDED_CANCELLED, "cancelled"
            return end["status"], end.get("message")
        if reason == StopReason.CANCEL:
            return (
                Status.ENDED_CANCELLED,
                f"cancelled; the script did not stop within {self._grace_s:g} s and was killed",
            )
        exit_ = await running.process.exit_status(timeout_s=2.0)
        return Status.ENDED_ERROR, describe_exit(exit_)


def _is_under_way(task: asyncio.Task[None] | None) -> TypeGuard[asyncio.Task[None]]:
    return task is not None and not task.done()


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; return the limit.

    Each running execution holds three descriptors in the server (its channel and the read
    ends of its fds 1 and 2): at the common soft limit of 1024, about 300 executions could
    run (thousands sleep at once: bench/README.md, "waiting"). Children get their own limit,
    --execution-open-files, in the sandbox.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NO_HARD_LIMIT_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)
    return soft


def describe_sandbox(sandbox: dict[str, Any]) -> str:
    """Words for how children are confined, for the log at start."""
    if sandbox.get("sandbox") != "on":
        return "WITHOUT a sandbox (--sandbox off): every flow has the server's own powers"
    return f"in the sandbox, as {sandbox['identity']}"
