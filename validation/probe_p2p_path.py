"""Probe: how fast can a given number of SMs move data across the GPU link, without NCCL?

    python3 validation/probe_p2p_path.py --out DIR [--world-size 2]

A persistent Triton kernel with a fixed grid of G programs (one per SM at most) copies a buffer,
on every rank at once, either into the next rank's memory (mapped by symmetric memory: part =
remote) or within the rank's own memory (part = local). G and the threads per program vary, so
the rate a bounded number of SMs reaches can be set beside the link's ceiling (all SMs) and beside
NCCL's all-to-all, which runs on a bounded number of channels (one thread block each). Also times
NCCL's all-to-all on the same buffers. Writes probe.csv into DIR. Diagnostic, not a model input.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # finds its sibling modules as validation.*
from validation.timing import Timer, cuda_graph, log, slowest_samples, summarize

MIB = 1 << 20

GRIDS = [1, 2, 4, 8, 16, 24, 32, 64, 132]
SHAPES = [(16, 4096), (16, 16384), (4, 2048)]  # (warps per program, bf16 elements per iteration)
NBYTES = 64 * MIB
A2A_BYTES = [16 * MIB, 64 * MIB, 256 * MIB]
try:
    import triton
    import triton.language as tl

    @triton.jit
    def copy_kernel(src, dst, n, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        step = tl.num_programs(0) * BLOCK
        for start in range(pid * BLOCK, n, step):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < n
            tl.store(dst + offs, tl.load(src + offs, mask=mask), mask=mask)
except ImportError:  # no Triton: the probe cannot run
    copy_kernel = None

FIELDS = ["part", "grid", "warps", "block", "bytes", "reps", "median_s", "p10_s", "p90_s", "min_s", "max_s"]


def worker(rank: int, world: int, out: Path) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed._symmetric_memory as symm_mem

    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    group = dist.group.WORLD
    if hasattr(symm_mem, "enable_symm_mem_for_group"):
        symm_mem.enable_symm_mem_for_group(group.group_name)
    elems = NBYTES // 2
    buf = symm_mem.empty(elems, dtype=torch.bfloat16, device=device)
    handle = symm_mem.rendezvous(buf, group.group_name)
    remote = handle.get_buffer((rank + 1) % world, (elems,), torch.bfloat16)
    src = torch.ones(elems, dtype=torch.bfloat16, device=device)
    local = torch.empty(elems, dtype=torch.bfloat16, device=device)
    timer = Timer(device)
    rows = []
    inner = 3
    for part, dst in (("remote", remote), ("local", local)):
        for warps, block in SHAPES:
            for grid in GRIDS:

                def run(dst=dst, grid=grid, warps=warps, block=block) -> None:
                    for _ in range(inner):
                        copy_kernel[(grid,)](src, dst, elems, BLOCK=block, num_warps=warps)

                run()  # compile
                torch.cuda.synchronize()
                samples = slowest_samples(torch, dist, timer, run, inner, 2, 7, device)
                if rank == 0:
                    s = summarize(samples)
                    rows.append({"part": part, "grid": grid, "warps": warps, "block": block, "bytes": NBYTES, **s})
                    log(f"{part} G={grid} warps={warps} block={block}: {NBYTES / s['median_s'] / 1e9:.0f} GB/s")
    for size in A2A_BYTES:
        n = size // 2
        inp = torch.ones(n, dtype=torch.bfloat16, device=device)
        outb = torch.empty_like(inp)

        def many(inp=inp, outb=outb) -> None:
            for _ in range(5):
                dist.all_to_all_single(outb, inp)

        dist.barrier()
        replay = cuda_graph(many)
        samples = slowest_samples(torch, dist, timer, replay, 5, 3, 10, device)
        if rank == 0:
            s = summarize(samples)
            rows.append({"part": "nccl_alltoall", "grid": 0, "warps": 0, "block": 0, "bytes": size, **s})
            log(f"nccl all-to-all {size / MIB:.0f} MiB/rank: {s['median_s'] * 1e6:.1f} us")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "probe.csv", "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows(rows)
    dist.barrier()
    dist.destroy_process_group()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--world-size", type=int, default=2)
    args = p.parse_args()
    if copy_kernel is None:
        print("error: the probe needs Triton (it ships with PyTorch's CUDA wheels)", file=sys.stderr)
        return 2
    import torch.multiprocessing as mp

    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")
    mp.spawn(worker, args=(args.world_size, Path(args.out)), nprocs=args.world_size, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
