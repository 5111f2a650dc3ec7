"""The HTML report in a real headless Chromium: scripts run, hostile text does not, filters work.

Drives the Debian `chromium` binary directly (no selenium/playwright): `--dump-dom` prints the DOM
after the page's scripts ran, `--screenshot` saves a PNG. All pages are opened from file:// with
networking features off. Screenshots of the seed report land in artifacts/ (gitignored).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_report_html import IMG, SCRIPT, hostile_report, seed_report

from factcheck.report.html import to_html

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
]


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if not path:
        pytest.skip("chromium not installed: apt-get install chromium chromium-driver")
    return path


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Render the pages, run every Chromium job in parallel, return {job: dumped DOM}."""
    exe = _chromium()
    work = tmp_path_factory.mktemp("browser")
    hostile = work / "hostile.html"
    hostile.write_text(to_html(hostile_report()), encoding="utf-8")
    seed = work / "seed.html"
    seed.write_text(to_html(seed_report()), encoding="utf-8")
    # A control page with the payload NOT escaped: proves the detector below would see it run.
    control = work / "control.html"
    control.write_text(f"<!DOCTYPE html><html><body><p>x</p>{SCRIPT}{IMG}</body></html>", encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)

    jobs: dict[str, list[str]] = {
        "hostile": ["--dump-dom", hostile.as_uri()],
        "hostile-filtered": ["--dump-dom", hostile.as_uri() + "#filter=high,medium,worthy"],
        "control": ["--dump-dom", control.as_uri()],
        "seed": ["--dump-dom", seed.as_uri()],
        "seed-filtered": ["--dump-dom", seed.as_uri() + "#filter=high"],
        "screenshot": ["--window-size=1280,2000", f"--screenshot={ARTIFACTS / 'report.png'}", seed.as_uri()],
        "screenshot-mobile": [
            "--window-size=390,2000",
            f"--screenshot={ARTIFACTS / 'report-mobile.png'}",
            seed.as_uri(),
        ],
    }
    profiles = []
    procs = {}
    for name, args in jobs.items():
        profile = tempfile.mkdtemp(prefix="chromium-", dir=work)
        profiles.append(profile)
        procs[name] = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    out: dict[str, str] = {}
    try:
        for name, proc in procs.items():
            stdout, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"chromium job {name} exited {proc.returncode}"
            out[name] = stdout
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    yield out


def _body(dom: str) -> str:
    m = re.search(r"<body[^>]*>", dom)
    assert m, "no <body> in the dumped DOM"
    return m.group(0)


def _cards(dom: str) -> dict[str, str]:
    """claim slug -> the card's start tag."""
    return {
        m.group(1): m.group(0)
        for m in re.finditer(r'<article class="card[^"]*" id="claim-([\w-]+)"[^>]*>', dom)
    }


def test_control_page_shows_the_detector_works(browser: dict[str, str]) -> None:
    dom = browser["control"]
    assert 'data-pwned="1"' in _body(dom)
    assert 'id="pwned"' in dom


def test_page_script_runs_but_hostile_text_does_not(browser: dict[str, str]) -> None:
    dom = browser["hostile"]
    body = _body(dom)
    assert 'data-ready="1"' in body  # our inline script ran
    assert "data-pwned" not in body  # the article's <script> did not
    assert 'id="pwned"' not in dom  # nor the <img onerror>
    assert "<img" not in dom and dom.count("<script") == 1
    assert "&lt;script&gt;window.__pwned=1;" in dom  # it is shown as text instead


def test_visible_content(browser: dict[str, str]) -> None:
    dom = browser["seed"]
    report = seed_report()
    assert 'data-ready="1"' in _body(dom)
    assert f'data-shown="{len(report.claims)}"' in _body(dom)
    cards = _cards(dom)
    assert set(cards) == {c.id for c in report.claims}
    assert not [tag for tag in cards.values() if "hidden" in tag]
    marks = re.findall(r'<mark class="ev lvl-(\w+)" data-claims="([^"]+)">', dom)
    assert {claim for _, ids in marks for claim in ids.split()} == {c.id for c in report.claims}
    assert re.search(r'<form class="filters" id="filters" aria-label="Filter claims">', dom)  # unhidden by JS
    assert "contradicted by" in dom and "denied by" in dom
    assert '<li id="pair-0" class="pair">' in dom
    assert dom.count('class="warning w-') == len(report.warnings)


def test_filter_from_the_url_hash(browser: dict[str, str]) -> None:
    dom = browser["seed-filtered"]
    report = seed_report()
    high = {c.id for c in report.claims if c.uncertainty.level == "high"}
    cards = _cards(dom)
    assert {cid for cid, tag in cards.items() if 'hidden=""' not in tag} == high
    assert f'data-shown="{len(high)}"' in _body(dom)
    assert f"Showing {len(high)} of {len(report.claims)} claims" in dom
    # the low-uncertainty highlights are muted in the article, the high ones are not
    assert re.search(r'<mark class="ev lvl-low filtered-out"', dom)
    assert not re.search(r'<mark class="ev lvl-high filtered-out"', dom)

    dom = browser["hostile-filtered"]  # high or medium, and check-worthy
    shown = {cid for cid, tag in _cards(dom).items() if 'hidden=""' not in tag}
    assert shown == {"c1", "c2"}
    assert 'data-shown="2"' in _body(dom)


def test_screenshots(browser: dict[str, str]) -> None:
    desktop, mobile = ARTIFACTS / "report.png", ARTIFACTS / "report-mobile.png"
    assert _png_size(desktop) == (1280, 2000)
    assert _png_size(mobile) == (390, 2000)
    # a blank page compresses to a few kilobytes; a rendered report does not
    assert desktop.stat().st_size > 60_000 and mobile.stat().st_size > 30_000
