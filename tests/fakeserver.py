"""A fake OpenAI-compatible HTTP server for offline tests.

The real ``openai`` SDK is pointed at ``FakeOpenAIServer.url`` so that tests
exercise the genuine client stack (connection pooling, retries, timeouts,
error mapping) without ever touching the network.  Only the standard library
is used so the fake cannot drift with third-party versions.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Reply", "FakeOpenAIServer", "fault_mix"]

JSON = dict[str, Any]  # a decoded request body


@dataclass
class Reply:
    """One scripted answer to a ``POST /v1/chat/completions``."""

    content: str | None = None
    finish_reason: str = "stop"  # "stop" | "length" | "content_filter"
    refusal: str | None = None
    status: int = 200  # non-200 => OpenAI-style JSON error body
    error_message: str = "fake error"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # send headers + partial body, then kill the socket
    raw_body: str | None = None  # sent verbatim instead of a generated body
    prompt_tokens: int = 10
    completion_tokens: int = 5
    when: Callable[[JSON], bool] | None = None  # matcher on the request JSON


DefaultReply = Reply | Callable[[JSON], Reply] | None

# Error "type"/"code" per status, mirroring what api.openai.com sends, so code
# that inspects error bodies sees realistic values.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("not_found_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Server(ThreadingHTTPServer):
    # The SDK pools connections and tests fire bursts from many threads; the
    # default backlog of 5 would make the kernel refuse/reset connections.
    request_queue_size = 128
    daemon_threads = True  # slow handlers must never keep the process alive
    block_on_close = False  # server_close() must not join in-flight handlers
    allow_reuse_address = True

    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, drops, stop()) are expected; only
        # report genuine bugs in the fake itself.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so the SDK's keep-alive pool is exercised for real; every
    # response therefore carries an exact Content-Length.
    protocol_version = "HTTP/1.1"
    # Idle pooled connections otherwise park a thread forever.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs
    # add ~40 ms to every kept-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep pytest output clean

    # -- plumbing --------------------------------------------------------

    def _read_body(self) -> bytes:
        # The body must always be drained, even for requests we reject,
        # otherwise leftovers corrupt the next request on a kept-alive socket.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Skip trailers up to the terminating blank line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            if name.lower() not in ("content-length", "content-type"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.server.fake._stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _not_found(self) -> None:
        self._send_json(404, _error_body(404, f"no route for {self.command} {self.path}"))

    def _drop(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        # Promise more bytes than we send, then hard-close: the client sees a
        # truncated response, exactly like a proxy/server dying mid-reply.
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            if name.lower() not in ("content-length", "content-type"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) + 1024))
        self.end_headers()
        self.wfile.write(body[: max(1, len(body) // 2)])
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- routes ----------------------------------------------------------

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == "/v1/models":
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}],
                },
            )
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        if urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
            self._not_found()
            return
        fake = self.server.fake
        try:
            request = json.loads(raw or b"null")
            if not isinstance(request, dict):
                raise ValueError("request body is not a JSON object")
        except ValueError as exc:
            # Still record it so request counts stay truthful.
            fake._record({"_raw": raw.decode("utf-8", "replace")}, self.headers)
            self._send_json(400, _error_body(400, f"invalid JSON body: {exc}"))
            return
        number = fake._record(request, self.headers)
        try:
            reply = fake._pick(request)
        except Exception as exc:  # a buggy `when`/default should fail loudly, not hang
            reply = Reply(status=500, error_message=f"fake server error: {exc!r}")
        if reply is None:
            reply = Reply(status=500, error_message="no reply queued")

        wait = fake.latency + reply.delay
        # Interruptible sleep: stop() wakes in-flight slow requests at once.
        if wait > 0 and fake._stopping.wait(wait):
            self.close_connection = True
            return

        if reply.raw_body is not None:
            body = reply.raw_body.encode()
        elif reply.status != 200:
            body = json.dumps(_error_body(reply.status, reply.error_message)).encode()
        else:
            body = json.dumps(_completion(request, reply, number)).encode()

        if reply.drop:
            self._drop(reply.status, body, reply.headers)
        else:
            self._send(reply.status, body, reply.headers)

    def _any_other(self) -> None:
        self._read_body()
        self._not_found()

    do_PUT = do_DELETE = do_PATCH = _any_other


def _completion(request: JSON, reply: Reply, number: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content, "refusal": reply.refusal},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


class FakeOpenAIServer:
    """Scripted OpenAI-compatible server on 127.0.0.1 (OS-chosen port).

    ``requests`` holds every chat-completion request body in arrival order and
    ``headers_seen`` the matching request headers (keys lower-cased).
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: DefaultReply = None,
        latency: float = 0.0,
    ) -> None:
        self.default: DefaultReply = default
        self.latency = latency
        self.requests: list[JSON] = []
        self.headers_seen: list[dict[str, str]] = []
        self.connections = 0  # TCP connections accepted; lets tests check keep-alive
        self._queue: list[Reply] = list(replies)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- public API ------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def pending(self) -> int:
        """Queued replies not yet consumed (to assert a script ran fully)."""
        with self._lock:
            return len(self._queue)

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        # Short poll interval so shutdown() returns promptly.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping on delay/latency
        httpd.shutdown()
        httpd.server_close()
        # Kill kept-alive and in-flight connections so their handler threads
        # exit now rather than lingering until the client hangs up.
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler --------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._open.add(conn)
                self.connections += 1
            else:
                self._open.discard(conn)

    def _record(self, request: JSON, headers: Any) -> int:
        with self._lock:
            self.requests.append(request)
            self.headers_seen.append({k.lower(): v for k, v in headers.items()})
            return len(self.requests)

    def _pick(self, request: JSON) -> Reply | None:
        # Matching and popping happen under one lock so two concurrent
        # requests can never consume the same queued reply.
        with self._lock:
            for i, reply in enumerate(self._queue):
                if reply.when is None or reply.when(request):
                    return self._queue.pop(i)
        default = self.default
        # Called outside the lock: a default may be slow or re-enter queue().
        return default(request) if callable(default) else default


def fault_mix(good: Callable[[JSON], Reply], rate: float, seed: int = 0) -> Callable[[JSON], Reply]:
    """Return a ``default`` callable that injects a random fault with
    probability ``rate`` and otherwise answers with ``good(request)``.

    Seeded so a flaky-looking failure can be replayed; the RNG is guarded by a
    lock because the server calls defaults from many threads.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be within [0, 1]")
    rng = random.Random(seed)
    lock = threading.Lock()
    kinds = ("429", "500", "502", "503", "drop", "bad_json", "truncated")

    def answer(request: JSON) -> Reply:
        with lock:
            kind = rng.choice(kinds) if rng.random() < rate else None
        if kind is None:
            return good(request)
        if kind == "429":
            # "Retry-After: 0" is what the brief asks for; the openai SDK treats
            # 0 as "unspecified" and backs off ~0.5 s, so retry-after-ms keeps
            # SDK-level retries fast while custom retry code still sees 0.
            return Reply(status=429, error_message="rate limited", headers={"Retry-After": "0", "retry-after-ms": "1"})
        if kind in ("500", "502", "503"):
            return Reply(status=int(kind), error_message=f"injected {kind}")
        if kind == "drop":
            return Reply(drop=True)
        if kind == "bad_json":
            return Reply(content="{not json")
        # Truncated output: half of what the model would have said.
        ok = good(request)
        text = ok.content or ""
        return replace(ok, when=None, content=text[: len(text) // 2], finish_reason="length")

    return answer
