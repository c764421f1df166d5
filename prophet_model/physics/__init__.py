"""The physics of a decode step, one module per mechanism: pure functions over numpy arrays (SI units)
that import nothing of the package outside it.

- `scenario`: the inputs (one Scenario of scalars or arrays, with the routing traces it names) and its memo;
- `memory`: weights, KV cache, what is left for experts, whether a configuration fits;
- `routing`: experts touched and assignments on the busiest rank, the cache's hit rate;
- `cache`: expert-cache policies (static, LRU, predicted) and their hit rates under skewed routing;
- `compute`: GEMMs, attention, kernel structure and start-up;
- `fetch` and `prefetch`: expert copies from host or a peer GPU (pooled experts), and what Prophet's
  prefetch hides;
- `cpu`: missing experts computed by the host CPU instead of copied (experts.offload_compute);
- `comm`: the all-to-alls of expert parallelism and the all-reduce of tensor-parallel attention;
- `cost`: dollars per token;
- `step`: `evaluate`, the step composed: compute + exposed fetch (or CPU experts) + exposed all-to-all
  (two-batch overlap: the critical path of two half-batches, `overlapped`).

The names below are re-exported for the tests and notebooks that read terms one by one
(`from prophet_model import physics as m; m.kv_cache_bytes(s)`).
"""

from .comm import (
    allreduce_time,
    alltoall_bytes,
    alltoall_latency,
    alltoall_time,
    chance_locality,
    comm_cut,
    comm_time,
    cross_socket_bytes,
    group_nodes,
    intra_node_bytes,
    nic_bytes,
    remote_destinations,
)
from .compute import (
    KERNELS_PER_EXPERT,
    attention_time,
    compute_time,
    dense_time,
    expert_ffn_time,
    expert_time,
    gemm_time,
    kernel_count,
    roofline,
    roofline_time,
    startup_time,
    swiglu_kernels,
    weight_flops,
)
from .cpu import OFFLOAD_COMPUTE, cpu_available, cpu_layer_time, offload
from .fetch import fetch_bytes, fetch_exposed, fetch_rate, fetch_time, peer_share
from .memory import (
    dense_params,
    expert_bytes,
    experts_on_fullest_gpu,
    fits_in_memory,
    kv_bytes_per_sequence,
    kv_cache_bytes,
    kv_element_bytes,
    kv_replication,
    max_batch,
    max_batch_all_resident,
    memory_resident_fraction,
    memory_terms,
    why_infeasible,
)
from .routing import (
    assignments_on_fullest_gpu,
    busiest,
    distinct_experts_touched,
    expected_max_z,
    mean_assignments,
    normal_quantile,
    resident_fraction,
    routing,
    skewed_routing,
    tokens_per_group,
)
from .scenario import NUMBERS, Array, Scenario, Trace, once, scenario_from
from .step import CHUNK, StepResult, evaluate, overlapped

__all__ = [
    "CHUNK",
    "KERNELS_PER_EXPERT",
    "NUMBERS",
    "OFFLOAD_COMPUTE",
    "Array",
    "Scenario",
    "StepResult",
    "Trace",
    "allreduce_time",
    "alltoall_bytes",
    "alltoall_latency",
    "alltoall_time",
    "assignments_on_fullest_gpu",
    "attention_time",
    "busiest",
    "chance_locality",
    "comm_cut",
    "comm_time",
    "compute_time",
    "cpu_available",
    "cpu_layer_time",
    "cross_socket_bytes",
    "dense_params",
    "dense_time",
    "distinct_experts_touched",
    "evaluate",
    "expected_max_z",
    "expert_bytes",
    "expert_ffn_time",
    "expert_time",
    "experts_on_fullest_gpu",
    "fetch_bytes",
    "fetch_exposed",
    "fetch_rate",
    "fetch_time",
    "fits_in_memory",
    "gemm_time",
    "group_nodes",
    "intra_node_bytes",
    "kernel_count",
    "kv_bytes_per_sequence",
    "kv_cache_bytes",
    "kv_element_bytes",
    "kv_replication",
    "max_batch",
    "max_batch_all_resident",
    "mean_assignments",
    "memory_resident_fraction",
    "memory_terms",
    "nic_bytes",
    "normal_quantile",
    "offload",
    "once",
    "overlapped",
    "peer_share",
    "remote_destinations",
    "resident_fraction",
    "roofline",
    "roofline_time",
    "routing",
    "scenario_from",
    "skewed_routing",
    "startup_time",
    "swiglu_kernels",
    "tokens_per_group",
    "weight_flops",
    "why_infeasible",
]
