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
hidden. Every value's source is "derived from config.json: <keys>"."""

from __future__ import annotations

import re
from typing import Any

from prophet_model.errors import UserError

FAMILIES = {  # model_type -> (architecture class, keys it needs)
    "mixtral": ("MixtralForCausalLM", ("num_local_experts", "num_experts_per_tok", "intermediate_size",
                                       "num_key_value_heads")),
    "qwen2_moe": ("Qwen2MoeForCausalLM", ("num_experts", "num_experts_per_tok", "moe_intermediate_size",
                                          "shared_expert_intermediate_size", "num_key_value_heads")),
    "qwen3_moe": ("Qwen3MoeForCausalLM", ("num_experts", "num_experts_per_tok", "moe_intermediate_size",
                                          "num_key_value_heads")),
    "olmoe": ("OlmoeForCausalLM", ("num_experts", "num_experts_per_tok", "intermediate_size", "num_key_value_heads")),
    "deepseek_v2": ("DeepseekV2ForCausalLM", ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
                                              "n_shared_experts", "kv_lora_rank", "qk_rope_head_dim",
                                              "qk_nope_head_dim", "v_head_dim", "first_k_dense_replace")),
    "deepseek_v3": ("DeepseekV3ForCausalLM", ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
                                              "n_shared_experts", "kv_lora_rank", "qk_rope_head_dim",
                                              "qk_nope_head_dim", "v_head_dim", "first_k_dense_replace")),
}  # fmt: skip
COMMON = ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size")
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1}


def family(cfg: dict, where: str) -> str:
    """The family of a config.json, or a UserError naming what it lacks."""
    mt = cfg.get("model_type")
    archs = cfg.get("architectures") if isinstance(cfg.get("architectures"), list) else []
    by_arch = {arch: f for f, (arch, _) in FAMILIES.items()}
    fam = mt if mt in FAMILIES else next((by_arch[a] for a in archs if a in by_arch), None)
    if fam is None:
        lacking = {f: [k for k in (*COMMON, *keys) if k not in cfg] for f, (_, keys) in FAMILIES.items()}
        near = min(lacking, key=lambda f: len(lacking[f]))
        said = f"model_type {mt!r}" + (f" ({', '.join(map(str, archs))})" if archs else "")
        raise UserError(
            f"{where}: {said} is not an MoE architecture this reader knows; allowed: model_type one of "
            f"{', '.join(FAMILIES)} ({', '.join(a for a, _ in FAMILIES.values())}). The nearest, {near}, needs the "
            f"keys {', '.join(lacking[near]) or '(none)'}, which this file lacks"
        )
    missing = [k for k in (*COMMON, *FAMILIES[fam][1]) if cfg.get(k) is None]
    if missing:
        raise UserError(f"{where}: a {fam} config.json needs the keys {', '.join(missing)}, which this file lacks "
                        "(or has as null); allowed: the model's published config.json")  # fmt: skip
    return fam


def _int(cfg: dict, key: str, where: str) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise UserError(f"{where}: {key} is {v!r}; allowed: a whole number >= 0")
    return v


def _bytes_per_param(cfg: dict, where: str) -> tuple[float, str]:
    q = cfg.get("quantization_config")
    if isinstance(q, dict) and (q.get("quant_method") == "fp8" or str(q.get("fmt", "")).startswith("e4m3")):
        return 1, f"quantization_config quant_method {q.get('quant_method')!r} (fp8 weights: 1 byte)"
    dtype = cfg.get("torch_dtype", cfg.get("dtype"))
    if dtype not in DTYPE_BYTES:
        raise UserError(f"{where}: torch_dtype is {dtype!r}; allowed: {', '.join(DTYPE_BYTES)} (or a "
                        "quantization_config with quant_method fp8)")  # fmt: skip
    return DTYPE_BYTES[dtype], f"torch_dtype {dtype} ({DTYPE_BYTES[dtype]} bytes per parameter)"


