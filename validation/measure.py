"""Validation benchmark: measure, on whatever GPUs this machine has, the quantities the model predicts.

    python3 validation/measure.py --machine nvidia-h200-x2 --out validation/measurements/nvidia-h200-x2

Measures (median of repetitions after warm-ups, with p10/p90/min/max):
  copy_h2d / copy_d2h  pinned host <-> device copy, 1 MiB .. 2 GiB           (GPU 0)
  expert_ffn           one SwiGLU expert (bf16) of each catalog model, 1 .. 4096 tokens (GPU 0);
                       part = ffn (GPU time: 20 back-to-back in a CUDA graph, weights rotated past
                       L2) | ffn_eager
                       (one launch from an idle GPU: includes the CPU's launch latency)
  alltoall             NCCL all-to-all, per-rank buffer 4 KiB .. 256 MiB; part = eager (one call
                       from Python) | graph (10 back-to-back in a CUDA graph)  (>= 2 GPUs)
  ceiling_*            attainable ceilings from microbenchmarks that are *not* the validated
                       primitives (GPU 0, --parts ceilings, written to ceilings.csv):
                       ceiling_kernel (a chain of 1-element kernels: launch-to-launch time),
                       ceiling_copy (device-to-device copy 4 KiB, 1 MiB .. 1 GiB, buffers rotated past
                       L2: start-up and HBM rate),
                       ceiling_gemm (square bf16 GEMMs 2048 .. 16384: attainable FLOP/s); each
                       in a CUDA graph
  moe_layer            one expert-parallel MoE layer of the study model: router, dispatch
                       all-to-all, local experts, combine all-to-all; uniform routing and with
                       a fraction of assignments kept local; part = layer (slowest rank) | comm
                       (the all-to-alls of the rank that waited least)            (>= 2 GPUs)
  peer_copy, host_concurrent, dp_peer_fetch, ep2_step, tp2_attention
                       the two-GPU parts of issue 27 (validation/measure_multi.py), each into its own CSV
and writes measurements.csv (one tidy row per point), env.json (GPU, driver, software) and
topo.txt (`nvidia-smi topo -m`). Multi-GPU parts take the slowest rank per repetition.
Never needs the network. `--device cpu --world-size 2 --quick` exercises the same code on the
CPU with the gloo backend (for testing the program, not for measurements).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python3 validation/measure.py` finds its sibling modules as validation.*
    sys.path.insert(0, str(ROOT))

from validation.catalog_models import load_models  # noqa: E402 (after the path above)
from validation.measure_comm import (  # noqa: E402
    A2A_BYTES,  # noqa: F401 (the sizes, as the tests read them)
    bench_alltoall,
    bench_alltoall_split,
    bench_link_ceiling,
    bench_moe_layer,
    swiglu,
)
from validation.multi_plan import routing_counts  # noqa: E402, F401 (re-exported for the tests)
from validation.timing import MIB, Timer, cuda_graph, log, percentile, reps_for, summarize  # noqa: E402, F401

MULTI_PARTS = ["peer_copy", "host_concurrent", "dp_peer_fetch", "ep2_step", "tp2_attention"]  # measure_multi.PARTS

COPY_SIZES = [1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB, 1024 * MIB, 2048 * MIB]
FFN_TOKENS = [1, 4, 16, 64, 256, 1024, 4096]
L2_FLUSH_BYTES = 256 * MIB  # rotate weight copies over at least this much memory
FFN_INNER = 20  # FFNs per CUDA-graph replay: GPU time without the CPU's launch latency
CEILING_COPY_BYTES = [4096] + [MIB * 4**i for i in range(6)]  # 4 KiB, then 1 MiB .. 1 GiB
CEILING_GEMM_N = [2048, 4096, 8192, 16384]
KERNEL_CHAIN = 200  # 1-element kernels per CUDA-graph replay
STREAM_ROWS = [1, 2, 4, 8, 16, 32, 64, 128, 256]  # rows (tokens) per weight in the streaming GEMMs
STREAM_DENSE = 8192  # dense streaming GEMM: an 8192 x 8192 weight (128 MiB)
STREAM_GROUPED, STREAM_GROUPS = 4096, 16  # grouped: 16 weights of 4096 x 4096 (512 MiB a set)
STREAM_SETS = 4  # weight sets rotated per replay (0.5 and 2 GiB: past L2)

FIELDS = [
    "machine", "benchmark", "part", "gpu", "n_gpus", "model", "hidden", "ffn", "experts", "top_k",
    "bytes", "tokens_per_rank", "local_fraction", "ep", "reps", "median_s", "p10_s", "p90_s", "min_s", "max_s",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Pure helpers (no torch; tested on the CPU in CI)


ALWAYS_RECORDED = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")
RECORDED_PREFIXES = ("NCCL_", "TORCH_NCCL_", "TORCH_SYMM_MEM_", "NVSHMEM_", "PYTORCH_CUDA_ALLOC_CONF")


def recorded_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings that change how NCCL and PyTorch move data: the multicast switches (empty when
    unset) and every other variable set with one of RECORDED_PREFIXES, sorted by name."""
    found = {k: v for k, v in environ.items() if k.startswith(RECORDED_PREFIXES)}
    return dict(sorted(({k: "" for k in ALWAYS_RECORDED} | found).items()))


