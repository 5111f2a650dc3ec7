"""Joining the embedded model's chunks: verified, atomic, rebuilt when damaged (small fake chunks)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from factcheck import embedded
from factcheck.errors import ConfigError


@pytest.fixture
def chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    parts = [bytes([i]) * 1000 + b"chunk" for i in range(3)]
    paths = []
    for i, data in enumerate(parts):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    whole = b"".join(parts)
    monkeypatch.setattr(embedded, "part_files", lambda: paths)
    monkeypatch.setattr(embedded, "SIZE", len(whole))
    monkeypatch.setattr(embedded, "SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setenv("FACTCHECK_CACHE_DIR", str(tmp_path / "cache"))
    return whole


def test_joins_verifies_and_reports_progress(chunks: bytes) -> None:
    seen: list[tuple[int, int]] = []
    path = embedded.ensure_model(progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == chunks
    assert seen[-1] == (len(chunks), len(chunks))
    assert embedded.status().ready
    assert not list(path.parent.glob(".*.tmp"))  # nothing half-written left behind


def test_second_run_does_not_rejoin(chunks: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    path = embedded.ensure_model()
    monkeypatch.setattr(embedded, "part_files", lambda: pytest.fail("joined again"))
    assert embedded.ensure_model() == path


def test_damaged_file_is_rebuilt_not_used(chunks: bytes) -> None:
    path = embedded.ensure_model()
    path.write_bytes(b"x" * len(chunks))  # same size, different content and mtime
    assert not embedded.status().ready
    assert embedded.ensure_model().read_bytes() == chunks


def test_wrong_checksum_is_an_error_and_leaves_nothing(chunks: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="checksum"):
        embedded.ensure_model()
    assert not embedded.model_path().exists()
    assert not list(embedded.model_path().parent.glob(".*.tmp"))


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    def missing(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded.metadata, "distribution", missing)
    with pytest.raises(ConfigError, match=r"factcheck\[local\]"):
        embedded.part_files()


def test_not_enough_disk_is_a_clear_error(chunks: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10, 10, 0))
    with pytest.raises(ConfigError, match="not enough free disk"):
        embedded.ensure_model()
