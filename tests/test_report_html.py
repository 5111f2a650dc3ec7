"""The HTML report: escaping, structure, links and self-containment, without a browser.

`hostile_report()` is shared with test_report_browser.py, which checks the same page in Chromium.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import pytest

from factcheck.report import render
from factcheck.report.html import to_html
from factcheck.schemas import Report

DATA = Path(__file__).parent / "data"

# A hostile payload that, if it ever ran, would leave a mark in the DOM the browser test looks for.
SCRIPT = "<script>window.__pwned=1;document.body.setAttribute('data-pwned','1')</script>"
IMG = (
    "<img src=x onerror=\"window.__pwned=2;var d=document.createElement('div');"
    "d.id='pwned';document.body.appendChild(d)\">"
)
ATTR = '" onmouseover="window.__pwned=3" x="'

HEADLINE = "Port strike ends <b>early</b>"
S2 = f"Union leaders said the strike {SCRIPT} would end on Friday."
S3 = f"The port authority denied that any deal {IMG} had been signed."
S4 = "“Ships will sail again by Monday,” a statement read."
S5 = f"Analysts expect some delays {ATTR} to last a week."
ARTICLE = "\n\n".join([HEADLINE, S2, S3, S4, S5])


def _span(sentence: str) -> tuple[int, int]:
    start = ARTICLE.index(sentence)
    return start, start + len(sentence)


def _evidence(sentence_no: int, quote: str) -> dict:
    start = ARTICLE.index(quote)
    return {"sentence": sentence_no, "quote": quote, "start": start, "end": start + len(quote)}


def _claim(cid: str, text: str, evidence: list[dict], level: str, worthy: bool, **extra: object) -> dict:
    return {
        "id": cid,
        "text": text,
        "evidence": evidence,
        "source": extra.pop("source", {"name": "Union <em>leaders</em>", "type": "person", "cue": "said"}),
        "check_worthy": {"value": worthy, "reason": extra.pop("reason", "specific date; <u>checkable</u>")},
        "uncertainty": {"level": level, "signals": extra.pop("signals", [])},
        **extra,
    }


def hostile_report() -> Report:
    """A valid report whose article and model text are full of markup that must never run."""
    sentences = [
        {"n": i, "start": s, "end": e}
        for i, (s, e) in enumerate((_span(x) for x in (HEADLINE, S2, S3, S4, S5)), start=1)
    ]
    claims = [
        _claim(
            "c1",
            f"The strike will end on Friday {SCRIPT}",
            [_evidence(2, S2)],
            "high",
            True,
            signals=["disputed inside the article (c2)", "<i>hedged</i>: would"],
        ),
        _claim(
            "c2",
            f"No deal has been signed {IMG}",
            # overlaps c3's quote below: the shared part must carry both claim ids
            [_evidence(3, S3), _evidence(3, "any deal")],
            "medium",
            True,
            source={"name": 'The port "authority"', "type": "organization", "cue": "denied"},
            verdicts=[
                {
                    "document": "<script>doc</script>.txt",
                    "verdict": "contradicted",
                    "confidence": 0.82,
                    "evidence": [
                        {"sentence": 1, "quote": "A deal <b>was</b> signed.", "start": 0, "end": 25}
                    ],
                }
            ],
        ),
        _claim(
            "c3",
            "The port authority denied a deal",
            [_evidence(3, "The port authority denied that any deal")],
            "low",
            False,
            source={"name": None, "type": "unattributed", "cue": None},
            reason="background",
        ),
        _claim(
            f"c4{ATTR}",  # a hostile claim id: the page must still produce safe ids and links
            "Delays will last a week",
            [_evidence(5, S5)],
            "low",
            True,
        ),
    ]
    data = {
        "article": {
            "origin": "examples/<script>x</script>.txt",
            "title": HEADLINE,
            "text": ARTICLE,
            "sentences": sentences,
        },
        "summary": {
            "text": f"The strike ends Friday. {SCRIPT} {IMG}",
            "key_points": [
                {"text": f"Strike ends {ATTR}", "claims": ["c1", "c2"]},
                {"text": "A point citing a claim that does not exist", "claims": ["c99"]},
            ],
            "revisions": [
                {
                    "sentence": f"Ships sail <b>Monday</b>. {SCRIPT}",
                    "verdict": "not_enough_info",
                    "action": "dropped",
                    "reason": "restates an unattributed quote as fact",
                },
                {
                    "sentence": "The strike ends Friday.",
                    "verdict": "supported",
                    "action": "kept",
                    "reason": "P(supported) = 0.97",
                },
            ],
        },
        "claims": claims,
        "counter_claims": [{"claim": "c1", "counter": "c2", "relation": "denies", "sentences": [2, 3]}],
        "warnings": [
            {
                "kind": "unsupported_headline",
                "message": f"headline not supported: {HEADLINE}",
                "sentences": [1],
            },
            {"kind": "unattributed_quote", "message": f"quote with no speaker: {S4}", "sentences": [4]},
            {"kind": "boilerplate", "message": "credit line ignored", "sentences": [5]},
            {"kind": "prompt_injection", "message": f"instructions in the article: {IMG}", "sentences": [3]},
            {"kind": "summary_revised", "message": "1 summary sentence(s) dropped", "sentences": []},
        ],
        "meta": {
            "version": "0.1.0",
            "backend": "openai",
            "model": "<svg onload=alert(1)>-model",
            "prompts": {"extract.j2": "5b051b448305", "summary.j2": "b41063aa318c"},
            "usage": {"prompt_tokens": 1234, "completion_tokens": 321, "calls": 4, "reasks": 1},
            "stages": {
                "extract": {"prompt_tokens": 800, "completion_tokens": 200, "calls": 1, "reasks": 1},
                "summary": {"prompt_tokens": 434, "completion_tokens": 121, "calls": 1, "reasks": 0},
                "self_check": {"prompt_tokens": 0, "completion_tokens": 0, "calls": 2, "reasks": 0},
            },
            "cost_usd": 0.0123,
            "wall_time_s": 12.34,
        },
    }
    return Report.model_validate(data)


def seed_report() -> Report:
    return Report.model_validate_json((DATA / "seed-report.json").read_text(encoding="utf-8"))


_VOID = {"meta", "input", "br", "hr", "img", "link", "wbr", "source", "area", "base", "col", "embed"}


class _Tree(HTMLParser):
    """Collects every start tag with its attributes, and the article text as a reader sees it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.article: list[str] = []
        self._stack: list[tuple[str, bool, bool]] = []  # tag, inside article text, inside a badge
        self.misnested: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in _VOID:
            return
        in_article, in_badge = self._stack[-1][1:] if self._stack else (False, False)
        classes = (a.get("class") or "").split()
        in_article = in_article or a.get("id") == "article-text"
        in_badge = in_badge or "cref" in classes or "sn" in classes
        self._stack.append((tag, in_article, in_badge))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))  # <path/> and friends in the SVG

    def handle_endtag(self, tag: str) -> None:
        if not self._stack or self._stack[-1][0] != tag:
            self.misnested.append(f"</{tag}> closes <{self._stack[-1][0] if self._stack else ''}>")
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1][1] and not self._stack[-1][2]:
            self.article.append(data)


