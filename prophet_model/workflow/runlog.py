"""The run log: one file per run under <results>/logs, a header that pins down what ran, and the
closing line (ANALYSIS COMPLETED SUCCESSFULLY, or an ERROR line with the cause)."""

from __future__ import annotations

import logging
import platform
import sys
from datetime import datetime
from pathlib import Path

from prophet_model.study.config import Study
from prophet_model.versions import package_versions

SUCCESS = "ANALYSIS COMPLETED SUCCESSFULLY"
LOG_GLOB = "multi_gpu_analysis_*.log"

log = logging.getLogger("prophet_model")


def open_log(logs_dir: Path, level: str) -> Path:
    """Attach a file handler writing to logs_dir/multi_gpu_analysis_YYYYMMDD_HHMMSS.log."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    path = logs_dir / f"multi_gpu_analysis_{stamp}.log"
    n = 1
    while path.exists():
        path = logs_dir / f"multi_gpu_analysis_{stamp}_{n}.log"
        n += 1
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    handler.setLevel(level)
    log.addHandler(handler)
    log.setLevel(min(log.level or logging.WARNING, logging.getLevelName(level)))
    return path


def close_log() -> None:
    for h in list(log.handlers):
        if isinstance(h, logging.FileHandler):
            h.close()
            log.removeHandler(h)


def write_header(study: Study, argv: list[str]) -> None:
    log.info("prophet_model run: %s", " ".join(argv) or "(defaults)")
    log.info("config: %s (sha256/16 of config + catalogs: %s)", study.path.resolve(), study.config_hash)
    log.info("platform: %s, %s", platform.platform(), sys.executable)
    log.info("packages: %s", ", ".join(f"{k} {v}" for k, v in package_versions().items()))
    log.info("model: %s; systems: %s", study.model.name, ", ".join(s.id for s in study.systems))


def latest_log(logs_dir: Path) -> Path | None:
    logs = sorted(logs_dir.glob(LOG_GLOB), key=lambda p: p.stat().st_mtime) if logs_dir.is_dir() else []
    return logs[-1] if logs else None
