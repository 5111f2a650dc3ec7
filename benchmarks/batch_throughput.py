"""Batch throughput against the fake OpenAI-compatible server, and CLI start-up time.

    /work/venv/bin/python benchmarks/batch_throughput.py [--latency 0.2] [--seconds 4]

1. Articles per second at concurrency 1, 8 and 32 with a fixed server latency per call, against
   the ideal: concurrency / (latency x calls per article).
2. The tool's own overhead per call (HTTP round trip through the SDK plus all pipeline work) with
   zero server latency, at concurrency 1: the CPU time of this process per call (what the tool
   costs, whatever else the machine runs), and the wall time, which also holds the server's turn.
   The fake server runs in a child process, so neither its CPU time nor its share of the GIL is
   charged to the tool.
3. `factcheck --help` start-up time (best of 5, target < 0.3 s); when slower, the heaviest
   imports (python -X importtime).

No model, no network: tiny articles of 2-3 sentences, the response cache off.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver import FakeOpenAIServer, Reply  # noqa: E402

from factcheck.backends.openai_compat import OpenAIBackend  # noqa: E402
from factcheck.batch import run_batch  # noqa: E402


def answer(request: dict) -> Reply:  # type: ignore[type-arg]
    """A valid answer to every pipeline schema (see tests/test_batch.py: answer_json)."""
    from batch_helpers import answer_json, schema_name_of

    fmt = request["response_format"]
    if fmt["type"] == "json_schema":
        name, schema = fmt["json_schema"]["name"], fmt["json_schema"]["schema"]
    else:
        schema = fmt["schema"]
        name = schema_name_of(schema)
    return Reply(content=json.dumps(answer_json(name, schema, request["messages"])))


def article(i: int) -> str:
    return f"Article {i} says the harbour reopened after repairs. Officials expect more ships next month." + (
        " Local shops welcomed the news." if i % 2 else ""
    )


def _serve(latency: float, conn) -> None:  # type: ignore[no-untyped-def]
    with FakeOpenAIServer(default=answer, latency=latency) as server:
        conn.send(server.url)
        conn.recv()  # until told to stop
        conn.send(len(server.requests))


class Server:
    """The fake server in its own process, so its CPU time (and GIL) is not charged to the tool."""

    def __init__(self, latency: float):
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(latency, child), daemon=True)

    def __enter__(self) -> str:
        self._proc.start()
        return str(self._conn.recv())

    def stop(self) -> int:
        self._conn.send("stop")
        requests = int(self._conn.recv())
        self._proc.join(timeout=5)
        return requests

    def __exit__(self, *exc: object) -> None:
        if self._proc.is_alive():
            self._proc.kill()


class LineCounter:
    """Watches the output file grow: when did the k-th result line appear?"""

    def __init__(self, path: Path):
        self.path, self.times = path, [0.0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        started, offset, lines = time.perf_counter(), 0, 0
        while not self._stop.wait(0.01):
            if self.path.exists():
                with self.path.open("rb") as handle:  # only the bytes added since the last look
                    handle.seek(offset)
                    new = handle.read()
                offset += len(new)
                lines += new.count(b"\n")
            self.times += [time.perf_counter() - started] * (lines - len(self.times) + 1)

    def __enter__(self) -> LineCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def steady_rate(self) -> float:
        """Articles per second between 10% and 90% of the run's results: the rate a long run
        keeps, without the start (threads spinning up) and the tail (the last articles finishing
        with most workers idle), which any finite run has."""
        n = len(self.times) - 1
        low, high = max(1, n // 10), n - n // 10
        return (high - low) / (self.times[high] - self.times[low])


def run(n: int, concurrency: int, latency: float, work: Path) -> tuple[float, int, int, float]:
    """(seconds, articles done, server calls, steady articles/s) for n articles."""
    listing = work / f"in-{concurrency}-{latency}-{n}.jsonl"
    listing.write_text("".join(json.dumps({"id": f"a{i}", "text": article(i)}) + "\n" for i in range(n)))
    out = work / f"out-{concurrency}-{latency}-{n}.jsonl"
    server = Server(latency)
    with server as url, LineCounter(out) as counter:
        started = time.perf_counter()
        summary = run_batch(
            [str(listing)],
            out,
            backend_factory=lambda: OpenAIBackend("fake-model", base_url=url, max_retries=0),
            concurrency=concurrency,
            progress=False,
        )
        elapsed = time.perf_counter() - started
        calls = server.stop()
    if summary.failed:
        raise SystemExit(f"{summary.failed} articles failed: {summary.errors.most_common(1)}")
    time.sleep(0.03)  # the watcher's last look
    return elapsed, summary.done, calls, counter.steady_rate()


def sdk_floor(calls: int = 300) -> float:
    """CPU seconds per bare chat-completion request through the same SDK path, no pipeline."""
    from factcheck.answers import SummaryAnswer
    from factcheck.structured import strict_schema

    messages = [{"role": "system", "content": article(1)}, {"role": "user", "content": "Summarise it."}]
    fmt = {"type": "json_schema", "json_schema": {"name": "SummaryAnswer", "schema": strict_schema(SummaryAnswer)}}
    server = Server(0.0)
    with server as url:
        backend = OpenAIBackend("fake-model", base_url=url, max_retries=0)
        for _ in range(20):  # warm up the connection
            backend._create(messages=messages, response_format=fmt, max_tokens=100)
        cpu = time.process_time()
        for _ in range(calls):
            backend._create(messages=messages, response_format=fmt, max_tokens=100)
        cpu = time.process_time() - cpu
        server.stop()
    return cpu / calls


def startup(samples: int = 5) -> float:
    exe = Path(sys.executable).with_name("factcheck")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "factcheck.cli", "--help"]
    best = float("inf")
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def heavy_imports(top: int = 12) -> list[tuple[int, str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import factcheck.cli"], capture_output=True, text=True
    )
    rows = []
    for line in result.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), m.group(3).count(" ") // 2, m.group(4)))
    rows.sort(reverse=True)
    return [(us, f"{'  ' * depth}{name}") for us, depth, name in rows[:top]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2, help="server seconds per call")
    parser.add_argument("--seconds", type=float, default=20.0, help="target duration of each throughput run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="factcheck-bench-"))

    # Calls per article, measured: extraction, summary, one judgement per summary sentence, plus
    # one logprob probe per worker thread until the back end learns the server has no logprobs.
    _, done, calls, _ = run(4, 1, 0.0, work)
    estimate = calls / done

    print(f"throughput with {args.latency * 1000:.0f} ms server latency per call:")
    print(
        f"{'concurrency':>12} {'articles':>9} {'calls/art':>10} {'seconds':>8} {'articles/s':>11} "
        f"{'steady/s':>9} {'ideal/s':>8} {'ratio':>6} {'steady ratio':>13}"
    )
    for concurrency in (1, 8, 32):
        n = max(2 * concurrency, round(concurrency / (args.latency * estimate) * args.seconds))
        seconds, done, calls, steady = run(n, concurrency, args.latency, work)
        per_article = calls / done
        ideal = concurrency / (args.latency * per_article)
        rate = done / seconds
        print(
            f"{concurrency:>12} {done:>9} {per_article:>10.2f} {seconds:>8.2f} {rate:>11.2f} "
            f"{steady:>9.2f} {ideal:>8.2f} {rate / ideal:>6.2f} {steady / ideal:>13.2f}"
        )

    n = 100
    cpu = time.process_time()
    seconds, done, calls, _ = run(n, 1, 0.0, work)
    cpu = time.process_time() - cpu
    floor = sdk_floor()
    print(
        f"\ntool overhead per call (latency 0, concurrency 1): {cpu / calls * 1000:.2f} ms of CPU, "
        f"{seconds / calls * 1000:.2f} ms wall incl. the server's turn ({calls} calls, {done / seconds:.1f} articles/s)"
        f"\n  of which the openai SDK + HTTP alone (a bare request, same size): {floor * 1000:.2f} ms of CPU;"
        f" factcheck's own code: {(cpu / calls - floor) * 1000:.2f} ms"
    )

    best = startup()
    print(f"\nfactcheck --help start-up: {best:.3f} s (best of 5; target < 0.3 s)")
    if best >= 0.3:
        print("heaviest imports (cumulative us):")
        for us, name in heavy_imports():
            print(f"  {us:>8}  {name}")


if __name__ == "__main__":
    main()