def parse(page: str) -> _Tree:
    tree = _Tree()
    tree.feed(page)
    tree.close()
    return tree


@pytest.fixture(scope="module")
def hostile() -> tuple[Report, str]:
    report = hostile_report()
    return report, to_html(report)


@pytest.fixture(scope="module")
def seed() -> tuple[Report, str]:
    report = seed_report()
    return report, to_html(report)


# --- escaping -----------------------------------------------------------------------------------


def test_hostile_markup_only_appears_escaped(hostile: tuple[Report, str]) -> None:
    _, page = hostile
    assert "window.__pwned" in page  # the text is shown...
    assert "<script>window.__pwned" not in page  # ...but never as markup
    assert "&lt;script&gt;window.__pwned=1;" in page
    assert "<img" not in page
    assert "&lt;img src=x onerror=" in page
    assert "<svg onload" not in page and "&lt;svg onload=alert(1)&gt;" in page
    assert "<b>early</b>" not in page and "&lt;b&gt;early&lt;/b&gt;" in page
    assert "<em>leaders</em>" not in page and "<i>hedged</i>" not in page and "<u>checkable</u>" not in page
    assert 'onmouseover="' not in page and 'onerror="' not in page
    assert page.count("<script") == 1  # the page's own inline script, nothing else


def test_no_event_handlers_or_foreign_elements(hostile: tuple[Report, str]) -> None:
    tree = parse(hostile[1])
    names = [tag for tag, _ in tree.tags]
    assert "img" not in names and "iframe" not in names and "object" not in names
    assert names.count("script") == 1
    for tag, attrs in tree.tags:
        assert not [k for k in attrs if k.startswith("on")], (tag, attrs)
        assert "src" not in attrs, (tag, attrs)
    assert "pwned" not in {a.get("id") for _, a in tree.tags}
    assert all("data-pwned" not in a for _, a in tree.tags)


