"""Choose a back end: the embedded local model unless an OpenAI-compatible server is configured."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from .base import Backend, Completion, Message

__all__ = ["Backend", "Completion", "Message", "Choice", "choose", "open_backend"]

BackendName = Literal["auto", "local", "openai"]
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@dataclass
class Choice:
    backend: Literal["local", "openai"]
    reason: str
    model: str | None = None
    model_path: Path | None = None  # None: the embedded default
    base_url: str | None = None
    api_key: str | None = None


def choose(
    backend: BackendName = "auto",
    *,
    model: str | None = None,
    base_url: str | None = None,
    model_path: str | None = None,
) -> Choice:
    """Decide which back end to use from options and the environment, without opening it."""
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY") or None
    model_path = model_path or os.environ.get("FACTCHECK_MODEL_PATH") or None
    if backend == "local" or (backend == "auto" and model_path):
        if model_path:
            return Choice("local", "--model-path / FACTCHECK_MODEL_PATH is set", model_path=Path(model_path))
        return Choice("local", "--backend local: the embedded default model")
    if backend == "openai" or base_url or api_key:
        if not (base_url or api_key):
            raise ConfigError("the OpenAI back end needs OPENAI_API_KEY, or --base-url / OPENAI_BASE_URL")
        why = "OPENAI_BASE_URL / --base-url is set" if base_url else "OPENAI_API_KEY is set"
        return Choice("openai", why, model=model, base_url=base_url, api_key=api_key)
    if model:
        raise ConfigError(
            f"--model {model} needs an OpenAI-compatible server: set OPENAI_API_KEY or --base-url "
            "(or use --model-path FILE.gguf for a local model)"
        )
    return Choice("local", "no API key, base URL or model path: the embedded default model")


def open_backend(choice: Choice, *, progress: bool = False, cache: bool = True) -> Backend:
    """Open the chosen back end, behind the persistent response cache unless `cache` is False or
    FACTCHECK_NO_CACHE=1 (see backends/cache.py)."""
    backend = _open_uncached(choice, progress=progress)
    from .cache import disabled_by_env

    if cache and not disabled_by_env():
        from .cache import CachedBackend

        return CachedBackend(backend)  # type: ignore[return-value]
    return backend


def _open_uncached(choice: Choice, *, progress: bool) -> Backend:
    if choice.backend == "openai":
        from .openai_compat import OpenAIBackend

        model = choice.model or os.environ.get("FACTCHECK_MODEL")
        if not model:
            model = _first_served_model(choice) if choice.base_url else DEFAULT_OPENAI_MODEL
        return OpenAIBackend(model, base_url=choice.base_url, api_key=choice.api_key)
    from .local import LocalBackend

    path = choice.model_path
    if path is None:
        from .. import embedded

        path = embedded.ensure_model(progress=_join_progress() if progress else None)
    return LocalBackend(path)


def _first_served_model(choice: Choice) -> str:
    """A local server (Ollama, vLLM, llama.cpp) usually serves one model: use it."""
    import openai

    try:
        client = openai.OpenAI(
            api_key=choice.api_key or "not-needed", base_url=choice.base_url, max_retries=1, timeout=10
        )
        models = [m.id for m in client.models.list()]
    except openai.APIError:
        models = []
    if not models:
        raise ConfigError(f"could not list models at {choice.base_url}; pass --model NAME")
    return models[0]


def _join_progress():  # type: ignore[no-untyped-def]
    """A progress bar on stderr for the one-time model unpacking."""
    from rich.progress import Progress

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            bar = Progress(transient=True)
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task("unpacking the embedded model", total=total)
        bar = state["bar"]
        bar.update(state["task"], completed=done)
        if done >= total:
            bar.stop()

    return update
