"""The results file of a batch: whole lines appended safely, and repaired or checked on resume.

A line is written in one write() call under a lock, then fsync'ed: the file only ever ends in a
partial line if the machine dies mid-write, and `prepare_output(resume=True)` repairs exactly that.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FactcheckError, InputError


class OutputError(FactcheckError):
    """The results file cannot be written: the batch stops."""


class ResultWriter:
    """Appends whole lines: one write() per line under a lock, flushed to disk with fsync."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror}") from exc

    def write(self, record: dict[str, Any]) -> bool:
        """False when the writer was closed (an abandoned article must not write late)."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._closed:
                return False
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(28, "short write (disk full?)")
                os.fsync(self._fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)  # never leave half a line behind
                self._closed = True
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            return True

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)


@dataclass
class Existing:
    """What `prepare_output` found in the results file."""

    done: set[str] = field(default_factory=set)  # ids with a report
    errors: int = 0  # error lines removed so their ids are retried
    truncated: bool = False  # a partial last line was dropped
    duplicates: int = 0


def prepare_output(path: Path, *, resume: bool, retry: set[str] | None = None) -> Existing:
    """Check or repair the results file before appending to it.

    Without resume an existing non-empty file is an error (appending would mix two runs). With
    resume: ids with a report are done; error lines for ids in `retry` (default: all) are removed
    so those articles are redone and each id ends up once in the file; a last line cut off
    mid-write is removed; a broken line anywhere else is an error (the file was edited or damaged).
    """
    state = Existing()
    if not path.exists():
        return state
    if not resume:
        if path.stat().st_size > 0:
            raise InputError(f"{path} already has results: pass --resume to continue it, or choose another file")
        return state
    drop: set[int] = set()
    cut_at: int | None = None
    needs_newline = False
    try:
        with path.open("rb") as handle:
            offset = 0
            for number, line in enumerate(handle, 1):
                start, offset = offset, offset + len(line)
                complete = line.endswith(b"\n")  # only the last line can lack its newline
                if not line.strip():
                    if complete:
                        drop.add(number)
                        continue
                    cut_at = start
                    break
                record = _parse(line)
                if record is None:
                    if complete:
                        raise InputError(f"{path}:{number} is not a valid result line; remove it and run again")
                    cut_at, state.truncated = start, True  # cut off mid-write: that article is redone
                    break
                needs_newline = not complete
                rid = str(record["id"])
                if "report" in record:
                    if rid in state.done:
                        drop.add(number)
                        state.duplicates += 1
                    else:
                        state.done.add(rid)
                elif retry is None or rid in retry:
                    drop.add(number)
                    state.errors += 1
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if drop:
        _rewrite(path, drop)
        return state
    if cut_at is not None or needs_newline:
        with path.open("r+b") as handle:
            if cut_at is not None:
                handle.truncate(cut_at)
            else:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    return state


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "id" not in record or not ("report" in record or "error" in record):
        return None
    return record


def _rewrite(path: Path, drop: set[int]) -> None:
    """Copy the file without the dropped lines and without a partial last line, then swap it in."""
    tmp = path.with_name(f".{path.name}.resume.tmp")
    with path.open("rb") as src, tmp.open("wb") as out:
        for number, line in enumerate(src, 1):
            if number in drop:
                continue
            if not line.endswith(b"\n"):
                if _parse(line) is None:
                    break  # the truncated tail
                line += b"\n"
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
