"""Locust subscribers over SSE, WebSocket and long polling.

Each behaves like a real client: it keeps one stream open (or polls back
to back), and when the stream ends, because the server drained, found it
too slow, or the session ran out, it reconnects and resumes from the last
cursor it saw. Deliveries are checked and reported by a `Tracker`.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent
import msgspec
import options
import requests
import websocket
from locust import FastHttpUser, HttpUser, User, between, constant, tag, task
from tracker import Tracker
from wire import SseReader, decode_event, decode_frame, decode_poll

# Closes after which a client just resumes: normal, going away (drain),
# try again later (too slow, or instance full).
_RESUMABLE = {1000, 1001, 1013}


class SseSubscriber(HttpUser):
    """One `GET /v1/sse` stream, resumed with Last-Event-ID."""

    weight = 3
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.tracker = Tracker(self.environment, "sse")
        self.pattern = options.subscription_pattern(self.environment.parsed_options)

    @tag("sse", "subscribe")
    @task
    def listen(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.tracker.cursor:
            headers["Last-Event-ID"] = self.tracker.cursor
        response = self.client.get(
            "/v1/sse",
            params={"topic": self.pattern},
            headers=headers,
            stream=True,
            timeout=(5, 45),
            name="/v1/sse",
        )
        if response.status_code != 200:
            return  # Locust has counted the failed request
        try:
            seconds = options.session_seconds(self.environment.parsed_options)
            with gevent.Timeout(seconds, False):
                self._read(response)
        except requests.RequestException as exc:
            _stream_failure(self.environment, "GET", "/v1/sse stream", exc)
        finally:
            response.close()

    def _read(self, response: requests.Response) -> None:
        reader = SseReader()
        for chunk in response.iter_content(chunk_size=None):
            for kind, _, data in reader.feed(chunk):
                if kind == "herald.gap":
                    resumed = msgspec.json.decode(data).get("resumed")
                    self.tracker.gap(resumed)
                else:
                    self.tracker.event(decode_event(data), len(data))


class WsSubscriber(User):
    """One `GET /v1/ws` connection subscribed from the query, resumed by cursor."""

    weight = 3
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.tracker = Tracker(self.environment, "ws")
        self.pattern = options.subscription_pattern(self.environment.parsed_options)
        parts = urlsplit(self.host or "http://127.0.0.1:8000")
        scheme = "wss" if parts.scheme == "https" else "ws"
        self.base = f"{scheme}://{parts.netloc}"

    @tag("ws", "subscribe")
    @task
    def listen(self) -> None:
        query = {"topic": self.pattern}
        if self.tracker.cursor:
            query["cursor"] = self.tracker.cursor
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(
                f"{self.base}/v1/ws?{urlencode(query)}",
                timeout=45,
                skip_utf8_validation=True,
            )
        except (websocket.WebSocketException, OSError) as exc:
            _stream_failure(self.environment, "WS", "/v1/ws", exc, started)
            return
        self.environment.events.request.fire(
            request_type="WS",
            name="/v1/ws",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None,
            context={},
        )
        try:
            seconds = options.session_seconds(self.environment.parsed_options)
            with gevent.Timeout(seconds, False):
                self._read(ws)
        except (websocket.WebSocketException, OSError) as exc:
            _stream_failure(self.environment, "WS", "/v1/ws stream", exc)
        finally:
            _hang_up(ws)

    def _read(self, ws: websocket.WebSocket) -> None:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                if code not in _RESUMABLE:
                    reason = data[2:].decode(errors="replace")
                    raise websocket.WebSocketException(f"closed {code} {reason}")
                return
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            frame = decode_frame(data)
            if frame.op == "event":
                self.tracker.event(frame, len(data))
            elif frame.op == "gap":
                self.tracker.gap(msgspec.json.decode(data).get("resumed"))


class PollSubscriber(FastHttpUser):
    """Back-to-back `GET /v1/poll`, each with the cursor the last one returned."""

    weight = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        self.tracker = Tracker(self.environment, "poll")
        self.pattern = options.subscription_pattern(self.environment.parsed_options)

    @tag("poll", "subscribe")
    @task
    def poll(self) -> None:
        query = {
            "topic": self.pattern,
            "timeout": self.environment.parsed_options.herald_poll_timeout,
            "limit": 100,
        }
        if self.tracker.cursor:
            query["cursor"] = self.tracker.cursor
        with self.client.get(
            f"/v1/poll?{urlencode(query)}", name="/v1/poll", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                gevent.sleep(1)  # do not spin on an unavailable server
                return
            body = response.content or b""
            answer = decode_poll(body)
        if answer.gap:
            self.tracker.gap(answer.cursor)
        size = len(body) // max(1, len(answer.events))
        for event in answer.events:
            self.tracker.event(event, size)
        self.tracker.cursor = answer.cursor


def _hang_up(ws: websocket.WebSocket) -> None:
    """Send a close frame and drop the connection, without waiting for the reply.

    websocket-client's own close() waits for the server's close frame under a
    bare `except:`, which swallows the GreenletExit Locust stops users with:
    the user then runs on and the test never ends.
    """
    with contextlib.suppress(websocket.WebSocketException, OSError):
        if ws.connected:
            ws.send_close()
    ws.shutdown()


def _stream_failure(
    environment: Any,
    method: str,
    name: str,
    exc: BaseException,
    started: float | None = None,
) -> None:
    elapsed = 0.0 if started is None else (time.perf_counter() - started) * 1000
    environment.events.request.fire(
        request_type=method,
        name=name,
        response_time=elapsed,
        response_length=0,
        exception=exc,
        context={},
    )
