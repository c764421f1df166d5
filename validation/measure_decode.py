"""A whole decode step on one GPU (`measure.py --parts decode`), as serving engines run it, for every
catalog model whose bf16 weights and KV cache fit the GPU.

Per layer: RMSNorm; the Q, K and V projections as one GEMM; the new token's K and V written into the
KV cache; attention of each query head over the cache (grouped-query where the model has fewer KV
heads: `scaled_dot_product_attention(enable_gqa=True)`); the output projection and residual add;
RMSNorm; the router GEMM, top-k and softmax; the routed experts as two grouped GEMMs
(`torch._grouped_mm`, gate and up fused, then down) over the tokens sorted by expert; shared experts
(one fused gate/up GEMM and a down GEMM) and dense FFN layers where the model has them; the weighted
combine and residual add. Then the final RMSNorm and the LM head. Random bf16 weights (routing is
then close to uniform), a context of CONTEXT tokens per sequence, batch sizes BATCHES.

Timed: the whole step captured once as a CUDA graph, replayed REPS times after WARM replays; each
replay is one step (median, p10, p90). Also written: the step's kernels (name, count, GPU time) from
the PyTorch profiler over one eager step at batches PROFILE_BATCHES, for reading where time goes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

BATCHES = [1, 8, 32, 64]
CONTEXT = 2048
WARM, REPS = 5, 30
PROFILE_BATCHES = (1, 8, 64)
MEMORY_SHARE = 0.9  # of the GPU's memory, for weights + KV cache + activations

DECODE_FIELDS = [
    "machine", "benchmark", "gpu", "model", "batch", "context", "layers", "weight_bytes", "kv_bytes",
    "reps", "median_s", "p10_s", "p90_s", "min_s", "max_s",
]  # fmt: skip
KERNEL_FIELDS = ["machine", "gpu", "model", "batch", "kernel", "count", "gpu_s"]


def weight_params(m: Mapping) -> int:
    """Parameters the step reads: attention, routers, routed and shared experts, dense FFN layers,
    the final norm and the LM head (the embedding is a row lookup and left out)."""
    h, L, Lm = m["hidden_size"], m["num_layers"], m["num_moe_layers"]
    nq, nkv, hd = m["num_attention_heads"], m["num_kv_heads"], m["head_dim"]
    attn = h * (nq + 2 * nkv) * hd + nq * hd * h
    moe = (
        m["num_experts"] * 3 * h * m["expert_ffn_size"] + m["num_shared_experts"] * 3 * h * m["shared_expert_ffn_size"]
    )
    return (
        L * (attn + 2 * h)
        + Lm * (moe + h * m["num_experts"])
        + (L - Lm) * 3 * h * m["dense_ffn_size"]
        + h
        + m["vocab_size"] * h
    )


def kv_bytes(m: Mapping, batch: int, context: int) -> int:
    """K and V of every layer for `batch` sequences of `context` tokens, bf16."""
    return 2 * m["num_layers"] * batch * context * m["num_kv_heads"] * m["head_dim"] * 2


def fits(m: Mapping, batch: int, context: int, gpu_bytes: float) -> bool:
    return m["bytes_per_param"] == 2 and weight_params(m) * 2 + kv_bytes(m, batch, context) < MEMORY_SHARE * gpu_bytes


def run(device, machine: str, gpu: str, quick: bool, log) -> tuple[list[dict], list[dict]]:
    import torch

    from validation.catalog_models import load_models
    from validation.timing import Timer, cuda_graph, summarize

    cuda = device.type == "cuda"
    total = torch.cuda.get_device_properties(device).total_memory if cuda else 64e9
    batches, context, warm, reps = (BATCHES[:2], 64, 1, 3) if quick else (BATCHES, CONTEXT, WARM, REPS)
    rows, kernels = [], []
    for key, m in load_models().items():
        if quick:
            m = {**m, "hidden_size": 128, "expert_ffn_size": 64, "num_layers": 2, "num_moe_layers": 2,
                 "vocab_size": 256, "shared_expert_ffn_size": min(m["shared_expert_ffn_size"], 128),
                 "dense_ffn_size": min(m["dense_ffn_size"], 128), "num_experts": min(m["num_experts"], 16),
                 "top_k": min(m["top_k"], 4), "num_attention_heads": 4, "num_kv_heads": min(m["num_kv_heads"], 4),
                 "head_dim": 32, "bytes_per_param": 2}  # fmt: skip
        if not fits(m, max(batches), context, total):
            log(
                f"decode {key}: skipped (bf16 weights {weight_params(m) * 2 / 1e9:.0f} GB + KV cache do not fit, or not bf16)"
            )
            continue
        step_of = build(torch, device, m, max(batches), context)
        for batch in batches:
            x = torch.randn(batch, m["hidden_size"], dtype=torch.bfloat16, device=device)

            def step(x=x, batch=batch, run=step_of) -> None:
                run(x, batch)

            replay = cuda_graph(step) if cuda else step
            s = summarize(Timer(device).samples(replay, warm, reps))
            rows.append({"machine": machine, "benchmark": "decode_step", "gpu": gpu, "model": key, "batch": batch,
                         "context": context, "layers": m["num_layers"], "weight_bytes": weight_params(m) * 2,
                         "kv_bytes": kv_bytes(m, batch, context), **s})  # fmt: skip
            log(f"decode {key} B={batch} ctx={context}: {s['median_s'] * 1e3:.3f} ms")
            if batch in PROFILE_BATCHES or quick:
                kernels += [{"machine": machine, "gpu": gpu, "model": key, "batch": batch, **k}
                            for k in profile(torch, step, cuda)]  # fmt: skip
            del replay, step
        step_of = None  # the model's weights go before the next model's are made
        if cuda:
            torch.cuda.empty_cache()
    return rows, kernels


def build(torch, device, m: Mapping, max_batch: int, context: int):
    """Random weights and a KV cache; returns step(x, batch) that runs one decode step in place."""
    import torch.nn.functional as F

    dt = torch.bfloat16
    h, L, Lm = m["hidden_size"], m["num_layers"], m["num_moe_layers"]
    nq, nkv, hd = m["num_attention_heads"], m["num_kv_heads"], m["head_dim"]
    E, k, f = m["num_experts"], m["top_k"], m["expert_ffn_size"]
    fs = m["num_shared_experts"] * m["shared_expert_ffn_size"]
    fd = m["dense_ffn_size"]

    def w(*shape):  # (out, in) like nn.Linear; GEMMs read the transpose
        return torch.randn(*shape, dtype=dt, device=device) * (1.0 / math.sqrt(shape[-1]))

    layers = []
    for i in range(L):
        moe = i >= L - Lm  # dense layers first, as DeepSeek-V3 does
        lay = {"n1": torch.ones(h, dtype=dt, device=device), "n2": torch.ones(h, dtype=dt, device=device),
               "qkv": w((nq + 2 * nkv) * hd, h), "o": w(h, nq * hd),
               "k": torch.randn(max_batch, nkv, context, hd, dtype=dt, device=device),
               "v": torch.randn(max_batch, nkv, context, hd, dtype=dt, device=device)}  # fmt: skip
        if moe:
            lay |= {"router": w(E, h), "w13": w(E, 2 * f, h), "w2": w(E, h, f)}
            if fs:
                lay |= {"s13": w(2 * fs, h), "s2": w(h, fs)}
        else:
            lay |= {"d13": w(2 * fd, h), "d2": w(h, fd)}
        layers.append(lay)
    final_norm = torch.ones(h, dtype=dt, device=device)
    lm_head = w(m["vocab_size"], h)

    def swiglu(x, w13, w2, width):
        g = x @ w13.t()
        return (F.silu(g[:, :width]) * g[:, width:]) @ w2.t()

    def step(x, batch: int) -> None:
        ones = torch.ones(batch * k, dtype=torch.int32, device=device)
        for lay in layers:
            r = F.rms_norm(x, (h,), lay["n1"])
            qkv = r @ lay["qkv"].t()
            q = qkv[:, : nq * hd].view(batch, nq, 1, hd)
            kn = qkv[:, nq * hd : (nq + nkv) * hd].view(batch, nkv, hd)
            vn = qkv[:, (nq + nkv) * hd :].view(batch, nkv, hd)
            kc, vc = lay["k"][:batch], lay["v"][:batch]
            kc[:, :, context - 1].copy_(kn)  # the new token's K and V, at the last position
            vc[:, :, context - 1].copy_(vn)
            a = F.scaled_dot_product_attention(q, kc, vc, enable_gqa=nkv != nq)
            x = x + a.reshape(batch, nq * hd) @ lay["o"].t()
            r = F.rms_norm(x, (h,), lay["n2"])
            if "router" in lay:
                logits = r @ lay["router"].t()
                top_w, top_i = torch.topk(logits.float(), k, dim=-1)
                top_w = torch.softmax(top_w, dim=-1).to(dt)
                flat = top_i.reshape(-1)
                order = torch.argsort(flat, stable=True)
                tok = order // k
                counts = torch.zeros(E, dtype=torch.int32, device=device).scatter_add_(0, flat, ones)
                offs = torch.cumsum(counts, 0, dtype=torch.int32)
                g = torch._grouped_mm(r[tok], lay["w13"].transpose(-2, -1), offs=offs)
                y = torch._grouped_mm(F.silu(g[:, :f]) * g[:, f:], lay["w2"].transpose(-2, -1), offs=offs)
                y = y * top_w.reshape(-1)[order].unsqueeze(-1)
                out = torch.zeros_like(x).index_add_(0, tok, y)
                if "s13" in lay:
                    out = out + swiglu(r, lay["s13"], lay["s2"], fs)
                x = x + out
            else:
                x = x + swiglu(r, lay["d13"], lay["d2"], fd)
        return F.rms_norm(x, (h,), final_norm) @ lm_head.t()

    return step


def profile(torch, step, cuda: bool) -> list[dict]:
    """Kernels of one eager step: name, count and GPU time (s), largest first."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step()  # warm
    if cuda:
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=acts) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    agg: dict[str, list[float]] = {}
    for ev in prof.events():
        if cuda and ev.device_type == torch.autograd.DeviceType.CUDA:
            name = ev.name[:120]
            c = agg.setdefault(name, [0, 0.0])
            c[0] += 1
            c[1] += ev.device_time_total / 1e6
    return [{"kernel": n, "count": c, "gpu_s": t} for n, (c, t) in sorted(agg.items(), key=lambda kv: -kv[1][1])]