def test_ids_unique_and_every_internal_link_resolves(hostile: tuple[Report, str], seed) -> None:
    for _, page in (hostile, seed):
        tree = parse(page)
        ids = [a["id"] for _, a in tree.tags if a.get("id")]
        assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
        for i in ids:
            assert re.fullmatch(r"[A-Za-z0-9_-]+", i), i
        targets = set(ids)
        for tag, a in tree.tags:
            href = a.get("href")
            if href is not None:
                assert href.startswith("#"), (tag, href)
                assert href[1:] in targets, f"dangling link {href}"


def test_the_highlighted_article_is_the_article_text(hostile: tuple[Report, str], seed) -> None:
    for report, page in (hostile, seed):
        tree = parse(page)
        assert "".join(tree.article) == report.article.text
        assert not tree.misnested and not tree._stack


def test_quotes_across_sentences_and_odd_offsets() -> None:
    base = hostile_report()
    text = base.article.text
    across = text.index("Friday.")  # from the end of sentence 2 into sentence 3
    stop = text.index("denied") + len("denied")
    data = base.model_dump()
    data["claims"][0]["evidence"] = [
        {"sentence": 2, "quote": text[across:stop], "start": across, "end": stop},
        {"sentence": 5, "quote": "", "start": 7, "end": 7},  # empty: nothing to mark
        {"sentence": 5, "quote": text[-9:-1], "start": -9, "end": -1},  # valid slice, bad offsets
    ]
    report = Report.model_validate(data)
    page = to_html(report)
    tree = parse(page)
    assert "".join(tree.article) == text
    assert not tree.misnested
    assert page.count('id="ev-c1-') == 1  # only the usable quote gets an anchor, and a link
    assert 'href="#ev-c1-0"' in page and 'href="#ev-c1-1"' not in page and 'href="#ev-c1-2"' not in page
    s3 = page[page.index('id="s-3"') :]
    assert s3.index('data-claims="c1') < s3.index("denied") < s3.index('href="#claim-c1"')


# --- content --------------------------------------------------------------------------------------


def test_cards_highlights_and_anchors(hostile: tuple[Report, str]) -> None:
    report, page = hostile
    for cid in ("c1", "c2", "c3"):
        assert f'id="claim-{cid}"' in page
        assert f'href="#claim-{cid}"' in page
        assert re.search(rf'<mark class="ev lvl-\w+" data-claims="[^"]*\b{cid}\b', page)
    # the hostile id is shown (escaped) but slugged into a safe anchor
    assert "c4&#34; onmouseover=&#34;window.__pwned=3&#34; x=&#34;" in page
    slug = re.search(r'<article class="card lvl-low" id="claim-(c4[\w-]*)"', page)
    assert slug and re.search(rf'<a class="cref lvl-low" href="#claim-{slug.group(1)}"', page)
    # evidence anchors in the article, one per quote, linked from the cards
    for anchor in ("ev-c1-0", "ev-c2-0", "ev-c2-1", "ev-c3-0"):
        assert f'id="{anchor}"' in page and f'href="#{anchor}"' in page
    # overlapping quotes: "any deal" is covered by c2 twice and by c3
    assert re.search(r'data-claims="(c2 c3|c3 c2)">any deal</mark>', page)
    # levels and check-worthiness drive the filters
    assert 'data-claim="c1" data-level="high" data-worthy="yes"' in page
    assert 'data-claim="c3" data-level="low" data-worthy="no"' in page


