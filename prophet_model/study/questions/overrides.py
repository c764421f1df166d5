"""The override engine of `whatif`, `sweep` and `solve`: KEY=VALUE changes to the configuration (`--set`,
`apply_set`), and the study they make (`changed_study`: a configured system changed by --gpu, --count,
--interconnect, or one given by those alone, serving a catalog --model or a --model-file's), re-run whole
exactly as `make` would after the same edit to _config.yml (`headline`); whatif's two studies, with and
without the --set changes (`compared_studies`)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from prophet_model.errors import UserError
from prophet_model.study.config import Study, shown_value, study_from_raw
from prophet_model.study.frames import StudyResults
from prophet_model.study.runner import run_study
from prophet_model.study.yaml_io import parse_yaml, read_yaml


def _allowed(node: Any) -> str:
    if isinstance(node, dict):
        return ", ".join(sorted(map(str, node)))
    if isinstance(node, list):
        ids = [str(e["id"]) for e in node if isinstance(e, dict) and "id" in e]
        if ids:
            return ", ".join(ids)
        return f"an entry's position, 0 to {len(node) - 1}" if node else "(none: the list is empty)"
    return "(none: this is a value)"


def _entry(node: list, part: str) -> list:
    """The entries of a list that `part` names: by id (systems), else by position (expectations.0)."""
    found = [e for e in node if isinstance(e, dict) and str(e.get("id")) == part]
    if found or any(isinstance(e, dict) and "id" in e for e in node):
        return found
    return [node[int(part)]] if part.isdigit() and int(part) < len(node) else []


def key_parts(key: str) -> list[tuple[str, bool]]:
    """KEY -> its parts, each (name, quoted). Parts are separated by dots; a part holding dots is written
    in brackets or quotes: uncertainty.inputs[prophet.prediction_accuracy].low or
    uncertainty.inputs."prophet.prediction_accuracy".low (an unquoted dotted name is also found when it is a
    key of its section)."""
    parts: list[tuple[str, bool]] = []
    i, n, word = 0, len(key), ""
    while i < n:
        c = key[i]
        if c == ".":
            if word:
                parts.append((word, False))
            elif not parts or not parts[-1][1]:
                raise UserError(f'--set {key}: an empty part; allowed: a.b.c, a[b.c].d or a."b.c".d')
            word, i = "", i + 1
        elif c == "[" or (c in "\"'" and not word):
            if word:
                parts.append((word, False))
                word = ""
            close = {"[": "]", '"': '"', "'": "'"}[c]
            j = key.find(close, i + 1)
            if j < 0 or j == i + 1:
                raise UserError(f'--set {key}: {c} without its closing {close}; allowed: a[b.c].d or a."b.c".d')
            inner = key[i + 1 : j]
            parts.append(
                (inner[1:-1] if c == "[" and len(inner) > 1 and inner[0] == inner[-1] in "\"'" else inner, True)
            )
            i = j + 1
            if i < n and key[i] not in ".[":
                raise UserError(f"--set {key}: expected '.' after {key[:i]!r}; allowed: a[b.c].d or a.\"b.c\".d")
            if i < n and key[i] == ".":
                i += 1
                if i == n:
                    raise UserError(f"--set {key}: ends with '.'; allowed: a.b.c, a[b.c].d")
        else:
            word += c
            i += 1
    if word:
        parts.append((word, False))
    if not parts:
        raise UserError(f"--set {key!r}: no key; allowed: KEY=VALUE, e.g. prophet.prediction_accuracy=0.6")
    return parts


FREE_KEYS = (("uncertainty", "inputs"),)  # mappings whose keys are names, not a schema's fields (new keys allowed)


def apply_set(raw: dict, assignment: str) -> None:
    """Apply KEY=VALUE to the parsed config in place. KEY is a dotted path of existing keys; inside
    `systems` the next part is a system id (systems.8xA100.count=16); a name holding dots goes in brackets
    or quotes (uncertainty.inputs[prophet.prediction_accuracy].low=0.9), or is matched as written when it
    is a key of its section. VALUE is read as YAML."""
    if "=" not in assignment:
        raise UserError(f"--set {shown_value(assignment)}: expected KEY=VALUE, e.g. prophet.prediction_accuracy=0.6")
    key, text = assignment.split("=", 1)
    key = key.strip()
    value = parse_yaml(text, f"--set {key}: the value {shown_value(text)}")  # the config's YAML 1.2 rules
    parts = key_parts(key)
    node: Any = raw
    path: list[str] = []
    i = 0
    while i < len(parts):
        part, quoted = parts[i]
        if isinstance(node, dict) and not quoted and part not in node:  # a dotted key written without brackets
            for j in range(len(parts), i + 1, -1):
                joined = ".".join(p for p, _ in parts[i:j])
                if all(not q for _, q in parts[i:j]) and joined in node:
                    part, i = joined, j - 1
                    break
        path.append(part)
        here = ".".join(path)
        last = i == len(parts) - 1
        if isinstance(node, list):
            found = _entry(node, part)
            if not found:
                raise UserError(f"--set {key}: no entry {here!r}; allowed: {_allowed(node)}")
            if last or not isinstance(found[0], dict):
                raise UserError(
                    f"--set {key}: {here!r} is a whole entry; allowed: one of its keys, {_allowed(found[0])}"
                )
            node = found[0]
        elif isinstance(node, dict):
            if part not in node and not (last and tuple(path[:-1]) in FREE_KEYS):
                raise UserError(f"--set {key}: unknown key {here!r}; allowed: {_allowed(node)}")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            raise UserError(f"--set {key}: {'.'.join(path[:-1])!r} is a value, not a section")
        i += 1


CUSTOM_ID = "custom"  # the id of a system given by --gpu --count --interconnect alone


def _custom_entry(raw: dict, original: Study, gpu: str | None, count: int | None, interconnect: str | None) -> dict:
    """A system of `count` x `gpu` joined by `interconnect` (sweep and solve without --system)."""
    if not gpu or not count:
        raise UserError(
            "without --system, give a system: --gpu KEY --count N [--interconnect KEY]; allowed GPUs: "
            + ", ".join(sorted(original.gpus))
        )
    if gpu not in original.gpus:
        raise UserError(f"--gpu {gpu!r}: not in the GPU catalog; allowed: {', '.join(sorted(original.gpus))}")
    if interconnect is None:
        fits = _joins(original, gpu, count)
        raise UserError(
            f"--count {count} x {gpu}: which interconnect joins them? allowed: --interconnect "
            + (", ".join(fits) or f"none of the catalog joins {count} such GPUs")
        )
    entry = {
        "id": CUSTOM_ID,
        "name": f"{count}×{original.gpus[gpu].name}",
        "gpu": gpu,
        "count": count,
        "interconnect": interconnect,
        "hybrid": "auto",
    }
    raw["systems"] = [e for e in raw["systems"] if not (isinstance(e, dict) and e.get("id") == CUSTOM_ID)] + [entry]
    return entry


def _joins(study: Study, gpu: str, count: int) -> list[str]:
    """The catalog interconnects that join `count` GPUs of `gpu`'s generation."""
    gen = study.gpus[gpu].generation
    return sorted(
        k
        for k, n in study.interconnects.items()
        if (not n.gpu_generations or gen in n.gpu_generations)
        and n.max_gpus >= count
        and not (n.sockets == 2 and count % 2)
    )


