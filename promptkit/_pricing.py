"""The price table: what a model's tokens cost, and so what each call cost.

One table serves every place a cost appears: ``Completion.cost`` (set by an
:class:`~promptkit.LLM` given ``prices``, from :func:`~promptkit.connect`'s ``prices=`` or a
``[prices]`` table in ``promptkit.toml``), the batch runner's summary, and
:func:`~promptkit.evaluate`'s report. Prices are US dollars per million tokens::

    # promptkit.toml
    [prices]
    "gpt-4o-mini" = { input = 0.15, output = 0.60, cached_input = 0.075 }
    "my-vllm-model" = [0.0, 0.0]

Keys are model names (as sent, or as the server reports them) or backend names. Local
backends (the embedded ``llamacpp`` model and the ``fake`` backend) cost 0 unless priced; a
model that is not in the table costs ``None``: promptkit never guesses a price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import PriceError

if TYPE_CHECKING:
    from ._types import Usage

__all__ = ["LOCAL_BACKENDS", "Price", "PriceLike", "as_price", "price_for", "price_table"]

#: Backends whose calls cost nothing by default (in-process or scripted).
LOCAL_BACKENDS = frozenset({"llamacpp", "fake"})


@dataclass(frozen=True)
class Price:
    """A model's price in US dollars per million tokens: ``input`` (prompt), ``output``
    (completion) and ``cached_input`` (prompt tokens the server read from its prompt cache;
    default: the ``input`` price).

    >>> from promptkit import Usage
    >>> Price(0.15, 0.60).cost(Usage(2_000, 500, 2_500))
    0.0006
    >>> Price(1.0, 2.0, cached_input=0.5).cost(Usage(1_000, 0, 1_000, cached_tokens=800))
    0.0006
    """

    input: float
    output: float
    cached_input: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            if value is None and name == "cached_input":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise PriceError(f"Price {name}={value!r}: expected dollars per 1M tokens >= 0.")

    @property
    def free(self) -> bool:
        """Whether every token costs nothing."""
        return self.input == 0 and self.output == 0 and not self.cached_input

    def cost(self, usage: Usage) -> float | None:
        """The cost of ``usage`` in dollars; ``None`` when the backend reported no tokens
        (and the model is not free)."""
        if usage.prompt_tokens is None and usage.completion_tokens is None:
            return 0.0 if self.free else None
        prompt = usage.prompt_tokens or 0
        cached = min(usage.cached_tokens or 0, prompt)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        total = (
            (prompt - cached) * self.input
            + cached * cached_rate
            + (usage.completion_tokens or 0) * self.output
        )
        return round(total / 1e6, 12)


PriceLike = Price | tuple[float, ...] | list[float] | Mapping[str, float]

_FIELDS = ("input", "output", "cached_input")


def as_price(key: str, value: PriceLike) -> Price:
    """A :class:`Price` from ``Price(...)``, ``(input, output[, cached_input])`` or
    ``{"input": ..., "output": ..., "cached_input": ...}``.

    >>> as_price("m", (1, 2))
    Price(input=1, output=2, cached_input=None)
    """
    if isinstance(value, Price):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - set(_FIELDS)
        if unknown or not {"input", "output"} <= set(value):
            raise PriceError(
                f"prices[{key!r}]: expected {{'input': $/1M, 'output': $/1M}} (and optionally "
                f"'cached_input'), got {dict(value)}."
            )
        return Price(value["input"], value["output"], value.get("cached_input"))
    if isinstance(value, (tuple, list)) and len(value) in (2, 3):
        return Price(*value)
    raise PriceError(
        f"prices[{key!r}]={value!r}: expected Price(input, output), (input, output), "
        "(input, output, cached_input) or {'input': ..., 'output': ...} in dollars per "
        "million tokens."
    )


def price_table(prices: Mapping[str, PriceLike] | None) -> dict[str, Price]:
    """Validate a ``{model or backend name: price}`` mapping into :class:`Price` values."""
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        raise PriceError(
            f"prices={prices!r}: expected a mapping {{model name: (input, output)}} in "
            "dollars per million tokens."
        )
    return {str(k): as_price(str(k), v) for k, v in prices.items()}


def price_for(
    table: Mapping[str, Price],
    backend: str,
    *models: str | None,
) -> Price | None:
    """The price of the first of ``models`` in ``table``, else the backend's entry; 0 for
    a local backend; ``None`` when nothing matches (never a guess).

    >>> price_for({"m": Price(1, 2)}, "openai", "m").input, price_for({}, "openai", "x")
    (1, None)
    """
    for key in models:
        if key and key in table:
            return table[key]
    if backend in table:
        return table[backend]
    if backend in LOCAL_BACKENDS:
        return _FREE
    return None


_FREE = Price(0.0, 0.0)
