"""Hardware and MoE model specifications (the catalog files' schema).

Units are in the field names: GB = 1e9 bytes, GB/s = 1e9 bytes/s, TFLOP/s = 1e12 FLOP/s.
Every numeric field must carry a source in the entry's `sources` mapping.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Literal

from prophet_model.study.strict import Field, Record, field_validator, model_validator

Positive = Field(gt=0)
NonNegative = Field(ge=0)
MAX_NAME_CHARS = 200  # protective: a display name heads pages and figure titles, and fills table cells
NOT_SHOWN = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")  # Unicode categories of control and format characters
FORMULA_STARTS = "=+-@"  # a CSV cell starting with one of these is a formula to Excel and LibreOffice (OWASP)


def display_name(v: str) -> str:
    """A display name: 1 to MAX_NAME_CHARS characters, none of them a control or format character (a newline,
    a tab, a bidirectional override), not starting with a spreadsheet formula's sign. Any other text is allowed:
    every output escapes it for its format (HTML, Markdown, LaTeX, YAML)."""
    if not v.strip():
        raise ValueError(f"is empty; allowed: a display name of 1 to {MAX_NAME_CHARS} characters")
    if len(v) > MAX_NAME_CHARS:
        raise ValueError(f"is {len(v)} characters long; allowed: at most {MAX_NAME_CHARS}")
    bad = sorted({f"U+{ord(ch):04X}" for ch in v if unicodedata.category(ch) in NOT_SHOWN})
    if bad:
        raise ValueError(
            f"holds control or format characters ({', '.join(bad[:5])}); allowed: printable text on one line"
        )
    if v[0] in FORMULA_STARTS:
        raise ValueError(
            f"starts with {v[0]!r}, which a spreadsheet opening the CSVs reads as a formula; allowed: a name that "
            "does not start with =, +, - or @"
        )
    return v


class Sourced(Record):
    """A catalog entry whose every numeric value names its source (strict, frozen: study/strict.py)."""

    sources: dict[str, str]

    @model_validator(mode="after")
    def _every_value_has_a_source(self) -> Sourced:
        # the values given (an optional field left at its default, as a single-node interconnect's NIC, needs none)
        numeric = [
            k for k, v in self if isinstance(v, (int, float)) and not isinstance(v, bool) and k in self.model_fields_set
        ]
        missing = sorted(k for k in numeric if not self.sources.get(k, "").strip())
        if missing:
            raise ValueError(f"sources is missing an entry for: {', '.join(missing)}")
        unknown = sorted(set(self.sources) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"sources names unknown fields: {', '.join(unknown)}")
        return self


class Named(Sourced):
    """A catalog entry with a display name (checked by `display_name`)."""

    name: str

    @field_validator("name")
    @classmethod
    def _display_name(cls, v: str) -> str:
        return display_name(v)


class GPU(Named):
    generation: Literal["ampere", "ada", "hopper", "blackwell"]  # architecture, for attainable shares
    memory_capacity_gb: float = Positive
    memory_bandwidth_gbps: float = Positive
    bf16_dense_tflops: float = Positive
    # FP8 tensor cores (Ada, Hopper, Blackwell): dense FP8 rate; None where the GPU has none (Ampere: weight-only
    # FP8 is dequantised to BF16 inside the GEMM)
    fp8_dense_tflops: float | None = Field(default=None, gt=0)
    host_link_bandwidth_gbps: float = Positive
    price_usd_per_gpu_hour: float = Positive
    # the link to the host: pcie (its attainable share measured by the committed host copies, study/rates.py) or
    # nvlink_c2c (Grace Hopper's chip-to-chip link, whose attainable share of host->device copies comes from a
    # published microbenchmark: host_link_attainable_share, required for it)
    host_link: Literal["pcie", "nvlink_c2c"] = "pcie"
    host_link_attainable_share: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _c2c_share_given(self) -> GPU:
        if self.host_link == "nvlink_c2c" and self.host_link_attainable_share is None:
            raise ValueError(
                "host_link nvlink_c2c needs host_link_attainable_share (the measured share of the line rate that "
                "host->device copies attain, with its source); allowed: a share in (0, 1]"
            )
        if self.host_link == "pcie" and self.host_link_attainable_share is not None:
            raise ValueError(
                "host_link_attainable_share is for host_link nvlink_c2c; a PCIe link's share is measured "
                "(validation/measurements); allowed: remove it, or host_link: nvlink_c2c"
            )
        return self


class Interconnect(Named):
    kind: Literal["nvswitch", "nvlink", "pcie"]
    bandwidth_gbps_per_direction: float = Positive  # line rate
    payload_efficiency: float = Field(gt=0, le=1)  # share of the line rate that carries data
    latency_us: float = NonNegative
    sockets: Literal[1, 2]
    cross_socket_bandwidth_gbps: float = NonNegative
    gpus_per_pcie_switch: int = Positive  # GPUs sharing one PCIe switch uplink to the CPU
    pcie_switch_uplink_gbps: float = Positive  # per direction, line rate
    host_memory_bandwidth_gbps_per_socket: float = Positive
    cpu_sockets: Literal[1, 2]  # CPUs whose memory the GPUs fetch experts from (GPUs split evenly)
    remote_memory_share: float = Field(ge=0, le=1)  # of offloaded expert bytes, in the other socket's memory
    max_gpus: int = Positive  # GPUs the interconnect joins in one system (a board, a pair, a host's slots)
    # TFLOP/s of one socket's CPU on an expert's GEMMs (experts computed on the CPU, physics/cpu.py); None: the
    # host's CPU not described (experts are then always copied)
    cpu_expert_tflops_per_socket: float | None = Field(default=None, gt=0)
    # GB/s per direction a GPU's copy engines reach copying from a peer GPU over this link, both directions at
    # once (cudaMemcpyPeerAsync, a published measurement); None: not published for this link
    peer_copy_gbps_per_direction: float | None = Field(default=None, gt=0)
    # the GPU generations it joins (an NVLink generation belongs to its GPUs'); empty: any (PCIe)
    gpu_generations: list[Literal["ampere", "ada", "hopper", "blackwell"]] = Field(default=[])
    # per-peer latency of the all-to-all (physics/comm.py): latency_us + latency_per_peer_us x (GPU peers reached
    # over this interconnect) + nic_latency_per_node_us x (other nodes); 0 (the default) keeps latency_us alone
    latency_per_peer_us: float = Field(default=0, ge=0)
    # several nodes (physics/comm.py): gpus_per_node GPUs joined by this interconnect in each node (0: one node,
    # every GPU), nodes joined by one RDMA NIC per GPU of nic_bandwidth_gbps_per_direction (line rate), of which
    # nic_payload_efficiency carries data; cpu_sockets and the host side are per node
    gpus_per_node: int = Field(default=0, ge=0)
    nic_bandwidth_gbps_per_direction: float = Field(default=0, ge=0)
    nic_payload_efficiency: float = Field(default=1.0, gt=0, le=1)
    nic_latency_per_node_us: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _nodes_need_a_nic(self) -> Interconnect:
        if self.gpus_per_node > 0 and self.nic_bandwidth_gbps_per_direction <= 0:
            raise ValueError("gpus_per_node > 0 (several nodes) needs nic_bandwidth_gbps_per_direction > 0")
        if self.gpus_per_node > 0 and (self.max_gpus % self.gpus_per_node or self.max_gpus == self.gpus_per_node):
            raise ValueError(
                f"max_gpus ({self.max_gpus}) must be a multiple of gpus_per_node ({self.gpus_per_node}) greater than "
                "it (several whole nodes); allowed: gpus_per_node 0 for one node"
            )
        if self.gpus_per_node == 0 and self.nic_bandwidth_gbps_per_direction > 0:
            raise ValueError("nic_bandwidth_gbps_per_direction is for several nodes; allowed: gpus_per_node > 0")
        return self

    @model_validator(mode="after")
    def _two_sockets_need_a_socket_link(self) -> Interconnect:
        if self.kind == "pcie" and self.sockets == 2 and self.cross_socket_bandwidth_gbps <= 0:
            raise ValueError("cross_socket_bandwidth_gbps must be > 0 for a pcie interconnect with 2 sockets")
        if self.peer_copy_gbps_per_direction and self.peer_copy_gbps_per_direction > self.bandwidth_gbps_per_direction:
            raise ValueError("peer_copy_gbps_per_direction exceeds bandwidth_gbps_per_direction (the line rate)")
        if self.remote_memory_share > 0 and (self.cpu_sockets == 1 or self.cross_socket_bandwidth_gbps <= 0):
            raise ValueError("remote_memory_share > 0 needs cpu_sockets: 2 and a cross_socket_bandwidth_gbps > 0")
        return self


class MoEModel(Named):
    num_layers: int = Positive
    num_moe_layers: int = Positive
    hidden_size: int = Positive
    expert_ffn_size: int = Positive
    num_experts: int = Positive
    top_k: int = Positive
    num_shared_experts: int = NonNegative
    shared_expert_ffn_size: int = NonNegative
    dense_ffn_size: int = NonNegative
    attention_params_per_layer: int = Positive
    kv_elements_per_token_per_layer: int = Positive
    vocab_size: int = Positive
    bytes_per_param: float = Positive
    num_attention_heads: int = Positive  # query heads
    num_kv_heads: int = Positive  # heads with their own K and V (grouped-query attention: fewer)
    head_dim: int = Positive  # elements per head in the attention products
    # gqa: per-head Q, K, V and O projections, num_kv_heads of K and V (multi-head attention: as many as
    # query heads); mla: multi-head latent attention (DeepSeek-V2/V3), one cached latent shared by the heads
    attention: Literal["gqa", "mla"]

    @model_validator(mode="after")
    def _consistent(self) -> MoEModel:
        if self.num_moe_layers > self.num_layers:
            raise ValueError(f"num_moe_layers ({self.num_moe_layers}) exceeds num_layers ({self.num_layers})")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({self.top_k}) exceeds num_experts ({self.num_experts})")
        if self.num_moe_layers < self.num_layers and self.dense_ffn_size == 0:
            raise ValueError("dense_ffn_size must be > 0 when some layers are not MoE layers")
        if (self.num_shared_experts > 0) != (self.shared_expert_ffn_size > 0):
            raise ValueError(
                f"num_shared_experts ({self.num_shared_experts}) and shared_expert_ffn_size "
                f"({self.shared_expert_ffn_size}) disagree; allowed: both 0 (no shared expert) or both > 0"
            )
        self._check_attention()
        return self

    def _check_attention(self) -> None:
        """The attention shape the heads imply: KV heads that group the query heads evenly; for gqa, the
        K and V elements cached per token and at least the Q, K, V and O projection weights (parameters)."""
        heads, kv, d = self.num_attention_heads, self.num_kv_heads, self.head_dim
        if kv > heads or heads % kv:
            raise ValueError(
                f"num_kv_heads ({kv}) must divide num_attention_heads ({heads}): each KV head serves a whole "
                f"group of query heads; allowed: {_divisors(heads)}"
            )
        if self.attention == "mla":
            if self.kv_elements_per_token_per_layer < kv * d:
                raise ValueError(
                    f"kv_elements_per_token_per_layer ({self.kv_elements_per_token_per_layer}) is below num_kv_heads "
                    f"x head_dim = {kv * d} (the latent each KV head attends over); allowed: >= {kv * d}"
                )
            return
        if self.kv_elements_per_token_per_layer != 2 * kv * d:
            raise ValueError(
                f"kv_elements_per_token_per_layer ({self.kv_elements_per_token_per_layer}) is not 2 x num_kv_heads x "
                f"head_dim = {2 * kv * d} (K and V of each KV head) for attention gqa; allowed: {2 * kv * d}, or "
                "attention: mla for latent attention"
            )
        projections = 2 * self.hidden_size * d * (heads + kv)  # Q and O: hidden x heads x d; K and V: hidden x kv x d
        if self.attention_params_per_layer < projections:
            raise ValueError(
                f"attention_params_per_layer ({self.attention_params_per_layer}) is below the Q, K, V and O "
                f"projections of {heads} heads and {kv} KV heads of {d} on hidden_size {self.hidden_size}, "
                f"2 x hidden_size x head_dim x (num_attention_heads + num_kv_heads) = {projections}; "
                f"allowed: >= {projections}, or fewer or smaller heads"
            )

    @property
    def expert_params(self) -> int:
        """Parameters of one routed expert in one layer: SwiGLU, 3 x hidden x ffn."""
        return 3 * self.hidden_size * self.expert_ffn_size

    @property
    def expert_bytes_all_layers(self) -> float:
        """Bytes of one expert index summed over all MoE layers (the draft analysis's '2 GB per expert')."""
        return self.expert_params * self.bytes_per_param * self.num_moe_layers


def _divisors(n: int) -> str:
    """The divisors of n, in order (pairs d, n/d up to sqrt(n)); "a divisor of n" past a million heads."""
    if n > 10**6:
        return f"a divisor of {n}"
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return ", ".join(str(d) for d in sorted(set(small) | {n // d for d in small}))


Catalog = dict[str, GPU] | dict[str, Interconnect] | dict[str, MoEModel]
