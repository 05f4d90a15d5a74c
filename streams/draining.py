"""faust-streaming's ``Consumer._drain_messages`` without four asyncio tasks per record.

faust hands every fetched record to the stream with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: a task for the delivery,
one for the suspend flag and two for the stopped/crashed flags, then ``asyncio.wait`` and the
cancellations, per record. That was the largest single cost of the worker (profiled with py-spy
under the throughput benchmark). Delivery almost never waits: it puts the event into the stream's
buffer, which waits only when that buffer is full. So here delivery starts at once (the coroutine
runs to completion or to its first real wait, as Python 3.12's eager tasks do), and only a delivery
that does wait goes through ``wait_first`` as before, so a rebalance (suspend flag) or a stop still
interrupts it; after such a wait the loop pauses 20 ms, so a stream that is behind takes records in
stretches rather than one freed slot at a time (each a round of tasks on both sides). When the
suspend flag is already set, or the consumer is stopping, the record takes faust's path unchanged. Everything else (read offsets, gaps, ``commit_every``) is faust's code as is.

Topics with a :class:`Handoff` (``app.handoffs``, by topic name: the ``scans`` intake) skip faust's
record path altogether: each fetched partition's list of aiokafka records is put on the hand-off as
it is (no faust ``Message``, ``Event``, stream, processors, acks or sensors per record) and the agent
takes them in batches. That is safe only for a topic consumed without faust acknowledgements by an
agent that keeps its own cursors (streams/offsets.py): a record delivered twice, late, after a
rebalance, or not at all (dropped from a hand-off cleared at a rebalance, or while the flow is
suspended) is then skipped or sought back to, never processed out of order. The hand-off is bounded
(``capacity`` records): when it is full the fetch loop waits for the agent, interruptibly (a
rebalance or a stop ends the wait), so a slow ClickHouse holds records in Kafka, not in memory.
"""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Generator, Iterator
from typing import Any, AsyncIterator, Optional, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import ServiceT
from mode import Service


BACKOFF_SECONDS = 0.02


class Handoff:
    """Fetched records of one topic, in per-partition lists, for one agent that takes them in batches.

    Filled by :meth:`Consumer._drain_messages` (the fetch loop), emptied by :meth:`take`; bounded by
    ``capacity`` records (the fetch loop waits while it is full). Everything runs on the event loop.
    """

    def __init__(self, topic: str, capacity: int) -> None:
        self.topic = topic
        self.capacity = capacity
        self._chunks: deque[tuple[Any, list[Any]]] = deque()
        self._count = 0
        self._want = 1  # records the waiting taker wants before the time is up
        self._arrived: Optional[asyncio.Event] = None  # made on the running loop at first use
        self._space: Optional[asyncio.Event] = None

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        if self._arrived is None or self._space is None:
            self._arrived, self._space = asyncio.Event(), asyncio.Event()
            self._space.set()
        return self._arrived, self._space

    def __len__(self) -> int:
        return self._count

    def full(self) -> bool:
        return self._count >= self.capacity

    def put(self, tp: Any, records: list[Any]) -> None:
        arrived, space = self._events()
        self._chunks.append((tp, records))
        self._count += len(records)
        if self._count >= self._want:
            arrived.set()
        if self._count >= self.capacity:
            space.clear()

    async def wait_space(self) -> None:
        await self._events()[1].wait()

    def clear(self) -> None:
        """Drop what is held (at a rebalance: the agent's cursors read it again from the committed offsets)."""
        self._chunks.clear()
        self._count = 0
        if self._space is not None:
            self._space.set()

    async def take(self, max_: int, within: float) -> list[tuple[Any, list[Any]]]:
        """Up to ``max_`` records, as (tp, records) in fetch order: as soon as ``max_`` arrived, else
        what arrived within ``within`` seconds (maybe nothing)."""
        arrived, space = self._events()
        if self._count < max_:
            self._want = max_
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), within)
            except asyncio.TimeoutError:
                pass
            finally:
                self._want = 1
        taken: list[tuple[Any, list[Any]]] = []
        n = 0
        chunks = self._chunks
        while chunks and n < max_:
            tp, records = chunks[0]
            room = max_ - n
            if len(records) <= room:
                chunks.popleft()
            else:
                chunks[0] = (tp, records[room:])
                records = records[:room]
            taken.append((tp, records))
            n += len(records)
        self._count -= n
        if self._count < self.capacity:
            space.set()
        return taken


class Started:
    """Awaitable that carries on a coroutine already run to its first suspension."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class Consumer(AIOKafkaConsumer):
    """faust's aiokafka consumer; records delivered eagerly, hand-off topics in lists (module notes)."""

    def _messages(self, records: dict, active_partitions: Any, generation_id: int) -> Iterator[Any]:
        """faust's ``getmany`` over already fetched records (those of topics without a hand-off)."""
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

    async def _seek(self, partition: Any, offset: int) -> None:
        """Seek in the consumer's thread, as faust's other consumer calls do.

        faust calls aiokafka's ``seek`` straight from the event loop's thread; it drops the partition's
        fetched records, and when the consumer thread is inside ``fetched_records`` at that moment
        the fetch fails with a ``KeyError`` and the worker crashes (seen once in the kill -9 test
        with the hand-off). The cursors seek at every new assignment and after gaps, so go through
        the thread.
        """
        thread = self._thread
        await thread.call_thread(thread.seek, partition, offset)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        crashed = cast(Service, self)._crashed.is_set
        suspended = self.suspend_flow.is_set
        handoffs: dict[str, Handoff] = getattr(self.app, "handoffs", {})

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                # Changed from faust: the fetch of ``getmany`` here, so that hand-off topics take
                # their records per partition list.
                records, active_partitions = await self._wait_next_records(1.0)
                generation_id = self.app.consumer_generation_id

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not records or self.should_stop:
                    unset_flag(flag_consumer_fetching)
                    continue
                if not self.flow_active:
                    self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
                    try:
                        await self.perform_seek()
                    except Exception as ex:
                        self.log.warning(f"exception performing seek when flow not active {ex}")
                    unset_flag(flag_consumer_fetching)
                    continue
                others = {}
                for tp, tp_records in records.items():
                    handoff = handoffs.get(tp.topic)
                    if handoff is None:
                        others[tp] = tp_records
                        continue
                    if not tp_records or not (active_partitions is None or tp in active_partitions
                                              or tp in self._buffered_partitions):
                        continue
                    if suspended() or not self.flow_active or self.app.consumer_generation_id != generation_id:
                        continue  # a rebalance began: the agent's cursors read these again
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    handoff.put(tp, tp_records)
                    set_read_offset(tp, tp_records[-1].offset)
                    if handoff.full() and not (consumer_should_stop() or crashed()):
                        await self.wait_first(handoff.wait_space(), self.suspend_flow.wait())
                if others and not self.should_stop:
                    for tp, message in self._messages(others, active_partitions, generation_id):
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            # Changed from faust: eager delivery (module notes).
                            if suspended() or consumer_should_stop() or crashed():
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            else:
                                delivery = callback(message)
                                try:
                                    yielded = delivery.send(None)
                                except StopIteration:
                                    pass  # delivered without waiting: the usual case
                                else:
                                    await self.wait_first(Started(delivery, yielded), self.suspend_flow.wait())
                                    # The stream is behind (its buffer was full). Let it take a
                                    # stretch of records before delivering more, instead of
                                    # waking both sides for every freed slot.
                                    await self.sleep(BACKOFF_SECONDS)
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)