def _coherent(original: Study, entry: dict, gpu_changed: bool, chosen: bool, notes: list[str]) -> None:
    """A GPU under an interconnect of another generation (an A100 NVSwitch board under H100s) is an error
    unless the interconnect was chosen too; a GPU never measured says whose measured rates it borrows."""
    g, i = entry.get("gpu"), entry.get("interconnect")
    if g not in original.gpus or i not in original.interconnects:
        return  # study_from_raw names the unknown key and the allowed ones
    gpu, net = original.gpus[g], original.interconnects[i]
    if net.gpu_generations and gpu.generation not in net.gpu_generations:
        said = (
            f"interconnect {i!r} ({net.name}) joins {'/'.join(net.gpu_generations)} GPUs, not {gpu.name}"
            f" ({gpu.generation})"
        )
        if not chosen:
            count = entry.get("count") if isinstance(entry.get("count"), int) else 1
            raise UserError(
                f"--gpu {g}: {said}; allowed: --interconnect one of "
                f"{', '.join(_joins(original, g, count)) or '(none in the catalog)'}, or another --gpu"
            )
        notes.append(f"{said}: kept as asked (its rates and latency are those of {net.name})")
    if gpu_changed:
        from prophet_model.study.rates import attainable

        source = attainable(g, original.gpus).source
        if "not measured" in source:
            notes.append(f"attainable rates borrowed: {source}")


