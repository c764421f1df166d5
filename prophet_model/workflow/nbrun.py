"""Execute one notebook with papermill, for `pipeline` (python -m prophet_model.workflow.nbrun SPEC, SPEC a JSON
object).

The runner dies with the pipeline (SIGTERM on its parent's death), and on SIGTERM, SIGINT or SIGHUP
it kills the notebook's Jupyter kernel (which runs in a session of its own) and removes its partial
output before exiting, so a killed pipeline leaves neither a kernel nor a `*.partial.ipynb` behind.

The kernel talks over Unix sockets in a folder of this runner's own, not over TCP ports: a TCP port
is chosen by binding port 0 and closing it before the kernel binds it, so two notebooks starting at
once can pick the same port and one kernel dies at start ("Kernel died before replying to
kernel_info"). A kernel that fails to start for another reason is started once more (before any cell
has run, so nothing is executed twice) and the runner says so on stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from prophet_model.workflow.procs import die_with_parent, kill_descendants, pid_alive

RETRIED = "retried: "  # the start of the stderr line that says a kernel was started a second time
START_FAILURES = ("Kernel died before replying to kernel_info", "Kernel didn't respond in")


def kernel_config(sockets: Path):
    """Kernel manager settings: Unix sockets named `<sockets>/k-<n>` where Unix sockets exist (not on
    Windows, where TCP stays)."""
    from traitlets.config import Config

    if os.name == "nt":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "k")}})


def is_start_failure(exc: BaseException) -> bool:
    """Whether papermill failed because the kernel never became ready (no cell ran)."""
    return isinstance(exc, RuntimeError) and str(exc).startswith(START_FAILURES)


KERNEL_PREFIX = "prophet-kernel-"
RUNNER_PID = "runner.pid"


def remove_stale_kernel_dirs(tmp: Path | None = None) -> list[Path]:
    """The socket folders of runners killed with SIGKILL (which could not remove them): named
    `prophet-kernel-*` in the temporary folder, this user's, holding the runner's pid file, that runner
    gone. Returns the folders removed."""
    gone = []
    for d in Path(tmp or tempfile.gettempdir()).glob(f"{KERNEL_PREFIX}*"):
        try:
            if d.is_symlink() or not d.is_dir() or d.stat().st_uid != os.geteuid():
                continue
            pid = (d / RUNNER_PID).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


def main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    partial = Path(spec["output"])
    sockets = Path(tempfile.mkdtemp(prefix=KERNEL_PREFIX))  # short: a socket path has < 108 bytes
    (sockets / RUNNER_PID).write_text(f"{os.getpid()}\n")  # whose folder it is (remove_stale_kernel_dirs)

    def stop(signum: int, frame) -> None:
        kill_descendants()
        partial.unlink(missing_ok=True)
        shutil.rmtree(sockets, ignore_errors=True)
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    die_with_parent(signal.SIGTERM)

    import papermill

    try:
        for attempt in (1, 2):
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
                    config=kernel_config(sockets),
                )
                return 0
            except papermill.PapermillExecutionError as exc:
                print(f"{exc.ename}: {exc.evalue}", file=sys.stderr)
                return 1
            except RuntimeError as exc:
                if attempt == 2 or not is_start_failure(exc):
                    raise
                print(f"{RETRIED}the kernel did not start ({exc}); started it again", file=sys.stderr)
            finally:
                kill_descendants()  # a kernel that did not shut down
    finally:
        shutil.rmtree(sockets, ignore_errors=True)  # this runner's own folder
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
