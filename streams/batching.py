"""``Stream.noack_take`` of faust-streaming with a race in it fixed.

Reading faust's code: an event that waited while a batch was consumed resets ``buffer_consuming``
after waking, which can clobber the future of a newer batch; the event is then appended to a buffer
already snapshotted and cleared with it (never processed, never acked). The body is faust's with the
wait loop in ``add_to_buffer`` corrected; call it as ``noack_take(stream, max_, within)``. This did
NOT cure the stuck committed offset sometimes seen after a restart in the kill -9 test (cause still
unknown at the time of writing).
"""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import asyncio
from asyncio import CancelledError
from typing import Any, AsyncGenerator, List, Optional, Sequence, cast

from faust.types import EventT
from faust.types.topics import ChannelT
from mode import Seconds, want_seconds
from mode.utils.aiter import aiter
from mode.utils.futures import notify

T = Any
T_co = Any


async def noack_take(
    self: Any, max_: int, within: Seconds
) -> AsyncGenerator[Sequence[T_co], None]:
    """
     Buffer n values at a time and yield a list of buffered values.
    :param max_: Max number of messages to receive. When more than this
         number of messages are received within the specified number of
         seconds then we flush the buffer immediately.
    :param within: Timeout for when we give up waiting for another value,
         and process the values we have.
         Warning: If there's no timeout (i.e. `timeout=None`),
         the agent is likely to stall and block buffered events for an
         unreasonable length of time(!).
    """
    buffer: List[T_co] = []
    events: List[EventT] = []
    buffer_add = buffer.append
    event_add = events.append
    buffer_size = buffer.__len__
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    timeout = want_seconds(within) if within else None
    stream_enable_acks: bool = self.enable_acks

    buffer_consuming: Optional[asyncio.Future] = None

    channel_it = aiter(self.channel)

    # We add this processor to populate the buffer, and the stream
    # is passively consumed in the background (enable_passive below).
    async def add_to_buffer(value: T) -> T:
        try:
            # buffer_consuming is set when consuming buffer
            # after timeout.
            nonlocal buffer_consuming
            # Fixed: faust resets ``buffer_consuming`` to None after waking, which can clobber the
            # future of a *newer* batch; the event is then added to a buffer being consumed and
            # cleared with it (lost, never acked, commits stuck). Wait until no batch is consumed.
            while buffer_consuming is not None:
                waiting_for = buffer_consuming
                await waiting_for
                if buffer_consuming is waiting_for:
                    buffer_consuming = None

            # We want to save events instead of values to allow for manual ack
            event = self.current_event
            buffer_add(cast(T_co, event))
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")

            event_add(event)
            if buffer_size() >= max_:
                # signal that the buffer is full and should be emptied.
                buffer_full.set()
                # strict wait for buffer to be consumed after buffer
                # full.
                # If max is 1000, we are not allowed to return 1001
                # values.
                buffer_consumed.clear()
                # mode types the waitable as ``mode.utils.locks.Event``,
                # but Service.wait_first accepts anything with an
                # awaitable ``.wait()`` -- asyncio.Event included.
                await self.wait(buffer_consumed)  # type: ignore[arg-type]
        except CancelledError:  # pragma: no cover
            raise
        except Exception as exc:
            self.log.exception("Error adding to take buffer: %r", exc)
            await self.crash(exc)
        return value

    # Disable acks to ensure this method acks manually
    # events only after they are consumed by the user
    self.enable_acks = False

    self.add_processor(add_to_buffer)
    self._enable_passive(cast(ChannelT, channel_it))
    try:
        while not self.should_stop:
            # wait until buffer full, or timeout.
            # Same mode annotation gap as in add_to_buffer above, plus
            # ``timeout: Seconds`` omitting the ``None`` that is mode's
            # own default and its "wait forever" value.
            await self.wait_for_stopped(
                buffer_full, timeout=timeout  # type: ignore[arg-type]
            )
            if buffer:
                # make sure background thread does not add new items to
                # buffer while we read.
                buffer_consuming = self.loop.create_future()
                try:
                    yield list(buffer)
                finally:
                    buffer.clear()
                    # code change: We want to manually ack
                    # for event in events:
                    #     await self.ack(event)
                    events.clear()
                    # allow writing to buffer again
                    notify(buffer_consuming)
                    buffer_full.clear()
                    buffer_consumed.set()
            else:  # pragma: no cover
                pass
        else:  # pragma: no cover
            pass

    finally:
        # Restore last behaviour of "enable_acks"
        self.enable_acks = stream_enable_acks
        self._processors.remove(add_to_buffer)
