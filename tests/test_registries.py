"""The registries of inputs (study/inputs.py) and result columns (study/columns.py), and the one inversion
(study/inversion.py): every input the code bounds or varies is declared there and nowhere else with bounds; the
schema, sensitivity and claims read it; every column a results CSV holds is registered; the solver finds a root
derived by hand."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from prophet_model.study import claims as cl
from prophet_model.study import columns, inputs, inversion, schema, sensitivity

from .conftest import ROOT

PACKAGE = ROOT / "prophet_model"
REGISTRY_FILES = {PACKAGE / "study" / f for f in ("inputs.py", "columns.py", "columns_measured.py")}
# the commands' own tables (`sweep`'s allowed values, `solve`'s default ranges), to be replaced by the registry's
# accessors when the commands are wired to it (issue 35: inputs.bounds_table, inputs.solve_range); then empty this
PENDING: tuple[str, ...] = ()


def _literal_tables(path: Path) -> list[tuple[int, str]]:
    """(line, key) of every dict literal in `path` whose key is a registered input and whose value is a literal
    tuple of numbers (a bound or range table: (low, high), (low, high, inclusive, ...)) or an array grid."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Dict):
            continue
        for k, v in zip(node.keys, node.values, strict=True):
            if not (isinstance(k, ast.Constant) and k.value in inputs.BY_KEY):
                continue
            numbers = isinstance(v, ast.Tuple) and any(
                isinstance(e, ast.Constant) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool)
                for e in v.elts
            )
            grid = isinstance(v, ast.Call) and getattr(v.func, "attr", "") in ("linspace", "geomspace", "array")
            if numbers or grid:
                found.append((node.lineno, k.value))
    return found


def test_no_module_but_the_registry_declares_bounds_or_grids_of_a_registered_input(tmp_path: Path) -> None:
    # the detector finds tables like the ones the registry replaced
    probe = tmp_path / "probe.py"
    probe.write_text(
        'B = {"routing.temporal_reuse": (0.0, 0.999)}\nG = {"prophet.prediction_accuracy": np.linspace(0, 1, 3)}\n',
        encoding="utf-8",
    )
    assert [k for _, k in _literal_tables(probe)] == ["routing.temporal_reuse", "prophet.prediction_accuracy"]
    offenders = {
        str(p.relative_to(ROOT)): sorted({key for _, key in _literal_tables(p)})
        for p in PACKAGE.rglob("*.py")
        if p not in REGISTRY_FILES and _literal_tables(p)
    }
    outside = {p: keys for p, keys in offenders.items() if p not in PENDING}
    assert not outside, f"bounds or grids of registered inputs outside study/inputs.py: {outside}"
    # a file still waiting for the registry holds its table; once wired, take it out of PENDING
    assert set(PENDING) <= set(offenders), f"wired to the registry, no longer pending: {set(PENDING) - set(offenders)}"


def test_the_schema_bounds_every_configured_input_as_the_registry_does() -> None:
    sections = {
        "workload": schema.Workload,
        "prophet": schema.Prophet,
        "expert_cache": schema.ExpertCache,
        "routing": schema.Routing,
    }
    checked = 0
    for i in inputs.REGISTRY:
        section, _, name = i.key.partition(".")
        if section not in sections or i.choices:
            continue
        field = sections[section].model_fields[name]
        declared = {k: getattr(field, k) for k in ("ge", "gt", "le", "lt") if getattr(field, k) is not None}
        assert declared == i.field_bounds(), i.key
        checked += 1
    assert checked == 8  # accuracy, comm cut, batch, context, memory share, skew, reuse, affinity


@pytest.mark.parametrize("key", [i.key for i in inputs.REGISTRY if not i.choices])
def test_each_bound_allows_what_it_says_and_nothing_past_it(key: str) -> None:
    i = inputs.get(key)
    low, high = i.closed()
    assert low < high and all(i.allows(end) for end in (low, high) if math.isfinite(end))
    for end, inclusive, outward in ((i.low, i.low_inclusive, -1), (i.high, i.high_inclusive, 1)):
        if math.isfinite(end):
            assert i.allows(end) == inclusive
            assert not i.allows(end + outward * max(abs(end), 1) * 1e-6)
    if i.whole:
        assert not i.allows(low + 0.5)
    rng = inputs.solve_range(key)
    assert rng is not None and rng[0] < rng[1]


