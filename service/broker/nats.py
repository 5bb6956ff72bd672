"""The NATS JetStream broker: one stream holds the log all instances share.

Every topic `a.b` is the subject `herald.ev.a.b` of one stream. The stream
sequence is the cursor's position; the stream's creation time is its epoch.
Each instance reads the live feed through one ordered push consumer and
history through short-lived pull consumers filtered by subject.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ..cursor import make_epoch
from ..errors import BrokerUnavailable, PublishUnconfirmed
from ..event import Event
from ..topics import minimal_patterns, overlap, pattern_matches
from .base import Bounds, Draft, LiveHandler, Published, Retention

log = logging.getLogger("herald.broker")

PREFIX = "herald.ev."
_READ_PAGE = 256
_MAX_FULL_SUBJECTS = 32
_TIMEOUT = 5.0


def subject_prefix(stream: str) -> str:
    """The subjects of `stream`: `herald.ev.` for the default stream, else
    `herald.ev-<stream>.`, so that deployments with different streams can share
    one NATS (JetStream refuses two streams with overlapping subjects)."""
    return PREFIX if stream == "HERALD" else f"herald.ev-{stream}."


def redact(url: str) -> str:
    """The URL (or comma-separated URLs) with passwords hidden, for a log line."""
    if "," in url:
        return ",".join(redact(u) for u in url.split(","))
    if "@" not in url:
        return url
    scheme, _, rest = url.rpartition("://")
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    # "user:password@" keeps the user; a bare "token@" hides it all.
    hidden = f"{user}:***" if colon else "***"
    return f"{scheme}://{hidden}@{host}" if scheme else f"{hidden}@{host}"


class NatsBroker:
    """A broker over one JetStream stream; see `Broker` for the guarantees."""

    def __init__(
        self,
        url: str,
        stream: str = "HERALD",
        max_age: float = 3600.0,
        max_per_topic: int = 1000,
        max_bytes: int = 256 * 1024 * 1024,
        dedup_window: float = 120.0,
        max_event_bytes: int = 1024 * 1024,
    ) -> None:
        self.epoch = ""
        self.retention = Retention(max_age, max_per_topic, max_bytes)
        self._url = url
        self._stream = stream
        self._prefix = subject_prefix(stream)
        self._config = api.StreamConfig(
            name=stream,
            subjects=[self._prefix + ">"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            max_age=max_age,
            max_msgs_per_subject=max_per_topic,
            max_bytes=max_bytes,
            duplicate_window=dedup_window,
            max_msg_size=max_event_bytes,
            allow_direct=True,
        )
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._live: Any = None
        self._closing = False

    @property
    def ready(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BrokerUnavailable("broker not started")
        return self._js

    async def start(self) -> None:
        try:
            self._nc = await nats.connect(
                [u.strip() for u in self._url.split(",") if u.strip()],
                name="herald",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect,
            )
        except (OSError, nats.errors.Error) as exc:
            raise BrokerUnavailable(
                f"cannot connect to {redact(self._url)}: {exc}"
            ) from exc

        self._js = self._nc.jetstream(timeout=_TIMEOUT)
        info = await self._ensure_stream()
        created = info.created.timestamp() if info.created else 0.0
        self.epoch = make_epoch(int(created * 1e9))

    async def _ensure_stream(self) -> api.StreamInfo:
        jsm = self.js._jsm
        try:
            info = await jsm.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            try:
                return await jsm.add_stream(self._config)
            except nats.js.errors.BadRequestError:
                # Another worker created it first; use theirs.
                return await jsm.stream_info(self._stream)
        if _limits(info.config) != _limits(self._config):
            info = await jsm.update_stream(self._config)
        return info

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except (nats.errors.Error, OSError, RuntimeError) as exc:
                log.warning("nats drain on close failed", extra={"err": str(exc)})
                await self._nc.close()

    def _check_ready(self) -> None:
        # Fail at once while disconnected, instead of after a request timeout.
        if not self.ready:
            raise BrokerUnavailable("not connected to NATS")

    async def publish(self, drafts: Sequence[Draft]) -> list[Published]:
        self._check_ready()

        # Publishes from one connection are stored in the order sent, so the
        # batch is pipelined and the acks awaited together.
        futures = []
        try:
            for d in drafts:
                headers = {"Nats-Msg-Id": d.msg_id} if d.msg_id else None
                futures.append(
                    await self.js.publish_async(
                        self._prefix + d.topic, d.body, headers=headers
                    )
                )
            async with asyncio.timeout(_TIMEOUT):
                acks = [await future for future in futures]
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            if futures:
                # Sent, so perhaps stored: "not taken" would be a lie.
                raise PublishUnconfirmed(
                    f"no acknowledgement from NATS within {_TIMEOUT:g} s ({reason}): "
                    "the event may be stored; retry with the same Idempotency-Key "
                    "to store it once"
                ) from exc
            raise BrokerUnavailable(f"publish failed: {reason}") from exc

        out = []
        for draft, ack in zip(drafts, acks, strict=True):
            if ack.duplicate:
                out.append(Published(await self._fetch(ack.seq, draft), True))
            else:
                out.append(
                    Published(
                        Event(ack.seq, draft.topic, draft.body, self.epoch), False
                    )
                )
        return out

    async def _fetch(self, seq: int, draft: Draft) -> Event:
        """The stored event at `seq`, for answering a deduplicated publish."""
        try:
            msg = await self.js._jsm.get_msg(self._stream, seq=seq, direct=True)
        except (nats.errors.Error, TimeoutError):
            return Event(seq, draft.topic, draft.body, self.epoch)
        return Event(
            seq, (msg.subject or "")[len(self._prefix) :], msg.data or b"", self.epoch
        )

    async def bounds(self) -> Bounds:
        self._check_ready()
        try:
            info = await self.js._jsm.stream_info(self._stream)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerUnavailable(f"stream info failed: {exc}") from exc
        state = info.state
        if state.messages == 0:
            return Bounds(state.last_seq + 1, state.last_seq)
        return Bounds(state.first_seq, state.last_seq)

    async def read(
        self, patterns: Sequence[str], after: int, until: int, limit: int
    ) -> tuple[list[Event], int]:
        self._check_ready()
        filters = _filters(self._prefix, patterns)
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            ack_policy=api.AckPolicy.NONE,
            filter_subjects=filters,
            mem_storage=True,
            inactive_threshold=30.0,
            num_replicas=1,
        )
        try:
            info = await self.js._jsm.add_consumer(self._stream, config)
            pending = info.num_pending or 0
            want = min(pending, limit, _READ_PAGE)
            if want == 0:
                await self._drop_consumer(info.name)
                return [], until
            sub = await self.js.pull_subscribe_bind(
                consumer=info.name, stream=self._stream
            )
            try:
                msgs = await sub.fetch(want, timeout=_TIMEOUT)
            finally:
                await sub.unsubscribe()
                await self._drop_consumer(info.name)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc

        out: list[Event] = []
        for msg in msgs:
            event = self._event(msg)
            if event.seq > until:
                return out, until
            if any(pattern_matches(p, event.topic) for p in patterns):
                out.append(event)
        if not msgs or pending <= len(msgs):
            return out, until
        return out, self._event(msgs[-1]).seq

    async def dropped(self, patterns: Sequence[str], after: int) -> bool:
        # JetStream keeps no record of what the per-subject limit removed, so
        # a subject at its limit whose oldest retained event is past `after`
        # counts as having dropped something.
        limit = self._config.max_msgs_per_subject
        jsm = self.js._jsm
        try:
            for pattern in minimal_patterns(patterns):
                info = await jsm.stream_info(
                    self._stream, subjects_filter=self._prefix + pattern
                )
                full = [s for s, n in (info.state.subjects or {}).items() if n >= limit]
                if len(full) > _MAX_FULL_SUBJECTS:
                    return True
                for subject in full:
                    first = await jsm.get_msg(
                        self._stream, seq=1, subject=subject, next=True, direct=True
                    )
                    if (first.seq or 0) > after + 1:
                        return True
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerUnavailable(f"stream info failed: {exc}") from exc
        return False

    async def _drop_consumer(self, name: str) -> None:
        try:
            await self.js._jsm.delete_consumer(self._stream, name)
        except (nats.errors.Error, TimeoutError):
            log.debug(
                "consumer cleanup failed, it expires by itself",
                extra={"consumer": name},
            )

    def _event(self, msg: Msg) -> Event:
        # The reply subject is $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...
        # or, in the newer form, $JS.ACK.<domain>.<hash>.<stream>.<consumer>...
        tokens = (msg.reply or "").split(".")
        seq = int(tokens[5] if len(tokens) == 9 else tokens[7])
        return Event(seq, msg.subject[len(self._prefix) :], msg.data, self.epoch)

    async def start_live(self, after: int, handler: LiveHandler) -> None:
        async def deliver(msg: Msg) -> None:
            handler(self._event(msg))

        self._live = await self.js.subscribe(
            self._prefix + ">",
            cb=deliver,
            stream=self._stream,
            ordered_consumer=True,
            idle_heartbeat=1.0,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            config=api.ConsumerConfig(opt_start_seq=after + 1),
        )

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error", extra={"err": str(exc), "url": redact(self._url)})

    async def _on_disconnect(self) -> None:
        if self._closing:
            return
        log.error(
            "nats disconnected, publishes answer 503", extra={"url": redact(self._url)}
        )

    async def _on_reconnect(self) -> None:
        log.warning("nats reconnected", extra={"url": redact(self._url)})

        # A restarted server has lost the live feed's in-memory consumer; left
        # alone, nats-py notices only after two missed heartbeats. Recreate it
        # now from the last sequence handed over (nats-py keeps no public
        # handle on this, hence the private attributes).
        jsi = getattr(getattr(self._live, "_sub", None), "_jsi", None)
        if jsi is not None:
            try:
                await jsi.reset_ordered_consumer(jsi._sseq + 1)
            except (nats.errors.Error, OSError) as exc:
                log.warning("live feed reset failed", extra={"err": str(exc)})


def _limits(config: api.StreamConfig) -> tuple[Any, ...]:
    return (
        config.max_age,
        config.max_msgs_per_subject,
        config.max_bytes,
        config.duplicate_window,
        config.max_msg_size,
    )


def _filters(prefix: str, patterns: Sequence[str]) -> list[str]:
    """Subject filters for a history read; JetStream refuses overlapping ones,
    so overlapping patterns read everything and the hub filters."""
    kept = minimal_patterns(patterns)
    for i, a in enumerate(kept):
        if any(overlap(a, b) for b in kept[i + 1 :]):
            return [prefix + ">"]
    return [prefix + p for p in kept]