def _moe_layers(cfg: dict, fam: str, n: int) -> tuple[list[int], str]:
    """Indices of the MoE layers and the keys that say so."""
    if fam in ("mixtral", "olmoe"):
        return list(range(n)), "num_hidden_layers (every layer sparse)"
    if fam.startswith("qwen"):
        step, only = cfg.get("decoder_sparse_step", 1) or 1, cfg.get("mlp_only_layers") or []
        return [i for i in range(n) if i not in only and (i + 1) % step == 0], (
            f"num_hidden_layers, decoder_sparse_step {step}, mlp_only_layers {only}"
        )
    first, freq = cfg["first_k_dense_replace"], cfg.get("moe_layer_freq", 1) or 1
    return [i for i in range(n) if i >= first and i % freq == 0], (
        f"num_hidden_layers, first_k_dense_replace {first}, moe_layer_freq {freq}"
    )


def entry_from_config(cfg: Any, where: str) -> tuple[dict, str]:
    """(the catalog entry, its display name) from a parsed config.json."""
    if not isinstance(cfg, dict):
        raise UserError(f"{where}: not a JSON object; allowed: a HuggingFace config.json")
    fam = family(cfg, where)
    n, h, heads, vocab = (_int(cfg, k, where) for k in COMMON)
    src = "derived from config.json: "
    e: dict[str, Any] = {}
    s: dict[str, str] = {}

    def put(key: str, value: Any, how: str) -> None:
        e[key], s[key] = value, src + how

    name = str(cfg.get("_name_or_path") or FAMILIES[fam][0].removesuffix("ForCausalLM"))
    put("num_layers", n, f"num_hidden_layers {n}")
    moe, how = _moe_layers(cfg, fam, n)
    if not moe:
        raise UserError(f"{where}: no layer is an MoE layer ({how}); allowed: a config.json of an MoE model")
    put("num_moe_layers", len(moe), how)
    put("hidden_size", h, f"hidden_size {h}")
    expert_key = {"mixtral": "intermediate_size", "olmoe": "intermediate_size"}.get(fam, "moe_intermediate_size")
    put("expert_ffn_size", _int(cfg, expert_key, where), f"{expert_key} {cfg[expert_key]}")
    count_key = {"mixtral": "num_local_experts", "deepseek_v2": "n_routed_experts",
                 "deepseek_v3": "n_routed_experts"}.get(fam, "num_experts")  # fmt: skip
    put("num_experts", _int(cfg, count_key, where), f"{count_key} {cfg[count_key]}")
    put("top_k", _int(cfg, "num_experts_per_tok", where), f"num_experts_per_tok {cfg['num_experts_per_tok']}")
    if fam == "qwen2_moe" and cfg["shared_expert_intermediate_size"] > 0:
        size = _int(cfg, "shared_expert_intermediate_size", where)
        put("num_shared_experts", 1, f"shared_expert_intermediate_size {size} > 0 (one shared expert MLP)")
        put("shared_expert_ffn_size", size, f"shared_expert_intermediate_size {size}")
    elif fam.startswith("deepseek") and cfg["n_shared_experts"] > 0:
        put("num_shared_experts", _int(cfg, "n_shared_experts", where), f"n_shared_experts {cfg['n_shared_experts']}")
        put("shared_expert_ffn_size", cfg["moe_intermediate_size"],
            f"moe_intermediate_size {cfg['moe_intermediate_size']} (each shared expert)")  # fmt: skip
    else:
        put("num_shared_experts", 0, f"model_type {fam}: no shared expert")
        put("shared_expert_ffn_size", 0, f"model_type {fam}: no shared expert")
    dense = n - len(moe)
    if dense:
        put("dense_ffn_size", _int(cfg, "intermediate_size", where),
            f"intermediate_size {cfg.get('intermediate_size')} ({dense} dense layers: {how})")  # fmt: skip
    else:
        put("dense_ffn_size", 0, f"no dense FFN layers ({how})")
    if fam.startswith("deepseek"):
        _mla(cfg, h, heads, put, where)
    else:
        kv = _int(cfg, "num_key_value_heads", where)
        d = cfg.get("head_dim") or h // heads
        d_how = f"head_dim {d}" if cfg.get("head_dim") else f"hidden_size {h} / num_attention_heads {heads} = {d}"
        put("attention_params_per_layer", 2 * h * d * (heads + kv),
            f"2 x hidden_size {h} x head_dim {d} x (num_attention_heads {heads} + num_key_value_heads {kv}): Q, K, V "
            "and O projections (biases and norms ignored)")  # fmt: skip
        put("kv_elements_per_token_per_layer", 2 * kv * d, f"2 (K, V) x num_key_value_heads {kv} x head_dim {d}")
        put("num_attention_heads", heads, f"num_attention_heads {heads}")
        put("num_kv_heads", kv, f"num_key_value_heads {kv}")
        put("head_dim", d, d_how)
        put("attention", "gqa", f"num_key_value_heads {kv} of num_attention_heads {heads} (grouped-query attention)")
    put("vocab_size", vocab, f"vocab_size {vocab}")
    b, b_how = _bytes_per_param(cfg, where)
    put("bytes_per_param", b, b_how)
    order = ("num_layers", "num_moe_layers", "hidden_size", "expert_ffn_size", "num_experts", "top_k",
             "num_shared_experts", "shared_expert_ffn_size", "dense_ffn_size", "attention_params_per_layer",
             "kv_elements_per_token_per_layer", "vocab_size", "bytes_per_param", "num_attention_heads",
             "num_kv_heads", "head_dim", "attention")  # fmt: skip
    return {"name": name, **{k: e[k] for k in order}, "sources": {k: s[k] for k in order}}, name


