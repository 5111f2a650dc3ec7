"""The wheel carries the prompt templates: an installed factcheck finds them outside the repo.

Builds a wheel of this checkout, installs it (no dependencies) into a fresh virtualenv whose only
other packages are the ones of the running interpreter's environment, and runs it from a
directory outside the repo. About 5-10 s (a build and a venv), so not marked `slow`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted(p.name for p in (ROOT / "prompts").glob("*.j2"))


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(cmd.index("--no-deps"), "--no-build-isolation")
    done = _run(cmd, cwd=str(out))
    if (
        done.returncode != 0
        and "hatchling" in done.stderr
        and ("No matching distribution" in done.stderr or "Could not find a version" in done.stderr)
    ):
        pytest.skip(f"cannot get the build back end (hatchling): {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("factcheck-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in TEMPLATES:
        assert f"factcheck/prompts/{name}" in names
    assert "factcheck/__init__.py" in names and "factcheck/cli.py" in names
    assert not any(n.startswith(("tests/", "prompts/", "examples/")) for n in names)
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "factcheck = factcheck.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_wheel_finds_its_prompts(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    done = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)]
    )
    assert done.returncode == 0, done.stderr
    # The dependencies (jinja2, pydantic, ...) come from the test environment, appended after the
    # fresh venv's own site-packages, so `factcheck` itself resolves to the installed wheel.
    (purelib / "zz-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = (
        "import factcheck, factcheck.prompts as p\n"
        "print(factcheck.__file__)\n"
        "print(p.prompts_dir())\n"
        "print(p.render('target.j2', n=3, sentence='It was denied.').hash)\n"
    )
    done = _run([str(python), "-c", probe], cwd=str(outside))
    assert done.returncode == 0, done.stderr
    package, prompts, digest = done.stdout.strip().splitlines()
    assert Path(package).resolve().is_relative_to(purelib.resolve()), package
    assert Path(prompts).resolve() == (purelib / "factcheck" / "prompts").resolve()
    assert (Path(prompts) / "article.j2").is_file()
    assert sorted(p.name for p in Path(prompts).glob("*.j2")) == TEMPLATES
    assert len(digest) == 12

    # The console script runs from anywhere too.
    done = _run([str(venv / "bin" / "factcheck"), "schema"], cwd=str(outside))
    assert done.returncode == 0, done.stderr
    assert '"Report"' in done.stdout
