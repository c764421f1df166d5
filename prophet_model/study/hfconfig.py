"""A catalog/models.yml entry from a HuggingFace `config.json` (as InferSim, LLM-Viewer and GenZ read one).

Families read (by `model_type`, else by `architectures`):
- mixtral (MixtralForCausalLM): num_local_experts experts of intermediate_size, every layer MoE;
- qwen2_moe (Qwen2MoeForCausalLM, Qwen1.5-MoE and Qwen2-MoE): num_experts of moe_intermediate_size, one
  shared expert of shared_expert_intermediate_size; a layer is MoE unless listed in mlp_only_layers, every
  decoder_sparse_step-th layer (HF modeling_qwen2_moe), the others dense of intermediate_size;
- qwen3_moe (Qwen3MoeForCausalLM): as qwen2_moe without the shared expert, head_dim given;
- olmoe (OlmoeForCausalLM): num_experts of intermediate_size, every layer MoE;
- deepseek_v2 / deepseek_v3 (multi-head latent attention): n_routed_experts of moe_intermediate_size,
  n_shared_experts of the same size, the first first_k_dense_replace layers dense (intermediate_size),
  then every moe_layer_freq-th layer MoE; the KV cache holds the compressed latent, kv_lora_rank +
  qk_rope_head_dim elements per token and layer, shared by all heads.
Attention weights: grouped-query: Q and O hidden x heads x head_dim, K and V hidden x kv_heads x head_dim
(biases and norms ignored); MLA: W_q (through q_lora_rank when given), W_kv_a hidden x (kv_lora_rank +
qk_rope_head_dim), W_kv_b kv_lora_rank x heads x (qk_nope_head_dim + v_head_dim), W_o heads x v_head_dim x
hidden. Bytes per parameter: quantization_config's (fp8 1; gptq, awq, bitsandbytes bits / 8), else
torch_dtype's. Every value's source is "derived from config.json: <keys>".

The file is data (study/hfjson.py reads it): every value read is checked for its type and range before it is
used (a whole number is a JSON integer: not true, not 2.0), and refused as `<file>: <key> = <value>;
allowed: ...` with the value shown cut short."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from prophet_model.errors import UserError
from prophet_model.study.catalog import MAX_NAME_CHARS
from prophet_model.study.hfjson import CONFIG, WIDTH, display, printable, show, whole
from prophet_model.study.hfjson import parse_config as parse_config  # commands/addmodel reads it from here

FAMILIES = {  # model_type -> (architecture class, keys it needs)
    "mixtral": (
        "MixtralForCausalLM",
        ("num_local_experts", "num_experts_per_tok", "intermediate_size", "num_key_value_heads"),
    ),
    "qwen2_moe": (
        "Qwen2MoeForCausalLM",
        (
            "num_experts",
            "num_experts_per_tok",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
            "num_key_value_heads",
        ),
    ),
    "qwen3_moe": (
        "Qwen3MoeForCausalLM",
        ("num_experts", "num_experts_per_tok", "moe_intermediate_size", "num_key_value_heads"),
    ),
    "olmoe": ("OlmoeForCausalLM", ("num_experts", "num_experts_per_tok", "intermediate_size", "num_key_value_heads")),
    "deepseek_v2": (
        "DeepseekV2ForCausalLM",
        (
            "n_routed_experts",
            "num_experts_per_tok",
            "moe_intermediate_size",
            "n_shared_experts",
            "kv_lora_rank",
            "qk_rope_head_dim",
            "qk_nope_head_dim",
            "v_head_dim",
            "first_k_dense_replace",
        ),
    ),
    "deepseek_v3": (
        "DeepseekV3ForCausalLM",
        (
            "n_routed_experts",
            "num_experts_per_tok",
            "moe_intermediate_size",
            "n_shared_experts",
            "kv_lora_rank",
            "qk_rope_head_dim",
            "qk_nope_head_dim",
            "v_head_dim",
            "first_k_dense_replace",
        ),
    ),
}
COMMON = ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size")
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}
MAX_NAME = MAX_NAME_CHARS  # characters of the display name (a hub id is at most 96)
QUANT_BITS = {"gptq": (2, 3, 4, 8), "awq": (4,)}  # quant_method -> the `bits` allowed
QUANT_METHODS = ("fp8", "gptq", "awq", "bitsandbytes")


def family(cfg: dict, where: str) -> str:
    """The family of a config.json, or a UserError naming what it lacks."""
    mt = cfg.get("model_type")
    archs = cfg.get("architectures")
    archs = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
    by_arch = {arch: f for f, (arch, _) in FAMILIES.items()}
    fam = mt if isinstance(mt, str) and mt in FAMILIES else next((by_arch[a] for a in archs if a in by_arch), None)
    if fam is None:
        lacking = {f: [k for k in (*COMMON, *keys) if k not in cfg] for f, (_, keys) in FAMILIES.items()}
        near = min(lacking, key=lambda f: len(lacking[f]))
        said = f"model_type {show(mt)}" + (f" ({printable(', '.join(archs), 120)})" if archs else "")
        raise UserError(
            f"{where}: {said} is not an MoE architecture this reader knows; allowed: model_type one of "
            f"{', '.join(FAMILIES)} ({', '.join(a for a, _ in FAMILIES.values())}). The nearest, {near}, needs the "
            f"keys {', '.join(lacking[near]) or '(none)'}, which this file lacks"
        )
    missing = [k for k in (*COMMON, *FAMILIES[fam][1]) if cfg.get(k) is None]
    if missing:
        raise UserError(
            f"{where}: a {fam} config.json needs the keys {', '.join(missing)}, which this file lacks "
            "(or has as null); allowed: the model's published config.json"
        )
    return fam


def _bytes_per_param(cfg: dict, where: str) -> tuple[float, str]:
    """Bytes per weight: quantization_config's where there is one, else torch_dtype's (dtype's)."""
    if cfg.get("quantization_config") is not None:
        return _quantized(cfg["quantization_config"], where)
    key = "torch_dtype" if cfg.get("torch_dtype") is not None or cfg.get("dtype") is None else "dtype"
    dtype = cfg.get(key)
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise UserError(
            f"{where}: {key} {'missing (or null)' if dtype is None else '= ' + show(dtype)}; allowed: "
            f"{', '.join(DTYPE_BYTES)}, or a quantization_config with quant_method "
            f"{', '.join(QUANT_METHODS)}"
        )
    return DTYPE_BYTES[dtype], f"{key} {dtype} ({DTYPE_BYTES[dtype]} bytes per parameter)"


def _quantized(q: Any, where: str) -> tuple[float, str]:
    """Bytes per weight of a quantization_config: fp8 1, gptq and awq `bits` / 8, bitsandbytes 0.5 (4-bit)
    or 1 (8-bit); the scales, zero points and unquantised layers (embeddings, norms) are ignored."""
    methods = f"{', '.join(QUANT_METHODS)} (or no quantization_config: the weights in torch_dtype)"
    if not isinstance(q, dict):
        raise UserError(f"{where}: quantization_config = {show(q)}; allowed: an object whose quant_method is {methods}")
    method = q.get("quant_method")
    if not isinstance(method, str) or method not in QUANT_METHODS:
        raise UserError(f"{where}: quantization_config.quant_method = {show(method)}; allowed: {methods}")
    if method == "fp8":
        fmt, block = q.get("fmt"), q.get("weight_block_size")
        if fmt is not None and fmt not in ("e4m3", "e5m2"):
            raise UserError(f"{where}: quantization_config.fmt = {show(fmt)}; allowed: e4m3, e5m2 (or none)")
        if block is not None and not (
            isinstance(block, list) and len(block) == 2 and all(type(b) is int and 1 <= b <= WIDTH for b in block)
        ):
            raise UserError(
                f"{where}: quantization_config.weight_block_size = {show(block)}; allowed: two whole "
                f"numbers from 1 to {WIDTH:,}, e.g. [128, 128] (or none)"
            )
        return 1, "quantization_config quant_method 'fp8' (fp8 weights: 1 byte)"
    if method in QUANT_BITS:
        bits = q.get("bits")
        if type(bits) is not int or bits not in QUANT_BITS[method]:
            allowed = ", ".join(map(str, QUANT_BITS[method]))
            raise UserError(
                f"{where}: quantization_config.bits = {show(bits)}; allowed: {allowed} (quant_method {method})"
            )
    else:  # bitsandbytes
        four, eight = q.get("load_in_4bit", False), q.get("load_in_8bit", False)
        if not (isinstance(four, bool) and isinstance(eight, bool)) or four == eight:
            raise UserError(
                f"{where}: quantization_config.load_in_4bit = {show(four)}, load_in_8bit = "
                f"{show(eight)}; allowed: exactly one of them true"
            )
        bits = 4 if four else 8
    size = bits / 8
    b = int(size) if size.is_integer() else size
    return b, (
        f"quantization_config quant_method {method!r}, {bits}-bit weights ({b} bytes per parameter; scales, "
        "zero points and unquantised embeddings and norms ignored)"
    )


def _moe_layers(cfg: dict, fam: str, n: int, where: str) -> tuple[list[int], str]:
    """Indices of the MoE layers and the keys that say so."""
    if fam in ("mixtral", "olmoe"):
        return list(range(n)), "num_hidden_layers (every layer sparse)"
    if fam.startswith("qwen"):
        step, only = whole(cfg, "decoder_sparse_step", where, default=1), cfg.get("mlp_only_layers")
        only = [] if only is None else only
        if not (isinstance(only, list) and all(type(i) is int and 0 <= i < n for i in only)) or len(set(only)) < len(
            only
        ):
            raise UserError(
                f"{where}: mlp_only_layers = {show(only)}; allowed: a list of distinct layer indices, "
                f"whole numbers from 0 to num_hidden_layers - 1 = {n - 1} (or none)"
            )
        dense = set(only)
        return [i for i in range(n) if i not in dense and (i + 1) % step == 0], (
            f"num_hidden_layers, decoder_sparse_step {step}, mlp_only_layers {only}"
        )
    first, freq = whole(cfg, "first_k_dense_replace", where), whole(cfg, "moe_layer_freq", where, default=1)
    return [i for i in range(n) if i >= first and i % freq == 0], (
        f"num_hidden_layers, first_k_dense_replace {first}, moe_layer_freq {freq}"
    )


def model_name(cfg: dict, fam: str, where: str) -> str:
    """The display name: _name_or_path (any text, kept as data and made a display name by `display`), else the
    architecture's."""
    name = cfg.get("_name_or_path")
    if isinstance(name, str) and not name.strip():
        name = None
    if name is None:
        return FAMILIES[fam][0].removesuffix("ForCausalLM")
    if not isinstance(name, str) or len(display(name)) > MAX_NAME:
        raise UserError(
            f"{where}: _name_or_path = {show(name)}; allowed: the model's name, text of at most "
            f"{MAX_NAME} characters once escaped (or none: the architecture's name)"
        )
    return display(name)


def entry_from_config(cfg: Any, where: str) -> tuple[dict, str]:
    """(the catalog entry, its display name) from a parsed config.json."""
    if not isinstance(cfg, dict):
        raise UserError(f"{where}: not a JSON object but {show(cfg)}; allowed: {CONFIG}")
    fam = family(cfg, where)
    n, h, heads, vocab = (whole(cfg, k, where) for k in COMMON)
    src = "derived from config.json: "
    e: dict[str, Any] = {}
    s: dict[str, str] = {}

    def put(key: str, value: Any, how: str) -> None:
        e[key], s[key] = value, src + how

    name = model_name(cfg, fam, where)
    put("num_layers", n, f"num_hidden_layers {n}")
    moe, how = _moe_layers(cfg, fam, n, where)
    if not moe:
        raise UserError(f"{where}: no layer is an MoE layer ({how}); allowed: a config.json of an MoE model")
    put("num_moe_layers", len(moe), how)
    put("hidden_size", h, f"hidden_size {h}")
    expert_key = {"mixtral": "intermediate_size", "olmoe": "intermediate_size"}.get(fam, "moe_intermediate_size")
    ffn = whole(cfg, expert_key, where)
    put("expert_ffn_size", ffn, f"{expert_key} {ffn}")
    count_key = {
        "mixtral": "num_local_experts",
        "deepseek_v2": "n_routed_experts",
        "deepseek_v3": "n_routed_experts",
    }.get(fam, "num_experts")
    experts, top_k = whole(cfg, count_key, where), whole(cfg, "num_experts_per_tok", where)
    if top_k > experts:
        raise UserError(
            f"{where}: num_experts_per_tok = {top_k}; allowed: a whole number from 1 to {count_key} "
            f"{experts} (the experts each token picks among the routed ones)"
        )
    put("num_experts", experts, f"{count_key} {experts}")
    put("top_k", top_k, f"num_experts_per_tok {top_k}")
    _shared(cfg, fam, ffn, put, where)
    dense = n - len(moe)
    if dense:
        size = whole(cfg, "intermediate_size", where)
        put("dense_ffn_size", size, f"intermediate_size {size} ({dense} dense layers: {how})")
    else:
        put("dense_ffn_size", 0, f"no dense FFN layers ({how})")
    if fam.startswith("deepseek"):
        _mla(cfg, h, heads, put, where)
    else:
        _gqa(cfg, h, heads, put, where)
    put("vocab_size", vocab, f"vocab_size {vocab}")
    b, b_how = _bytes_per_param(cfg, where)
    put("bytes_per_param", b, b_how)
    order = (
        "num_layers",
        "num_moe_layers",
        "hidden_size",
        "expert_ffn_size",
        "num_experts",
        "top_k",
        "num_shared_experts",
        "shared_expert_ffn_size",
        "dense_ffn_size",
        "attention_params_per_layer",
        "kv_elements_per_token_per_layer",
        "vocab_size",
        "bytes_per_param",
        "num_attention_heads",
        "num_kv_heads",
        "head_dim",
        "attention",
    )
    return {"name": name, **{k: e[k] for k in order}, "sources": {k: s[k] for k in order}}, name


def _shared(cfg: dict, fam: str, ffn: int, put: Callable[[str, Any, str], None], where: str) -> None:
    """The shared experts: qwen2_moe's one of shared_expert_intermediate_size, DeepSeek's n_shared_experts."""
    size = whole(cfg, "shared_expert_intermediate_size", where) if fam == "qwen2_moe" else 0
    count = whole(cfg, "n_shared_experts", where) if fam.startswith("deepseek") else 0
    if size > 0:
        put("num_shared_experts", 1, f"shared_expert_intermediate_size {size} > 0 (one shared expert MLP)")
        put("shared_expert_ffn_size", size, f"shared_expert_intermediate_size {size}")
    elif count > 0:
        put("num_shared_experts", count, f"n_shared_experts {count}")
        put("shared_expert_ffn_size", ffn, f"moe_intermediate_size {ffn} (each shared expert)")
    else:
        put("num_shared_experts", 0, f"model_type {fam}: no shared expert")
        put("shared_expert_ffn_size", 0, f"model_type {fam}: no shared expert")


def _gqa(cfg: dict, h: int, heads: int, put: Callable[[str, Any, str], None], where: str) -> None:
    """Grouped-query attention's weights and cache: num_key_value_heads dividing the query heads."""
    kv = whole(cfg, "num_key_value_heads", where)
    if heads % kv:
        divisors = ", ".join(str(k) for k in range(1, heads + 1) if heads % k == 0)
        raise UserError(
            f"{where}: num_key_value_heads = {kv}; allowed: a divisor of num_attention_heads {heads} "
            f"(each KV head serves a whole group of query heads): {divisors}"
        )
    d = whole(cfg, "head_dim", where, default=0) or h // heads
    if not d:
        raise UserError(
            f"{where}: head_dim missing (or null) and hidden_size {h} / num_attention_heads {heads} "
            f"rounds to 0; allowed: a head_dim, or num_attention_heads at most hidden_size"
        )
    d_how = f"head_dim {d}" if cfg.get("head_dim") else f"hidden_size {h} / num_attention_heads {heads} = {d}"
    put(
        "attention_params_per_layer",
        2 * h * d * (heads + kv),
        f"2 x hidden_size {h} x head_dim {d} x (num_attention_heads {heads} + num_key_value_heads {kv}): Q, K, V "
        "and O projections (biases and norms ignored)",
    )
    put("kv_elements_per_token_per_layer", 2 * kv * d, f"2 (K, V) x num_key_value_heads {kv} x head_dim {d}")
    put("num_attention_heads", heads, f"num_attention_heads {heads}")
    put("num_kv_heads", kv, f"num_key_value_heads {kv}")
    put("head_dim", d, d_how)
    put("attention", "gqa", f"num_key_value_heads {kv} of num_attention_heads {heads} (grouped-query attention)")


def _mla(cfg: dict, h: int, heads: int, put: Callable[[str, Any, str], None], where: str) -> None:
    """Multi-head latent attention's weights and cache (DeepSeek-V2/V3)."""
    rank, rope, nope, v = (
        whole(cfg, k, where) for k in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
    )
    q_rank = whole(cfg, "q_lora_rank", where, default=0)
    q = h * q_rank + q_rank * heads * (nope + rope) if q_rank else h * heads * (nope + rope)
    params = q + h * (rank + rope) + rank * heads * (nope + v) + heads * v * h
    q_how = (
        f"W_q hidden_size {h} x q_lora_rank {q_rank} + q_lora_rank x num_attention_heads {heads} x "
        f"(qk_nope_head_dim {nope} + qk_rope_head_dim {rope})"
        if q_rank
        else f"W_q hidden_size {h} x num_attention_heads {heads} x (qk_nope_head_dim {nope} + qk_rope_head_dim {rope})"
    )
    put(
        "attention_params_per_layer",
        params,
        f"multi-head latent attention: {q_how} + W_kv_a hidden_size x (kv_lora_rank {rank} + qk_rope_head_dim) + "
        f"W_kv_b kv_lora_rank x heads x (qk_nope_head_dim + v_head_dim {v}) + W_o heads x v_head_dim x hidden_size "
        f"= {params:,}",
    )
    put(
        "kv_elements_per_token_per_layer",
        rank + rope,
        f"MLA caches the compressed latent: kv_lora_rank {rank} + qk_rope_head_dim {rope} = {rank + rope}",
    )
    put("num_attention_heads", heads, f"num_attention_heads {heads}")
    put(
        "num_kv_heads", 1, f"MLA: one cached latent (kv_lora_rank {rank} + qk_rope_head_dim {rope}) shared by the heads"
    )
    put(
        "head_dim",
        rank + rope,
        f"with the absorbed MLA projections each head attends over the {rank + rope}-element "
        f"latent (kv_lora_rank {rank} + qk_rope_head_dim {rope})",
    )
    put("attention", "mla", f"kv_lora_rank {rank} (multi-head latent attention, DeepSeek-V2 report arXiv 2405.04434)")


def default_key(name: str) -> str:
    """A catalog key from a model name: lower case, letters, digits and '_', a string in YAML (a config's
    `model: null` would not name it)."""
    key = re.sub(r"[^a-z0-9]+", "_", name.rsplit("/", 1)[-1].lower()).strip("_") or "model"
    return key if isinstance(yaml.safe_load(key), str) else f"{key}_model"  # not null, true, 1e3: YAML's other types
