"""What a run costs: USD per million input / output tokens, per model.

The built-in table covers a few OpenAI models (list prices; check https://openai.com/api/pricing
before relying on them). FACTCHECK_PRICES names a TOML or JSON file that adds to or overrides it:

    # prices.toml                            // prices.json
    [models."gpt-4o-mini"]                   {"models": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}}
    input = 0.15
    output = 0.60

(the `models` level may be left out). The local back end costs nothing. A model with no price
costs 0 here, and `price()` returns None so callers can say the cost is unknown rather than zero.
A dated snapshot ("gpt-4o-mini-2024-07-18") takes the price of its longest listed prefix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["Price", "PRICES", "cost", "price", "describe"]


@dataclass(frozen=True)
class Price:
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens


PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1": Price(2.00, 8.00),
}

FREE_BACKENDS = {"local"}


def price(backend_name: str, model: str) -> Price | None:
    """The model's price; Price(0, 0) for a free back end; None when it is not known."""
    if backend_name in FREE_BACKENDS:
        return Price(0.0, 0.0)
    table = _table(os.environ.get("FACTCHECK_PRICES") or "")
    if model in table:
        return table[model]
    # A dated or fine-tuned variant takes the price of its longest known prefix.
    for name in sorted(table, key=len, reverse=True):
        if model.startswith(name + "-") or model.startswith(name + ":"):
            return table[name]
    return None


def cost(backend_name: str, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for these tokens; 0.0 for the local back end and for models with no known price."""
    p = price(backend_name, model)
    if p is None:
        return 0.0
    return (prompt_tokens * p.input + completion_tokens * p.output) / 1_000_000


def describe(backend_name: str, model: str) -> str:
    p = price(backend_name, model)
    if backend_name in FREE_BACKENDS:
        return f"{backend_name} back end: free"
    if p is None:
        return f"no price known for {model}, counted as $0; set FACTCHECK_PRICES to a TOML/JSON price file"
    return f"{model}: ${p.input:g} / ${p.output:g} per 1M input / output tokens"


@lru_cache(maxsize=4)
def _table(override: str) -> dict[str, Price]:
    table = dict(PRICES)
    if override:
        table.update(_load(Path(override)))
    return table


def _load(path: Path) -> dict[str, Price]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"FACTCHECK_PRICES: cannot read {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            data: Any = json.loads(raw)
        else:
            data = _toml(raw)
    except ValueError as exc:
        raise ConfigError(f"FACTCHECK_PRICES: {path} is not valid {path.suffix or 'TOML'}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]
    if not isinstance(data, dict):
        raise ConfigError(f"FACTCHECK_PRICES: {path} must map model names to {{input, output}}")
    out = {}
    for name, entry in data.items():
        try:
            out[str(name)] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"FACTCHECK_PRICES: {path}: {name} needs numeric 'input' and 'output' (USD per 1M tokens)"
            ) from exc
    return out


def _toml(raw: bytes) -> Any:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as exc:
            raise ValueError("reading TOML on Python 3.10 needs `pip install tomli`; or use a .json file") from exc
    return tomllib.loads(raw.decode("utf-8"))