def write_rows(rows: list[dict], out: Path, name: str = "measurements.csv", fields: Sequence[str] = FIELDS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    return path


def bench_copies(device, machine: str, gpu: str, quick: bool) -> list[dict]:
    import torch

    rows = []
    timer = Timer(device)
    for size in COPY_SIZES[:3] if quick else COPY_SIZES:
        host = torch.empty(size, dtype=torch.uint8, pin_memory=device.type == "cuda")
        dev = torch.empty(size, dtype=torch.uint8, device=device)
        warm, reps = reps_for(size)
        for name, fn in (
            ("copy_h2d", lambda: dev.copy_(host, non_blocking=True)),
            ("copy_d2h", lambda: host.copy_(dev, non_blocking=True)),
        ):
            s = summarize(timer.samples(fn, warm, reps))
            rows.append(
                {"machine": machine, "benchmark": name, "part": "copy", "gpu": gpu, "n_gpus": 1, "bytes": size, **s}
            )
            log(f"{name} {size / MIB:.0f} MiB: {size / s['median_s'] / 1e9:.1f} GB/s")
    return rows


def bench_ffn(device, machine: str, gpu: str, quick: bool) -> list[dict]:
    import torch

    rows = []
    timer = Timer(device)
    dtype = torch.bfloat16
    models = load_models()
    for key, m in models.items():
        h, f = int(m["hidden_size"]), int(m["expert_ffn_size"])
        if quick:
            h, f = min(h, 256), min(f, 256)
        weight_bytes = 3 * h * f * 2
        copies = 1 if quick else max(1, min(16, math.ceil(L2_FLUSH_BYTES / weight_bytes)))
        ws = [
            tuple(torch.randn(*shape, device=device, dtype=dtype) * 0.02 for shape in ((h, f), (h, f), (f, h)))
            for _ in range(copies)
        ]
        state = {"i": 0}
        inner = 1 if quick else FFN_INNER
        for tokens in FFN_TOKENS[:3] if quick else FFN_TOKENS:
            x = torch.randn(tokens, h, device=device, dtype=dtype)

            def one() -> None:
                w1, w3, w2 = ws[state["i"] % copies]
                state["i"] += 1
                swiglu(x, w1, w3, w2)

            def pipelined() -> None:
                for _ in range(inner):
                    one()

            replay = cuda_graph(pipelined) if device.type == "cuda" else pipelined

            base = {"machine": machine, "benchmark": "expert_ffn", "gpu": gpu, "n_gpus": 1, "model": key,
                    "hidden": h, "ffn": f, "bytes": weight_bytes, "tokens_per_rank": tokens}  # fmt: skip
            gpu_time = summarize([t / inner for t in timer.samples(replay, 3, 15)])
            eager = summarize(timer.samples(one, 5, 30))
            rows.append({**base, "part": "ffn", **gpu_time})
            rows.append({**base, "part": "ffn_eager", **eager})
            log(
                f"expert_ffn {key} T={tokens}: {gpu_time['median_s'] * 1e6:.1f} us GPU, {eager['median_s'] * 1e6:.1f} us eager"
            )
    return rows


def bench_ceilings(device, machine: str, gpu: str, quick: bool) -> list[dict]:
    """Attainable ceilings of GPU 0 from microbenchmarks that are not the validated primitives:
    the time per kernel of a chain of 1-element kernels, device-to-device copies (bytes = bytes
    copied; HBM traffic is twice that) and square bf16 GEMMs (hidden = ffn = tokens = n)."""
    import torch

    rows: list[dict] = []
    timer = Timer(device)
    graph = cuda_graph if device.type == "cuda" else (lambda fn: fn)
    base = {"machine": machine, "gpu": gpu, "n_gpus": 1}

    one = torch.zeros(1, device=device)
    chain = 5 if quick else KERNEL_CHAIN

    def kernels() -> None:
        for _ in range(chain):
            one.add_(1)

    s = summarize([t / chain for t in timer.samples(graph(kernels), 3, 15)])
    rows.append({**base, "benchmark": "ceiling_kernel", "part": "graph", "bytes": 4, **s})
    log(f"ceiling_kernel: {s['median_s'] * 1e6:.2f} us per 1-element kernel")

    for size in CEILING_COPY_BYTES[:2] if quick else CEILING_COPY_BYTES:
        # rotate over enough source/destination pairs that every copy reads and writes HBM, not L2
        # (the smallest copy measures the start-up of a tiny kernel, wherever its bytes live)
        n_buf = 1 if quick else max(1, min(128, math.ceil(L2_FLUSH_BYTES / (2 * size))))
        bufs = [
            (
                torch.ones(size // 2, dtype=torch.bfloat16, device=device),
                torch.empty(size // 2, dtype=torch.bfloat16, device=device),
            )
            for _ in range(n_buf)
        ]
        inner = 1 if quick else max(4, n_buf)

        def copies() -> None:
            for i in range(inner):
                src, dst = bufs[i % n_buf]
                dst.copy_(src)

        warm, reps = reps_for(size * inner)
        s = summarize([t / inner for t in timer.samples(graph(copies), warm, reps)])
        rows.append({**base, "benchmark": "ceiling_copy", "part": "graph", "bytes": size, **s})
        log(
            f"ceiling_copy {size / 1024:.0f} KiB: {s['median_s'] * 1e6:.2f} us, {2 * size / s['median_s'] / 1e9:.0f} GB/s read+write"
        )

    for n in [64, 128] if quick else CEILING_GEMM_N:
        a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        c = torch.empty(n, n, device=device, dtype=torch.bfloat16)
        inner = 1 if quick else max(2, (16384 // n) ** 2)

        def gemms() -> None:
            for _ in range(inner):
                torch.matmul(a, b, out=c)

        s = summarize([t / inner for t in timer.samples(graph(gemms), 3, 10)])
        rows.append(
            {**base, "benchmark": "ceiling_gemm", "part": "graph", "hidden": n, "ffn": n, "tokens_per_rank": n, **s}
        )
        log(f"ceiling_gemm n={n}: {2 * n**3 / s['median_s'] / 1e12:.0f} TFLOP/s")
    rows += bench_stream_ceilings(device, base, quick)
    return rows


def bench_stream_ceilings(device, base: dict, quick: bool) -> list[dict]:
    """The rate at which GEMMs with few rows stream their weights from HBM (decode GEMMs read every
    weight once for a handful of tokens): a dense GEMM y = x W^T with W of STREAM_DENSE x
    STREAM_DENSE, and a grouped GEMM (torch._grouped_mm, as MoE kernels run experts) over
    STREAM_GROUPS weights of STREAM_GROUPED x STREAM_GROUPED with m rows each; generic square shapes,
    not a catalog model's; weight sets rotated past L2; m = STREAM_ROWS. bytes = weight bytes read."""
    import torch

    rows: list[dict] = []
    timer = Timer(device)
    graph = cuda_graph if device.type == "cuda" else (lambda fn: fn)
    dt = torch.bfloat16
    n, ng, g = (128, 64, 4) if quick else (STREAM_DENSE, STREAM_GROUPED, STREAM_GROUPS)
    sets = 1 if quick else STREAM_SETS
    dense = [torch.randn(n, n, dtype=dt, device=device) * 0.01 for _ in range(sets)]
    grouped = [torch.randn(g, ng, ng, dtype=dt, device=device) * 0.01 for _ in range(sets)]
    for m in STREAM_ROWS[:3] if quick else STREAM_ROWS:
        x = torch.randn(m, n, dtype=dt, device=device)
        xg = torch.randn(g * m, ng, dtype=dt, device=device)
        offs = torch.arange(1, g + 1, dtype=torch.int32, device=device) * m

        def dense_gemms(x=x) -> None:
            for w in dense:
                torch.matmul(x, w.t())

        def grouped_gemms(xg=xg, offs=offs) -> None:
            for w in grouped:
                torch._grouped_mm(xg, w.transpose(-2, -1), offs=offs)

        for part, fn, nbytes, k in (
            ("dense", dense_gemms, n * n * 2, n),
            ("grouped", grouped_gemms, g * ng * ng * 2, ng),
        ):
            s = summarize([t / sets for t in timer.samples(graph(fn), 3, 15)])
            rows.append({**base, "benchmark": "ceiling_stream", "part": part, "hidden": k, "ffn": k,
                         "experts": g if part == "grouped" else "", "tokens_per_rank": m, "bytes": nbytes, **s})  # fmt: skip
            log(f"ceiling_stream {part} m={m}: {nbytes / s['median_s'] / 1e9:.0f} GB/s of weights")
    return rows


# ----------------------------------------------------------------------------------------------
# Environment and entry points


def shell(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable: {exc}"


def environment(device, world: int) -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "world_size": world,
        "nccl_env": recorded_env(os.environ),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        env |= {
            "gpu": props.name,
            "gpu_memory_bytes": props.total_memory,
            "multiprocessors": props.multi_processor_count,
            "gpu_count": torch.cuda.device_count(),
            "nccl": ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else "",
            "nvidia_smi": shell(
                [
                    "nvidia-smi",
                    "--query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max,clocks.max.sm",
                    "--format=csv",
                ]
            ),
        }
    return env


def worker(rank: int, world: int, args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    cuda = args.device == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(rank)
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu"
    rows: list[dict] = []
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(args.port))
        dist.init_process_group(
            "nccl" if cuda else "gloo", rank=rank, world_size=world, device_id=device if cuda else None
        )
    out = Path(args.out) / f"ranks{world}" if args.subdir else Path(args.out)
    if rank == 0:
        write_rows(rows, out)
        (out / "env.json").write_text(json.dumps(environment(device, world), indent=2, sort_keys=True) + "\n")
        (out / "topo.txt").write_text(shell(["nvidia-smi", "topo", "-m"]) if cuda else "cpu\n")
    if rank == 0 and "single" in args.parts:
        if cuda:
            rows += bench_copies(device, args.machine, gpu, args.quick)
        rows += bench_ffn(device, args.machine, gpu, args.quick)
        write_rows(rows, out)  # after each part, so a later hang loses nothing
    if rank == 0 and "decode" in args.parts:
        from validation import measure_decode

        decode_rows, kernel_rows = measure_decode.run(device, args.machine, gpu, args.quick, log)
        write_rows(decode_rows, out, "decode.csv", measure_decode.DECODE_FIELDS)
        write_rows(kernel_rows, out, "decode_kernels.csv", measure_decode.KERNEL_FIELDS)
    if rank == 0 and "offload" in args.parts:
        from validation import measure_offload

        write_rows(measure_offload.run(device, args.machine, gpu, args.quick, log), out, "offload.csv",
                   measure_offload.OFFLOAD_FIELDS)  # fmt: skip
    ceilings: list[dict] = []
    if rank == 0 and "ceilings" in args.parts:
        ceilings = bench_ceilings(device, args.machine, gpu, args.quick)
        write_rows(ceilings, out, "ceilings.csv")
    if world > 1 and cuda and "ceilings" in args.parts:
        dist.barrier()
        try:
            ceilings += bench_link_ceiling(torch, dist, device, rank, world, args.machine, gpu, args.quick)
        except Exception as exc:  # a link microbenchmark that cannot run must not cost the other parts
            log(f"rank {rank}: ceiling_link failed: {type(exc).__name__}: {exc}")
        if rank == 0:
            write_rows(ceilings, out, "ceilings.csv")
    if world > 1:
        dist.barrier()
        if "moe" in args.parts:
            rows += bench_moe_layer(torch, dist, device, rank, world, args.machine, gpu, args.quick, args.model)
            if rank == 0:
                write_rows(rows, out)
        if "alltoall" in args.parts:
            rows += bench_alltoall(torch, dist, device, rank, world, args.machine, gpu, args.quick)
        if set(MULTI_PARTS) & set(args.parts):  # the two-GPU parts of issue 27, each into its own CSV
            from validation import measure_multi

            measure_multi.run(torch, dist, device, rank, world, args, out, write_rows)
        if "alltoall_split" in args.parts:
            split_rows = bench_alltoall_split(torch, dist, device, rank, world, args.machine, gpu, args.quick)
            if rank == 0:
                write_rows(split_rows, out, "alltoall_split.csv")
        dist.barrier()
    if rank == 0:
        path = write_rows(rows, out)
        log(f"wrote {len(rows)} rows to {path}")
    if world > 1:
        dist.destroy_process_group()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--machine", required=True, help="name written into every row (e.g. nvidia-h100-x1)")
    p.add_argument("--out", required=True, help="folder for measurements.csv, env.json, topo.txt")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--world-size", type=int, default=0, help="processes (default: every GPU found)")
    p.add_argument(
        "--parts",
        nargs="+",
        default=["single", "alltoall", "moe"],
        choices=["single", "alltoall", "moe", "ceilings", "alltoall_split", "decode", "offload", *MULTI_PARTS],
    )
    p.add_argument("--model", default="seed_128x2gb", help="catalog model for the MoE layer")
    p.add_argument("--quick", action="store_true", help="a few small sizes (for testing the program)")
    p.add_argument("--subdir", action="store_true", help="write into OUT/ranksN (several world sizes in one folder)")
    p.add_argument("--port", type=int, default=29517)
    args = p.parse_args(argv)
    if args.world_size < 0:
        p.error("--world-size must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no GPU is visible; use --device cpu to test the program", file=sys.stderr)
        return 2
    found = torch.cuda.device_count() if args.device == "cuda" else 1
    world = args.world_size or found
    if args.device == "cuda" and world > found:
        print(f"error: --world-size {world} but only {found} GPU(s) found", file=sys.stderr)
        return 2
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off (device tool's rule)
    os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")
    log(f"{args.machine}: {world} process(es) on {args.device}")
    if world == 1:
        worker(0, 1, args)
    else:
        import torch.multiprocessing as mp

        mp.spawn(worker, args=(world, args), nprocs=world, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
