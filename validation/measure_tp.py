"""The attention parts of the two-GPU validation (measure_multi): the attention block of a catalog model
(norm, QKV projection, the new token's K and V written into the cache, attention over the cache, output
projection) for this GPU's share of the heads, and `tp2_attention`: every layer's block on one GPU with B
sequences (tp = 1) beside TP=2 (2B sequences, half the heads on each GPU, an all-reduce of the output per
layer) and those all-reduces alone, each in a CUDA graph. `c` is measure_multi.Ctx."""

from __future__ import annotations

import math

from validation import multi_plan as plan
from validation.catalog_models import load_models
from validation.timing import log, summarize

TP_KERNELS_PER_LAYER = 8  # norm, QKV GEMM, two KV-cache writes, attention, output GEMM, residual add, cast


def small(m: dict) -> dict:
    """A model shrunk for --quick (as measure_decode does)."""
    return {**m, "hidden_size": 128, "expert_ffn_size": 64, "num_layers": 2, "num_moe_layers": 2,
            "shared_expert_ffn_size": min(m["shared_expert_ffn_size"], 64), "num_experts": min(m["num_experts"], 8),
            "top_k": min(m["top_k"], 2), "num_attention_heads": 4, "num_kv_heads": min(m["num_kv_heads"], 4),
            "head_dim": 32}  # fmt: skip


def attention_weights(c, m: dict, layers: int, batch: int, context: int, tp: int) -> list[dict]:
    """Per layer: norm, QKV and output projections for this GPU's 1/tp of the heads, and the KV cache
    of `batch` sequences."""
    torch, dt = c.torch, c.torch.bfloat16
    h, hd = m["hidden_size"], m["head_dim"]
    nq, nkv = m["num_attention_heads"] // tp, max(1, m["num_kv_heads"] // tp)

    def w(*shape):
        return torch.randn(*shape, dtype=dt, device=c.device).mul_(1 / math.sqrt(shape[-1]))  # in place: no second copy

    return [{"n1": torch.ones(h, dtype=dt, device=c.device), "qkv": w((nq + 2 * nkv) * hd, h), "o": w(h, nq * hd),
             "k": torch.randn(batch, nkv, context, hd, dtype=dt, device=c.device),
             "v": torch.randn(batch, nkv, context, hd, dtype=dt, device=c.device), "nq": nq, "nkv": nkv}
            for _ in range(layers)]  # fmt: skip


def attention(c, lay: dict, x, hd: int):
    """One layer's attention block on x (B, h): the output projection's (partial, with TP) result."""
    import torch.nn.functional as F

    b, nq, nkv = x.shape[0], lay["nq"], lay["nkv"]
    r = F.rms_norm(x, (x.shape[1],), lay["n1"])
    qkv = r @ lay["qkv"].t()
    q = qkv[:, : nq * hd].view(b, nq, 1, hd)
    kc, vc = lay["k"][:b], lay["v"][:b]
    kc[:, :, -1].copy_(qkv[:, nq * hd : (nq + nkv) * hd].view(b, nkv, hd))
    vc[:, :, -1].copy_(qkv[:, (nq + nkv) * hd :].view(b, nkv, hd))
    a = F.scaled_dot_product_attention(q, kc, vc, enable_gqa=nkv != nq)
    return a.reshape(b, nq * hd) @ lay["o"].t()


def bench_tp2_attention(c) -> list[dict]:
    torch, rows = c.torch, []
    for key in plan.TP_MODELS:
        m = small(load_models()[key]) if c.quick else load_models()[key]
        batches, context = (plan.quick_points()["tp_batches"], 64) if c.quick else (plan.TP_BATCHES, plan.TP_CONTEXT)
        h, L = m["hidden_size"], m["num_layers"]
        for tp in (1, 2):
            weights = attention_weights(c, m, L, tp * max(batches), context, tp)
            for batch in batches:
                x = torch.randn(tp * batch, h, dtype=torch.bfloat16, device=c.device)

                def block(x=x, weights=weights, tp=tp) -> None:
                    y = x
                    for lay in weights:
                        part = attention(c, lay, y, m["head_dim"])
                        if tp > 1:
                            c.dist.all_reduce(part)
                        y = y + part

                def reduces(x=x) -> None:
                    for _ in range(L):
                        c.dist.all_reduce(x)

                c.dist.barrier()
                todo = (
                    [("tp1", block if c.rank == 0 else None)] if tp == 1 else [("tp2", block), ("allreduce", reduces)]
                )
                for part, fn in todo:
                    s = summarize(c.samples(c.graph(fn) if fn else None, 1, 3, 10 if c.quick else 20))
                    if c.rank == 0:
                        rows.append({**c.base("tp2_attention"), "part": part, "model": key, "layers": L,
                                     "batch": batch, "context": context, "tp": tp, "bytes": tp * batch * h * 2, **s})  # fmt: skip
                        log(f"tp2_attention {key} {part} B={batch}/GPU: {s['median_s'] * 1e3:.3f} ms")
            del weights
            if c.cuda:
                torch.cuda.empty_cache()
    return rows