def test_sensitivity_and_claims_read_the_registry() -> None:
    assert set(sensitivity.INPUTS) == set(inputs.BY_KEY)
    assert set(sensitivity.SWEEPS) == set(inputs.SWEEP_ORDER) == {i.key for i in inputs.REGISTRY if i.sweep}
    assert set(sensitivity.PROPHET_ONLY_INPUTS) == {i.key for i in inputs.REGISTRY if i.side == "prophet"}
    assert set(schema.UNCERTAIN_INPUTS) == {i.key for i in inputs.REGISTRY if i.uncertain}
    for lever, (key, grid, _) in cl.LEVERS.items():
        i = inputs.get(key)
        assert i.lever is not None and i.lever.name == lever
        assert all(i.allows(v) for v in grid), lever  # a lever is searched over allowed values only
        assert (lever in cl.PROPHET_ONLY) == (i.side == "prophet")
    for name in (*cl.SINGLE_GPU_LEVERS, *cl.MULTI_GPU_LEVERS, *cl.COMM_LEVERS, *cl.NEED_LEVERS):
        assert name in cl.LEVERS
    for key, values in sensitivity.SWEEPS.items():
        assert all(inputs.get(key).allows(v) for v in (np.round(values) if inputs.get(key).whole else values)), key


def test_the_monte_carlo_keeps_a_drawn_value_inside_the_allowed_range() -> None:
    for key in inputs.uncertain_keys():
        bounds = inputs.clip_bounds(key)
        if bounds is None:
            assert inputs.get(key).mode == "factor"
            continue
        assert all(inputs.get(key).allows(end) for end in bounds if math.isfinite(end)), key


def test_every_listed_column_is_registered_once_per_file() -> None:
    for name, cols in columns.FILES.items():
        names = columns.names(cols)
        assert len(set(names)) == len(names), name
    comparison = set(columns.comparison_columns())
    assert set(columns.KEYED_ORDER) <= comparison and set(columns.GRID_ORDER) <= comparison
    assert len(set(columns.KEYED_ORDER)) == len(columns.KEYED_ORDER)
    for name, fmt_name in columns.keyed():
        assert fmt_name, name  # a keyed value has a formatter
    assert set(schema.COMPARISON_METRICS) <= comparison - set(columns.text_columns())


def test_latex_reads_every_keyed_column_with_a_formatter_that_exists() -> None:
    from prophet_model.outputs.latex import KEYED_METRICS, formatter

    assert [c for c, _ in KEYED_METRICS] == list(columns.KEYED_ORDER)
    for c in {c for cols in columns.FILES.values() for c in cols}:
        if c.format:
            assert isinstance(formatter(c.format)(1.5), str), c.name


def test_an_unregistered_column_is_refused() -> None:
    with pytest.raises(KeyError, match="unregistered"):
        columns.in_order({"system_id": "x", "not_a_column": 1.0})
    assert list(columns.in_order({"speedup": 2.0, "system_id": "x"})) == ["system_id", "speedup"]


def test_every_column_the_study_writes_is_registered() -> None:
    """The tables `run` writes to results/data, built in-process for one small system (the claims and the Monte
    Carlo's table from their own column lists)."""
    from prophet_model.study.config import load_study
    from prophet_model.study.runner import run_study

    study = load_study(ROOT / "_config.yml")
    results, failures = run_study(study, ["2xA100"])
    assert not failures
    written = {
        "results_*.csv": results.rows,
        "all_systems_comparison.csv": results.comparison,
        "fixed_batch_comparison.csv": results.fixed,
        "headline.csv": results.headline,
        "claims.csv": cl.table(cl.single_gpu_claims(study)),
    }
    for name, df in written.items():
        unknown = set(df.columns) - set(columns.names(columns.FILES[name]))
        assert not unknown, (name, sorted(unknown))
    assert list(results.comparison.columns) == list(columns.comparison_columns())  # order: the registry's
    assert sensitivity.MC_COLUMNS == list(columns.names(columns.UNCERTAINTY))


def _header(path: Path) -> list[str]:
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        return next(csv.reader(f), [])


def test_the_results_folder_holds_only_registered_columns() -> None:
    """Every CSV under results/data, validation/ included (where `make` wrote one): its header is the registry's,
    in the registry's order (regime_map.csv's input columns are registered inputs; a comparison may leave out a
    column; a validation table holds every column of its own)."""
    import fnmatch

    data = ROOT / "results" / "data"
    files = sorted(data.rglob("*.csv")) if data.is_dir() else []
    if not files:
        pytest.skip("no results folder (run make)")
    for path in files:
        rel, header = path.relative_to(data).as_posix(), _header(path)
        specs = [cols for pat, cols in columns.FILES.items() if fnmatch.fnmatch(rel, pat)]
        assert len(specs) == 1, (rel, "not one registered file pattern")
        if rel.startswith("validation/"):
            assert header == columns.arrange(header, specs[0], rel), rel
            continue
        own = [c for c in header if c not in inputs.BY_KEY]
        unknown = [c for c in own if c not in columns.names(specs[0])]
        assert not unknown, (rel, unknown)
        assert own == [c for c in columns.names(specs[0]) if c in own], (rel, "not in the registry's order")