def test_counter_claims_link_both_ways(hostile: tuple[Report, str]) -> None:
    _, page = hostile
    cards = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<article class="card[^"]*" id="claim-([\w-]+)".*?</article>', page, re.S)
    }
    assert re.search(r'denied by</span>\s*<a class="cid lvl-medium" href="#claim-c2"', cards["c1"])
    assert re.search(r'denies</span>\s*<a class="cid lvl-high" href="#claim-c1"', cards["c2"])
    section = page[page.index('id="counter-claims"') :]
    assert 'id="pair-0"' in section and "<svg" in section
    assert re.search(
        r'href="#claim-c2"[^>]*>c2</a>\s*<span class="pair-rel rel-denies">denies</span>', section
    )
    # claim ids inside free-text signals become links
    assert 'disputed inside the article (<a class="cid" href="#claim-c2"' in cards["c1"]


def test_warnings_summary_revisions_and_verdicts(hostile: tuple[Report, str]) -> None:
    report, page = hostile
    for kind in (
        "unsupported_headline",
        "unattributed_quote",
        "boilerplate",
        "prompt_injection",
        "summary_revised",
    ):
        assert f'data-kind="{kind}"' in page
    assert page.index('id="warnings"') < page.index('id="summary"') < page.index('id="article"')
    assert 'href="#s-4"' in page and 'id="s-4"' in page
    assert "The strike ends Friday. &lt;script&gt;" in page
    assert "2 sentences, 1 kept, 1 dropped" in page
    assert '<tr class="dropped">' in page and "restates an unattributed quote as fact" in page
    assert '<span class="cid missing"' in page  # key point citing c99
    assert "&lt;script&gt;doc&lt;/script&gt;.txt" in page and "Contradicted" in page and "82%" in page


def test_meta(hostile: tuple[Report, str]) -> None:
    _, page = hostile
    section = page[page.index('id="meta"') :]
    for text in (
        "openai",
        "1,234 in · 321 out",
        "(1 re-asked)",
        "$0.0123",
        "12.3 s",
        "extract.j2",
        "5b051b448305",
        "summary.j2",
        "b41063aa318c",
        ">self_check<",
    ):
        assert text in section, text


def test_self_contained(hostile: tuple[Report, str], seed) -> None:
    for _, page in (hostile, seed):
        assert "http://" not in page and "https://" not in page
        assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(//|[a-z]+:)""", page, re.I)
        assert "@import" not in page and "url(" not in page.replace("url(#arrow-", "")
        assert "<link" not in page and "<iframe" not in page
        assert '<meta name="viewport"' in page and "@media print" in page


def test_seed_report_renders(seed: tuple[Report, str]) -> None:
    report, page = seed
    assert render(report, "html") == page
    assert page.startswith("<!DOCTYPE html>")
    for c in report.claims:
        assert f'id="claim-{c.id}"' in page
    assert page.count('<article class="card') == len(report.claims)
    assert page.count('class="ev-anchor"') == sum(len(c.evidence) for c in report.claims)
    assert "Islamic State Closes In On Syrian City Of Aleppo" in page
    assert "contradicted by" in page and "denied by" in page


def test_empty_report_renders() -> None:
    report = hostile_report().model_copy(
        update={
            "claims": [],
            "counter_claims": [],
            "warnings": [],
            "summary": hostile_report().summary.model_copy(update={"key_points": [], "revisions": []}),
        }
    )
    page = to_html(report)
    assert "No warnings" in page and "found no claims" in page and "No claim in the article" in page
    assert "".join(parse(page).article) == report.article.text


def test_template_ships_inside_the_package() -> None:
    assert (files("factcheck.report") / "templates" / "report.html.j2").is_file()
