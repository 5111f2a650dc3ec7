"""The single jinja2 environment: render(name, **vars) -> text + template hash.

Article text only ever enters as a variable, never as template source, and templates render in a
sandbox with StrictUndefined, so a typo in a template fails loudly instead of sending a blank.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import ConfigError


def prompts_dir() -> Path:
    here = Path(__file__).resolve().parent
    # Installed wheel: factcheck/prompts; source checkout or editable install: ../prompts.
    for candidate in (here / "prompts", here.parent / "prompts"):
        if (candidate / "article.j2").is_file():
            return candidate
    raise ConfigError("prompt templates not found; reinstall factcheck")


@dataclass(frozen=True)
class Rendered:
    name: str
    text: str
    hash: str  # of the template source, so results can say which prompt version made them


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(prompts_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text for a model, not HTML
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def template_hash(name: str) -> str:
    source = (prompts_dir() / name).read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


def render(name: str, **variables: object) -> Rendered:
    try:
        text = _environment().get_template(name).render(**variables)
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"prompt template {name} not found") from exc
    return Rendered(name=name, text=text.strip(), hash=template_hash(name))
