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
"""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, AsyncIterator, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import ServiceT
from mode import Service


BACKOFF_SECONDS = 0.02


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
    """faust's aiokafka consumer; records delivered eagerly (see the module notes)."""

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        crashed = cast(Service, self)._crashed.is_set
        suspended = self.suspend_flow.is_set

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
                ait = cast(AsyncIterator, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
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
