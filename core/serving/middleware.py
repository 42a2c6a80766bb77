"""Pure ASGI middleware: a request id for every request and response, the request body cap, and one
access-log line per request. (Pure ASGI rather than `BaseHTTPMiddleware`: no extra task per request.)"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.serving.logs import REQUEST_ID

log = logging.getLogger("core.serving.access")
REQUEST_ID_HEADER: Final = "x-request-id"
_VALID_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class BodyTooLarge(Exception):
    pass


class RequestContext:
    """Sets `scope["state"]["request_id"]` (the client's `X-Request-ID` when sane, else a new one),
    echoes it in the response, refuses bodies over `max_body` with 413 — by Content-Length up front,
    or while streaming when there is none — and logs method, path, status and duration."""

    def __init__(self, app: ASGIApp, *, max_body: int, on_error: Callable[[str], None]) -> None:
        self.app = app
        self.max_body = max_body
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            length = _content_length(scope)
            if length is not None and length > self.max_body:
                await self._too_large(send_with_id, request_id, length)
                return
            received = 0

            async def counting_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body:
                        raise BodyTooLarge
                return message

            try:
                await self.app(scope, counting_receive, send_with_id)
            except BodyTooLarge:
                if started:
                    raise
                await self._too_large(send_with_id, request_id, received)
        finally:
            log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - start) * 1000,
            )
            REQUEST_ID.reset(token)

    async def _too_large(self, send: Send, request_id: str, size: int) -> None:
        self.on_error("body_too_large")
        body = json.dumps(
            {
                "detail": f"Request body of {size:,}+ bytes is over the limit of {self.max_body:,} bytes "
                "(RAKUTEN_API_MAX_BODY_BYTES). Send fewer products per request or a smaller image.",
                "error": "body_too_large",
                "request_id": request_id,
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
            break
    # 32 random hex digits, as uuid4().hex gives, without its system call: that releases the GIL, and
    # under load taking it back from the scoring thread can cost up to the 5 ms switch interval
    return f"{random.getrandbits(128):032x}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
