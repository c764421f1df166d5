"""What the writers need beyond the study's comparison tables, computed once by `run` and written under
results/data/ (outputs/report.py writes them): the pages, the paper and the notebooks read these files and
never call the study's computing modules or the measured layer themselves.

    hardware_rates.csv   the attainable rates of every GPU the study uses, and where they come from
    worked_example.csv   every intermediate number of the headline system and strategy (SI units)
    facts.json           the study's constants and lists the writers show (claim sentences, contours, ...)
    sensitivity/         the sensitivity page's sweeps, tornado rankings and speedup maps (sensitivity_tables)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from prophet_model.study.runner import StudyResults


def writer_tables(results: StudyResults, checks: pd.DataFrame, claims: list, whole: bool = True) -> dict[str, Any]:
    """{name: DataFrame or dict} for outputs/report.py to write: the tables above, the claims table
    (claims.csv) and the regime map (regime_map.csv); `facts` is the JSON file. A partial run (`whole`
    false) writes only the per-system files, which need the facts and the hardware rates alone."""
    from prophet_model.study.claims import NEED_LEVERS, NEED_PREFIX, sentence, single_gpu_id, table
    from prophet_model.study.rates import MEASUREMENTS, hardware_rows, machine_specs
    from prophet_model.study.regime import LEVELS, reference_system, regime_map
    from prophet_model.study.sensitivity import uncertain_inputs
    from prophet_model.study.worked_example import worked_example

    study = results.study
    machines = machine_specs()
    facts = {
        "need_prefix": NEED_PREFIX,
        "need_levers": list(NEED_LEVERS),
        "regime_levels": list(LEVELS),
        "reference_system": reference_system(study),
        "uncertain_inputs": uncertain_inputs(study),
        "single_gpu_id": single_gpu_id(study),
        "claim_sentences": [[c.system_id, sentence(c)] for c in claims],
        "measured_gpus": [m["gpu"] for name, m in machines.items() if (MEASUREMENTS / name / "env.json").is_file()],
        "measured_machines": sum((MEASUREMENTS / k).is_dir() for k in machines),
    }
    hardware = pd.DataFrame(hardware_rows(study))
    if not whole:
        return {"facts": facts, "hardware_rates": hardware}
    system, ep, terms = worked_example(study)
    worked = pd.DataFrame(
        [
            {"variant": name, "system_id": system.id, "ep": ep, **t}
            for name, t in zip(("baseline", "prophet"), terms, strict=True)
        ]
    )
    return {
        "sensitivity": sensitivity_tables(results),
        "claims": table(claims),
        "regime_map": regime_map(results),
        "hardware_rates": hardware,
        "worked_example": worked,
        "facts": facts,
    }


def sensitivity_tables(results: StudyResults) -> dict[str, pd.DataFrame]:
    """The sensitivity page's data, per system at its headline operating point (study/sensitivity.py's
    setups), each table led by system_id, system and strategy:
    sweeps  every input over its sweep range, the others as configured: input, label, value, the metrics;
    tornado each input at the ends of its range, ranked by the spread of the speedup (metric: speedup);
    maps    the speedup over prediction accuracy (0-1) x each map input (`against`, its axis `log_scale`),
            long form, row-major over (value, accuracy): `accuracy`, `value`, `speedup`."""
    from prophet_model.study import sensitivity as sens

    sweeps, tornado, maps = [], [], []
    for sid, setup in sens.setups(results).items():
        head = {"system_id": sid, "system": setup.system.name, "strategy": setup.strategy}
        swept = sens.sweeps(setup)
        labels = swept.input.map(sens.LABELS)
        sweeps.append(pd.DataFrame({**head, "input": swept.input, "label": labels}).join(swept.iloc[:, 1:]))
        t = sens.tornado(setup, "speedup", swept)
        tornado.append(pd.DataFrame({**head, "metric": "speedup"}, index=t.index).join(t))
        for against, (_, log) in sens.MAPS.items():
            acc, value, speedup = sens.speedup_map(setup, against)
            grid = {"accuracy": acc.ravel(), "value": value.ravel(), "speedup": speedup.ravel()}
            maps.append(pd.DataFrame({**head, "against": against, "log_scale": log, **grid}))
    from prophet_model.study.columns import MAPS, SWEEPS, TORNADO, names

    columns = {"sweeps": names(SWEEPS), "tornado": names(TORNADO), "maps": names(MAPS)}  # study/columns.py
    frames = {"sweeps": sweeps, "tornado": tornado, "maps": maps}
    return {
        name: pd.concat(f, ignore_index=True)[list(columns[name])] if f else pd.DataFrame(columns=list(columns[name]))
        for name, f in frames.items()
    }
