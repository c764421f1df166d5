"""Execute one notebook with papermill, for `pipeline` (python -m prophet_model.workflow.nbrun SPEC, SPEC a JSON object).

The runner dies with the pipeline (SIGTERM on its parent's death), and on SIGTERM, SIGINT or SIGHUP
it kills the notebook's Jupyter kernel (which runs in a session of its own) and removes its partial
output before exiting, so a killed pipeline leaves neither a kernel nor a `*.partial.ipynb` behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from prophet_model.workflow.procs import die_with_parent, kill_descendants


def main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    partial = Path(spec["output"])

    def stop(signum: int, frame) -> None:
        kill_descendants()
        partial.unlink(missing_ok=True)
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    die_with_parent(signal.SIGTERM)

    import papermill

    try:
        papermill.execute_notebook(
            spec["input"],
            spec["output"],
            parameters=spec["parameters"],
            cwd=spec["cwd"],
            kernel_name="python3",
            execution_timeout=spec["timeout_s"],
            progress_bar=False,
            log_output=False,
        )
    except papermill.PapermillExecutionError as exc:
        print(f"{exc.ename}: {exc.evalue}", file=sys.stderr)
        return 1
    finally:
        kill_descendants()  # a kernel that did not shut down
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