def test_the_validation_tables_hold_their_registered_columns_in_order() -> None:
    """measured.tables, built in-process for one small system (no results folder needed): one table per
    registered stem (outputs/files.py's stems, in its order), each with every registered column in the registry's
    order; the claims' evidence joins the comparison on the comparison's own columns."""
    from prophet_model.measured.tables import tables
    from prophet_model.outputs.files import VALIDATION_TABLES
    from prophet_model.study import columns_measured
    from prophet_model.study.config import load_study
    from prophet_model.study.runner import run_study

    assert list(columns_measured.TABLES) == list(VALIDATION_TABLES)
    study = load_study(ROOT / "_config.yml")
    results, failures = run_study(study, ["2xA100"])
    assert not failures
    built, _ = tables(study, results.headline, None, strict=True)
    assert list(built) == list(columns_measured.TABLES)
    for stem, t in built.items():
        spec = columns_measured.TABLES[stem]
        assert not t.columns.empty, stem  # a table without columns is not checked: none of the committed data's
        header = [str(c) for c in t.columns]
        assert header == columns.arrange(header, spec, stem), stem
    assert columns_measured.CLAIM_EVIDENCE[:2] == (columns.get("system_id"), columns.get("strategy"))


def test_a_validation_table_with_a_column_not_registered_or_missing_is_refused() -> None:
    import pandas as pd

    from prophet_model.measured.tables import in_order
    from prophet_model.study import columns_measured
    from prophet_model.study.measured_csv import MeasurementError

    names = list(columns.names(columns_measured.SCALING))
    t = pd.DataFrame([dict.fromkeys(names, 1.0)])
    assert list(in_order("scaling", t[names[::-1]]).columns) == names  # put in the registry's order
    with pytest.raises(MeasurementError, match=r"validation/scaling\.csv: unregistered column\(s\) extra"):
        in_order("scaling", t.assign(extra=2.0))
    # a column of the user's own measurements is left out, not an error, outside the tests' strict mode
    assert list(in_order("scaling", t.assign(extra=2.0), strict=False).columns) == names
    with pytest.raises(MeasurementError, match="missing predicted_s"):
        in_order("scaling", t.drop(columns="predicted_s"))
    with pytest.raises(ValueError, match="allowed: points"):
        in_order("nonsense", t)
    # a pattern column stands for every column it matches, in the table's order, and for none
    wide = pd.DataFrame({"64 MiB (µs)": [2.0], "run": ["x"], "16 MiB (µs)": [1.0]})
    assert list(in_order("nccl_settings", wide).columns) == ["run", "64 MiB (µs)", "16 MiB (µs)"]
    assert list(in_order("nccl_settings", wide[["run"]]).columns) == ["run"]


def test_inversion_solves_a_hand_example_exactly() -> None:
    # f(x) = x^2 on [0, 4]: f = 2 at sqrt(2) = 1.41421356...; a linear f = 3x - 1 reaches 5 at x = 2 exactly,
    # a grid point of linspace(0, 4, 9), so the root is that point as it stands
    s = inversion.solve(lambda x: x**2, np.linspace(0.0, 4.0, 41), 2.0)
    assert len(s.roots) == 1 and s.roots[0] == pytest.approx(math.sqrt(2), rel=1e-12)
    assert inversion.solve(lambda x: 3 * x - 1, np.linspace(0.0, 4.0, 9), 5.0).roots == [2.0]
    # two roots of (x - 1)(x - 3) = 0 on [0, 4]; `near` picks the one nearer 2.8 by ratio
    both = inversion.solve(lambda x: (x - 1) * (x - 3), np.linspace(0.0, 4.0, 40), 0.0)
    assert both.roots == pytest.approx([1.0, 3.0], rel=1e-12)
    assert inversion.solve(lambda x: (x - 1) * (x - 3), np.linspace(0.0, 4.0, 40), 0.0, near=2.8).roots == (
        pytest.approx([3.0], rel=1e-12)
    )
    # a whole-number input: the smallest whole x with 10x >= 35 is 4 (the bracket's upper end)
    value, others, _, _ = inversion.solve_range(lambda x: 10 * x, 1, 100, 35.0, True, 11, 24, 2)
    assert value == 4 and others == []
    # unreachable: x^2 on [0, 1] never reaches 5; no root, the grid's values say how close it gets
    far = inversion.solve(lambda x: x**2, np.linspace(0.0, 1.0, 11), 5.0)
    assert far.roots == [] and np.nanmax(far.y) == 1.0
