"""llama.cpp in-process (llama-cpp-python): the embedded default, or any GGUF file."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError
from .base import Completion, Message


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalBackend:
    """Runs the model in this process with JSON-schema-constrained decoding (a llama.cpp grammar).

    Every prompt starts with the same article block, so llama.cpp reuses the evaluated prefix
    from the previous call and only the task-specific tail is processed again.
    """

    name = "local"

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 0):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError('the local back end needs llama-cpp-python: pip install "factcheck[local]"') from exc
        if not model_path.is_file():
            raise ConfigError(f"model file not found: {model_path}")
        self.model = model_path.stem
        self.path = model_path
        started = time.perf_counter()
        try:
            self._llm = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=n_threads or default_threads(),
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot load model {model_path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self.n_ctx = n_ctx

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        try:
            response: Any = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                response_format={"type": "json_object", "schema": schema},
                max_tokens=max_tokens,
                temperature=temperature,
            )
        except ValueError as exc:  # e.g. the prompt does not fit the context window
            raise BackendError(f"local model: {exc}") from exc
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content"),
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
        )

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        """One forward pass instead of a generation: the options' first-token probabilities.

        The prompt is tokenized exactly as create_chat_completion does, so the evaluated article
        prefix already in the KV cache is reused and only the new tail is processed.
        """
        import numpy as np

        llm = self._llm
        prompt = self._formatter()(messages=messages).prompt + prefix
        tokens = llm.tokenize(prompt.encode("utf-8"), special=True)
        if len(tokens) >= self.n_ctx:
            raise BackendError(f"local model: prompt of {len(tokens)} tokens exceeds the context window")
        firsts = {}
        for option in options:
            ids = llm.tokenize(option.encode("utf-8"), add_bos=False, special=False)
            firsts[option] = ids[0]
        if len(set(firsts.values())) != len(options):
            return None  # options share a first token: cannot tell them apart in one step
        cached = llm.input_ids[: llm.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, tokens[:-1], strict=False):
            if a != b:
                break
            common += 1
        llm.n_tokens = common
        llm.eval(tokens[common:])
        self._last_classify = (len(tokens), 0)
        # Without logits_all (which would cost gigabytes) only the last token's logits exist.
        last = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
        logits = last.astype(np.float64)
        chosen = np.array([logits[firsts[o]] for o in options])
        probs = np.exp(chosen - chosen.max())
        probs /= probs.sum()
        return {o: float(p) for o, p in zip(options, probs, strict=False)}

    def last_classify_usage(self) -> tuple[int, int] | None:
        """(prompt, completion) tokens of the last classify() call (prompt counts the whole
        prompt, as create_chat_completion reports it, though a cached prefix is not re-evaluated)."""
        return getattr(self, "_last_classify", None)

    def _formatter(self):  # type: ignore[no-untyped-def]
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if getattr(self, "_chat_formatter", None) is None:
            meta = self._llm.metadata
            template = meta.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(f"{self.path.name} has no chat template")
            vocab = self._llm._model
            eos = vocab.token_get_text(vocab.token_eos()) if vocab.token_eos() >= 0 else ""
            bos = vocab.token_get_text(vocab.token_bos()) if vocab.token_bos() >= 0 else ""
            self._chat_formatter = Jinja2ChatFormatter(
                template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True
            )
        return self._chat_formatter
