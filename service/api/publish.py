"""Publishing: one event to a topic, or a batch to several, over REST."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from ..broker import Draft, Published
from ..errors import InvalidInput, TooLarge
from ..protocol import BatchItem, PublishBody, decode, event_body
from ..runtime import Runtime

_KEY = re.compile(r"[\x21-\x7e]{1,200}")

IdempotencyKey = Annotated[
    str | None,
    Parameter(
        header="Idempotency-Key",
        required=False,
        description="Retries within the dedup window return the first event.",
    ),
]


# Message ids for NATS dedup: "t:<topic>:<key>" for a single publish,
# "b:<index>:<key>" for a batch's events. Topics hold no ":" and indexes are
# digits, so no key of one kind can collide with the other (keys may hold
# any visible character).
def _key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise InvalidInput(
            "Idempotency-Key", "must be 1 to 200 visible ASCII characters"
        )
    return value


def _check_replay(published: Published, draft: Draft) -> None:
    """Refuse a retry whose key was first used for another event.

    A deduplicated publish answers with the first event; if the retry asks
    for a different one, answering 201 would hide that it was not stored.
    """
    if published.duplicate and _without_time(published.event.body) != _without_time(
        draft.body
    ):
        raise InvalidInput(
            "Idempotency-Key", "already used for a different event (type or data)", 422
        )


def _without_time(body: bytes) -> bytes:
    head, _, rest = body.partition(b',"time":"')
    return head + rest[rest.index(b'"') :]


def _answer(body: bytes, replayed: bool) -> Response[bytes]:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(
        body, status_code=201, media_type="application/json", headers=headers
    )


def routes(rt: Runtime) -> list[HTTPRouteHandler]:
    settings = rt.settings
    one_max = settings.max_event_bytes + 4096

    @post(
        "/v1/topics/{topic:str}/events",
        request_max_body_size=one_max,
        summary="Publish one event",
        status_code=201,
    )
    async def publish_one(
        request: Request[Any, Any, Any],
        topic: str,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        key = _key(idempotency_key)
        msg = decode(await request.body(), PublishBody)
        body = event_body(topic, msg.type, msg.data, settings.max_event_bytes)
        draft = Draft(topic, body, f"t:{topic}:{key}" if key else None)
        [published] = await rt.broker.publish([draft])
        _check_replay(published, draft)
        return _answer(published.event.summary(), published.duplicate)

    @post(
        "/v1/events",
        request_max_body_size=settings.max_batch_bytes,
        summary="Publish a batch of events in order",
        status_code=201,
    )
    async def publish_batch(
        request: Request[Any, Any, Any], idempotency_key: IdempotencyKey = None
    ) -> Response[bytes]:
        key = _key(idempotency_key)
        items = decode(await request.body(), list[BatchItem])
        if not items:
            raise InvalidInput("body", "the batch is empty")
        if len(items) > settings.max_batch:
            raise TooLarge(
                "body", f"{len(items)} events, over the {settings.max_batch} limit"
            )

        # Check every event before publishing any.
        drafts = [
            Draft(
                item.topic,
                event_body(
                    item.topic,
                    item.type,
                    item.data,
                    settings.max_event_bytes,
                    f"[{i}].",
                ),
                f"b:{i}:{key}" if key else None,
            )
            for i, item in enumerate(items)
        ]
        # A reused key is not checked against the first batch: items past
        # its length would be stored already, so a 422 would be untrue.
        published = await rt.broker.publish(drafts)
        return _answer(
            b"[" + b",".join([p.event.summary() for p in published]) + b"]",
            any(p.duplicate for p in published),
        )

    return [publish_one, publish_batch]
