"""Reading a HuggingFace `config.json` as data (study/hfconfig.py makes the catalog entry of it): its bytes
parsed strictly (UTF-8, JSON, each key once, integers of any length kept without converting them), each value
checked before use (a whole number in its range), and values and names shown safely in messages and in the
catalog (bounded, one line, control and format characters escaped)."""

from __future__ import annotations

import json
import reprlib
import unicodedata
from typing import Any

from prophet_model.errors import UserError
from prophet_model.study.catalog import FORMULA_STARTS, NOT_SHOWN

LAYERS, HEADS, WIDTH, EXPERTS = 2**16, 2**16, 2**22, 2**20  # far above any published model, far below overflow
RANGES = {  # key -> (lowest, highest whole number allowed, what 0 means where 0 is allowed)
    "num_hidden_layers": (1, LAYERS, ""),
    "hidden_size": (1, WIDTH, ""),
    "num_attention_heads": (1, HEADS, ""),
    "vocab_size": (1, 2**24, ""),
    "num_key_value_heads": (1, HEADS, ""),
    "head_dim": (1, HEADS, ""),
    "intermediate_size": (1, WIDTH, ""),
    "moe_intermediate_size": (1, WIDTH, ""),
    "shared_expert_intermediate_size": (0, WIDTH, "0: no shared expert"),
    "num_local_experts": (1, EXPERTS, ""),
    "num_experts": (1, EXPERTS, ""),
    "n_routed_experts": (1, EXPERTS, ""),
    "num_experts_per_tok": (1, EXPERTS, ""),
    "n_shared_experts": (0, EXPERTS, "0: no shared expert"),
    "kv_lora_rank": (1, WIDTH, ""),
    "q_lora_rank": (0, WIDTH, "null or 0: no query compression"),
    "qk_rope_head_dim": (1, HEADS, ""),
    "qk_nope_head_dim": (1, HEADS, ""),
    "v_head_dim": (1, HEADS, ""),
    "first_k_dense_replace": (0, LAYERS, "0: no dense layer first"),
    "moe_layer_freq": (1, LAYERS, ""),
    "decoder_sparse_step": (1, LAYERS, ""),
}
MAX_DIGITS = 30  # a JSON integer longer than this is kept as a HugeInt (never converted: no 4300-digit limit)
CONFIG = "a HuggingFace config.json (a JSON object in UTF-8)"


class HugeInt:
    """A JSON integer of more than MAX_DIGITS digits: kept as its digit count, never computed with."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<an integer of {self.digits:,} digits>"


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong, _REPR.maxlevel = 50, 50, 40, 2
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = 4


def show(value: Any, limit: int = 60) -> str:
    """A value for a message: JSON's true/false/null, else a bounded repr cut at `limit` characters."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str, limit: int = 300) -> str:
    """`text` on one line: each character that is not printable (newline, tab, control, format, line
    separator) written as its escape (\\n, \\x85, \\u2028), cut at `limit` characters."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def parse_config(data: bytes, where: str) -> Any:
    """The parsed JSON of a config.json's bytes; a UserError for bytes that are not UTF-8, text that is not
    JSON, a key twice in one object, or nesting too deep for Python's JSON reader."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{where}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start:,}); allowed: {CONFIG}"
        ) from None

    def one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise UserError(f"{where}: the key {show(key)} appears twice in one object; allowed: each key once")
            out[key] = value
        return out

    def whole(digits: str) -> int | HugeInt:
        n = len(digits.lstrip("-"))
        return int(digits) if n <= MAX_DIGITS else HugeInt(n)

    try:
        return json.loads(text, parse_int=whole, object_pairs_hook=one_each)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{where}: not JSON ({exc.msg}: line {exc.lineno} column {exc.colno}); allowed: {CONFIG}"
        ) from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested deeper than Python's JSON reader allows; allowed: {CONFIG}") from None


def whole(cfg: dict, key: str, where: str, default: int | None = None) -> int:
    """cfg[key], a whole number in RANGES[key]; `default` where it is null or absent (None: required)."""
    v = cfg.get(key)
    if v is None and default is not None:
        return default
    low, high, zero = RANGES[key]
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        said = "missing (or null)" if v is None else f"= {show(v)}"
        raise UserError(
            f"{where}: {key} {said}; allowed: a whole number from {low} to {high:,}"
            + (f" ({zero})" if zero else "")
            + " written without a decimal point"
        )
    return v


def _escape(ch: str) -> str:
    """A control or format character as Python writes its escape (\\n, \\x85, \\u2028); any other as it is."""
    if unicodedata.category(ch) not in NOT_SHOWN:
        return ch
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or (
        f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"
    )


def display(name: str) -> str:
    """`name` as a catalog display name (catalog.display_name): each control or format character written as
    its escape (a newline as a backslash and n), a leading spreadsheet-formula sign behind an apostrophe.
    Text that is already a display name is unchanged."""
    out = "".join(_escape(ch) for ch in name)
    return "'" + out if out[:1] in FORMULA_STARTS else out
