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
import re
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
        path = urlsplit(self.path).path.rstrip("/")
        if path.startswith(("/v1/files/", "/v1/batches/")):
            self._batch_api(path, b"")
        elif path == "/v1/models":
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
        path = urlsplit(self.path).path.rstrip("/")
        if path in ("/v1/files", "/v1/batches"):
            self._batch_api(path, raw)
            return
        if path != "/v1/chat/completions":
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

    def _batch_api(self, path: str, raw: bytes) -> None:
        """The Files and Batches endpoints (see FakeOpenAIServer's docstring)."""
        fake = self.server.fake
        with fake._lock:
            fake.batch_api_calls.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
        try:
            status, body, content_type = fake._batch_route(
                self.command, path, raw, self.headers.get("Content-Type", "")
            )
        except Exception as exc:  # a bug in the fake should fail loudly, not hang the client
            status, body, content_type = 500, _error_body(500, f"fake server error: {exc!r}"), "application/json"
        if isinstance(body, bytes):
            self._send(status, body, content_type=content_type)
        else:
            self._send_json(status, body)

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

    It also serves the minimal Files and Batches API the Batch API needs:
    ``POST /v1/files`` (multipart upload), ``GET /v1/files/{id}`` and
    ``GET /v1/files/{id}/content``, ``POST /v1/batches`` and
    ``GET /v1/batches/{id}``. A new batch is "validating"; each retrieval then
    reports "in_progress" for the first ``batch_in_progress_polls`` polls, after
    which the batch is processed and "completed" (or "failed" when its input
    file has malformed lines). Processing answers every line's ``body`` exactly
    like ``/v1/chat/completions`` (queued replies, then ``default``; ``delay``
    and ``drop`` are ignored): 200 answers go to the output file, the others
    (non-200 ``status``) to the error file, each line shaped
    ``{id, custom_id, response: {status_code, request_id, body}, error}``.
    Those bodies are recorded in ``batch_requests``, not in ``requests``;
    ``files`` / ``file_data`` hold every file object and its bytes,
    ``batches`` every batch object, and ``batch_api_calls`` each
    (method, path, headers) of these endpoints.
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
        # Files and Batches API (see the class docstring).
        self.batch_in_progress_polls = 0
        self.files: dict[str, JSON] = {}
        self.file_data: dict[str, bytes] = {}
        self.batches: dict[str, JSON] = {}
        self.batch_requests: list[JSON] = []
        self.batch_api_calls: list[tuple[str, str, dict[str, str]]] = []
        self._polls: dict[str, int] = {}
        self._ids = 0
        self._batch_lock = threading.Lock()  # one batch is processed once, even under racing polls

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

    # -- Files and Batches API ------------------------------------------

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}-fake-{self._ids}"

    def _add_file(self, data: bytes, filename: str, purpose: str) -> JSON:
        obj = {
            "id": self._new_id("file"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        with self._lock:
            self.files[obj["id"]] = obj
            self.file_data[obj["id"]] = data
        return obj

    def _batch_route(self, method: str, path: str, raw: bytes, content_type: str) -> tuple[int, Any, str]:
        """(status, JSON object or raw bytes, content type) for one Files / Batches request."""
        parts = path.strip("/").split("/")  # ["v1", "files" | "batches", id?, "content"?]
        if method == "POST" and parts == ["v1", "files"]:
            fields = _multipart(content_type, raw)
            if "file" not in fields or "purpose" not in fields:
                return 400, _error_body(400, "'file' and 'purpose' are required"), ""
            filename, data = fields["file"]
            return 200, self._add_file(data, filename or "upload", fields["purpose"][1].decode()), ""
        if method == "GET" and parts[:2] == ["v1", "files"] and len(parts) in (3, 4):
            with self._lock:
                obj, data = self.files.get(parts[2]), self.file_data.get(parts[2])
            if obj is None or data is None or parts[3:] not in ([], ["content"]):
                return 404, _error_body(404, f"No such File object: {parts[2]}"), ""
            return (200, data, "application/octet-stream") if parts[3:] else (200, obj, "")
        if method == "POST" and parts == ["v1", "batches"]:
            return self._create_batch(json.loads(raw or b"null"))
        if method == "GET" and parts[:2] == ["v1", "batches"] and len(parts) == 3:
            return self._poll_batch(parts[2])
        return 404, _error_body(404, f"no route for {method} {path}"), ""

    def _create_batch(self, params: Any) -> tuple[int, Any, str]:
        if not isinstance(params, dict):
            return 400, _error_body(400, "request body is not a JSON object"), ""
        file = self.files.get(params.get("input_file_id") or "")
        if file is None:
            return 400, _error_body(400, f"input file {params.get('input_file_id')!r} not found"), ""
        if file["purpose"] != "batch":
            return 400, _error_body(400, "the input file's purpose must be 'batch'"), ""
        if params.get("endpoint") != "/v1/chat/completions" or params.get("completion_window") != "24h":
            return 400, _error_body(400, "the fake serves endpoint /v1/chat/completions, window 24h only"), ""
        now = int(time.time())
        batch: JSON = {
            "id": self._new_id("batch"),
            "object": "batch",
            "endpoint": params["endpoint"],
            "errors": None,
            "input_file_id": file["id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 24 * 3600,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": params.get("metadata"),
        }
        with self._lock:
            self.batches[batch["id"]] = batch
            self._polls[batch["id"]] = 0
        return 200, dict(batch), ""

    def _poll_batch(self, batch_id: str) -> tuple[int, Any, str]:
        with self._batch_lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, _error_body(404, f"No batch found with id '{batch_id}'."), ""
            if batch["status"] in ("validating", "in_progress"):
                self._polls[batch_id] += 1
                if self._polls[batch_id] <= self.batch_in_progress_polls:
                    lines = self.file_data[batch["input_file_id"]].decode("utf-8", "replace").splitlines()
                    total = sum(1 for line in lines if line.strip())
                    now = int(time.time())
                    batch.update(status="in_progress", in_progress_at=batch["in_progress_at"] or now)
                    batch["request_counts"] = {"total": total, "completed": 0, "failed": 0}
                else:
                    self._process(batch)
            return 200, json.loads(json.dumps(batch)), ""

    def _process(self, batch: JSON) -> None:
        """Answer every request line of the batch; called once, under _batch_lock."""
        now = int(time.time())
        requests: list[tuple[str, JSON]] = []
        errors: list[JSON] = []
        text = self.file_data[batch["input_file_id"]].decode("utf-8", "replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if item.get("url") != batch["endpoint"] or not isinstance(item.get("body"), dict):
                    raise ValueError("each line needs url equal to the batch endpoint and an object body")
                requests.append((str(item["custom_id"]), item["body"]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                errors.append({"code": "invalid_request", "message": str(exc), "param": None, "line": number})
        if errors:
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
            return
        good: list[str] = []
        bad: list[str] = []
        for custom_id, body in requests:
            with self._lock:
                self.batch_requests.append(body)
                number = len(self.batch_requests)
            try:
                reply = self._pick(body)
            except Exception as exc:  # a buggy `when`/default: a failed line, not a hung poll
                reply = Reply(status=500, error_message=f"fake server error: {exc!r}")
            if reply is None:
                reply = Reply(status=500, error_message="no reply queued")
            if reply.raw_body is not None:
                try:
                    answer: Any = json.loads(reply.raw_body)
                except ValueError:
                    answer = reply.raw_body
            elif reply.status != 200:
                answer = _error_body(reply.status, reply.error_message)
            else:
                answer = _completion(body, reply, number)
            result = {
                "id": f"batch_req_fake_{number}",
                "custom_id": custom_id,
                "response": {"status_code": reply.status, "request_id": f"req_fake_{number}", "body": answer},
                "error": None,
            }
            (good if reply.status == 200 else bad).append(json.dumps(result) + "\n")
        for key, lines, kind in (("output_file_id", good, "output"), ("error_file_id", bad, "error")):
            if lines:
                name = f"{batch['id']}_{kind}.jsonl"
                batch[key] = self._add_file("".join(lines).encode(), name, "batch_output")["id"]
        batch.update(
            status="completed",
            in_progress_at=batch["in_progress_at"] or now,
            finalizing_at=now,
            completed_at=now,
            request_counts={"total": len(requests), "completed": len(good), "failed": len(bad)},
        )


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """{field name: (file name or None, exact bytes)} of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        name = re.search(rb'\bname="([^"]*)"', head)
        filename = re.search(rb'\bfilename="([^"]*)"', head)
        if name is not None:
            data = data[:-2] if data.endswith(b"\r\n") else data
            fields[name.group(1).decode()] = (filename.group(1).decode() if filename else None, data)
    return fields


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
