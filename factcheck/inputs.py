"""What a batch is asked to do: files, globs, directories, URLs and JSONL files expanded into
articles (`Item`s) with unique ids, each loaded only when its turn comes."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from .documents import Document

ARTICLE_SUFFIXES = {".txt", ".md", ".html", ".htm"}


@dataclass(frozen=True)
class Item:
    """One article to do; the text of a JSONL item is read again when its turn comes."""

    id: str
    path: str | None = None  # a file to load (shown as "path" in the output line)
    url: str | None = None
    jsonl: Path | None = None  # text items: the JSONL file and the byte offset of their line
    offset: int = 0
    size: int = 0  # characters (or bytes) of input, for the budget's estimate; 0 when unknown
    title: str | None = None

    def where(self) -> dict[str, str]:
        if self.path is not None:
            return {"path": self.path}
        if self.url is not None:
            return {"url": self.url}
        return {}


def collect_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Item]:
    """Expand files, globs, directories, URLs and JSONL files into items with unique ids.

    A file's id is its path as given or found; a JSONL item's id is its "id" field (else
    FILE:LINE). The same file reached twice counts once; two different items with one id is an
    error, since the output could not tell them apart.
    """
    items: dict[str, Item] = {}
    origin: dict[str, str] = {}

    def add(item: Item, where: str) -> None:
        if item.id in items:
            if items[item.id] == item:
                return
            raise InputError(f"duplicate id {item.id!r} ({origin[item.id]} and {where})")
        items[item.id] = item
        origin[item.id] = where

    for raw in inputs:
        text = os.fspath(raw)
        if text.startswith(("http://", "https://")):
            add(Item(id=text, url=text), text)
            continue
        if glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"no files match {text}")
            paths = [Path(m) for m in matches]
        else:
            paths = [Path(text)]
        for path in paths:
            if path.is_dir():
                found = [
                    p
                    for p in sorted(path.rglob("*"))
                    if p.suffix.lower() in ARTICLE_SUFFIXES
                    and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                ]
                if not found and not glob.has_magic(text):
                    raise InputError(f"{path}: no *.txt, *.md or *.html files in this directory")
                for p in found:
                    add(_file_item(p), str(path))
            elif path.suffix.lower() == ".jsonl":
                for item, line in _jsonl_items(path):
                    add(item, f"{path}:{line}")
            elif path.is_file():
                add(_file_item(path), str(path))
            elif not path.exists():
                raise InputError(f"no such file: {path}")
    return list(items.values())


def _file_item(path: Path) -> Item:
    name = os.path.normpath(str(path))
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return Item(id=name, path=name, size=size)


def _jsonl_items(path: Path) -> Iterator[tuple[Item, int]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        offset = 0
        for number, line in enumerate(handle, 1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{number}: expected an object with id and text, path or url")
            given = [k for k in ("text", "path", "url") if obj.get(k) not in (None, "")]
            if len(given) != 1:
                raise InputError(f"{path}:{number}: give exactly one of text, path or url")
            item_id = str(obj["id"]) if obj.get("id") not in (None, "") else f"{path}:{number}"
            title = obj.get("title") if isinstance(obj.get("title"), str) else None
            kind = given[0]
            value = obj[kind]
            if not isinstance(value, str):
                raise InputError(f"{path}:{number}: {kind} must be a string")
            if kind == "text":
                yield Item(id=item_id, jsonl=path, offset=start, size=len(value), title=title), number
            elif kind == "url":
                yield Item(id=item_id, url=value, title=title), number
            else:
                # A relative path is relative to the JSONL file, so the list can move with its files.
                target = Path(value)
                if not target.is_absolute() and not (path.parent / value).exists() and target.exists():
                    pass  # written relative to the working directory
                elif not target.is_absolute():
                    target = path.parent / value
                size = target.stat().st_size if target.is_file() else 0
                yield Item(id=item_id, path=os.path.normpath(str(target)), size=size, title=title), number


def load_item(item: Item) -> Document:
    from . import documents

    if item.jsonl is not None:
        with item.jsonl.open("rb") as handle:
            handle.seek(item.offset)
            obj = json.loads(handle.readline())
        return documents.make_document(str(obj["text"]), origin=item.id, title=item.title)
    doc = documents.load(item.path or item.url or "")
    if item.title is not None:
        doc.title = item.title
    return doc