def _mla(cfg: dict, h: int, heads: int, put, where: str) -> None:
    rank, rope, nope, v = (_int(cfg, k, where) for k in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
                                                         "v_head_dim"))  # fmt: skip
    q_rank = cfg.get("q_lora_rank")
    q = h * q_rank + q_rank * heads * (nope + rope) if q_rank else h * heads * (nope + rope)
    params = q + h * (rank + rope) + rank * heads * (nope + v) + heads * v * h
    q_how = (f"W_q hidden_size {h} x q_lora_rank {q_rank} + q_lora_rank x num_attention_heads {heads} x "
             f"(qk_nope_head_dim {nope} + qk_rope_head_dim {rope})" if q_rank else
             f"W_q hidden_size {h} x num_attention_heads {heads} x (qk_nope_head_dim {nope} + qk_rope_head_dim {rope})")  # fmt: skip
    put("attention_params_per_layer", params,
        f"multi-head latent attention: {q_how} + W_kv_a hidden_size x (kv_lora_rank {rank} + qk_rope_head_dim) + "
        f"W_kv_b kv_lora_rank x heads x (qk_nope_head_dim + v_head_dim {v}) + W_o heads x v_head_dim x hidden_size "
        f"= {params:,}")  # fmt: skip
    put(
        "kv_elements_per_token_per_layer",
        rank + rope,
        f"MLA caches the compressed latent: kv_lora_rank {rank} + qk_rope_head_dim {rope} = {rank + rope}",
    )
    put("num_attention_heads", heads, f"num_attention_heads {heads}")
    put(
        "num_kv_heads", 1, f"MLA: one cached latent (kv_lora_rank {rank} + qk_rope_head_dim {rope}) shared by the heads"
    )
    put("head_dim", rank + rope, f"with the absorbed MLA projections each head attends over the {rank + rope}-element "
        f"latent (kv_lora_rank {rank} + qk_rope_head_dim {rope})")  # fmt: skip
    put("attention", "mla", f"kv_lora_rank {rank} (multi-head latent attention, DeepSeek-V2 report arXiv 2405.04434)")


def default_key(name: str) -> str:
    """A catalog key from a model name: lower case, letters, digits and '_'."""
    key = re.sub(r"[^a-z0-9]+", "_", name.rsplit("/", 1)[-1].lower()).strip("_")
    return key or "model"