def changed_study(
    config: Path,
    system_id: str | None,
    sets: list[str],
    gpu: str | None,
    model: str | None,
    interconnect: str | None,
    count: int | None = None,
    strategy: str | None = None,
    model_file: Path | None = None,
) -> tuple[Study, list[str]]:
    """(the study with the changes, notes on what was adapted).

    `system_id` None: a system of --count x --gpu joined by --interconnect (id `custom`). A fixed
    hybrid split that no longer multiplies to a changed GPU count becomes `auto` (every EP x DP split is
    searched), and a system whose GPU, interconnect or count changed is relabelled, unless the same --set
    names its split or its name; `model` (a catalog key) or `model_file` (a HuggingFace config.json, held in
    memory: model_file.py) is the model served; `strategy` keeps that strategy alone; the notes say so."""
    raw = read_yaml(config)
    original = study_from_raw(copy.deepcopy(raw), config)
    if model and model_file:
        raise UserError(f"--model {model} and --model-file {model_file}: allowed: one of them")
    if system_id is None:
        entry = _custom_entry(raw, original, gpu, count, interconnect)
        system_id = CUSTOM_ID
    else:
        original.system(system_id)  # an unknown id is a UserError naming the allowed ones
        if not (sets or gpu or model or interconnect or count or strategy or model_file):
            return original, []  # nothing to change
    for s in sets:
        apply_set(raw, s)
    entry = next((e for e in raw["systems"] if isinstance(e, dict) and str(e.get("id")) == system_id), None)
    if entry is None:  # --set systems.<id>.id=... renamed the system being asked about
        said = [s for s in sets if s.split("=", 1)[0].strip().endswith(".id")]
        raise UserError(
            f"--set {said[0] if said else '...'}: a what-if cannot rename the system it asks about "
            f"({system_id}); allowed: change its other keys (name, gpu, count, interconnect, hybrid)"
        )
    notes: list[str] = []
    said = {s.split("=", 1)[0].strip() for s in sets}
    if strategy:
        raw["strategies"] = [strategy]
    extra = None
    if model:  # a custom system serves it too (sweep --gpu --count --interconnect --model)
        raw["model"] = model
    elif model_file:
        from prophet_model.study.questions.model_file import read_model_file

        given = read_model_file(model_file, set(original.models))
        raw["model"], extra = given.key, {given.key: given.model}
    if system_id == CUSTOM_ID:
        _coherent(original, entry, True, True, notes)
        label = f"{config} with the system {entry['name']}"
        return study_from_raw(raw, config, label=label, extra_models=extra), notes
    before = next(e for e in original.config.systems if e.id == system_id)
    if gpu:
        entry["gpu"] = gpu
    if interconnect:
        entry["interconnect"] = interconnect
    if count:
        entry["count"] = count
    h = entry.get("hybrid")
    count = entry.get("count")
    if (
        isinstance(h, dict)
        and isinstance(count, int)
        and f"systems.{system_id}.hybrid" not in said
        and h.get("ep", 0) * h.get("dp", 0) != count
    ):
        entry["hybrid"] = "auto"
        notes.append(
            f"hybrid split {h.get('ep')}x{h.get('dp')} does not fit {count} GPUs: every EP x DP split is searched"
            " (auto)"
        )
    chosen = bool(interconnect) or f"systems.{system_id}.interconnect" in said
    _coherent(original, entry, entry.get("gpu") != before.gpu, chosen, notes)
    changed = (
        entry.get("gpu") != before.gpu or entry.get("interconnect") != before.interconnect or count != before.count
    )
    if changed and f"systems.{system_id}.name" not in said:
        gpus = original.gpus
        gpu_name = gpus[entry["gpu"]].name if entry.get("gpu") in gpus else str(entry.get("gpu"))
        entry["name"] = f"{count}×{gpu_name} (what-if)"
        notes.append(f"system {system_id} relabelled {entry['name']!r} (was {before.name!r})")
    label = f"{config} with the what-if changes"
    return study_from_raw(raw, config, label=label, extra_models=extra), notes


def compared_studies(
    config: Path,
    system_id: str,
    sets: list[str],
    gpu: str | None,
    model: str | None,
    interconnect: str | None,
    model_file: Path | None = None,
) -> tuple[Study | None, Study, list[str]]:
    """(before, after, notes) of `whatif`: after, changed_study with every change; before, the same system and
    model (--gpu, --interconnect, --model, --model-file) at the configured inputs (no --set), so that the two
    differ by the --set changes alone: after itself where there are none, None (and a note) where the system
    and model asked about are no study without the --set changes (e.g. a --set interconnect that joins the
    --gpu's generation)."""
    after, notes = changed_study(config, system_id, sets, gpu, model, interconnect, model_file=model_file)
    if not sets:
        return after, after, notes
    try:
        before, _ = changed_study(config, system_id, [], gpu, model, interconnect, model_file=model_file)
    except UserError as exc:
        return None, after, [*notes, f"no '(was ...)': without the --set changes, {exc}"]
    return before, after, notes


def headline(study: Study, system_id: str) -> StudyResults:
    results, failures = run_study(study, [system_id])
    if failures:
        raise UserError(f"{system_id}: the model failed: {failures[system_id]}")
    return results
