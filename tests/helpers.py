"""Helpers for tests that drive real processes: the CLI and Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from tests.conftest import REPO

HYBRIDGEN = [sys.executable, "-m", "hybridgen"]


def cli_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDGEN_")}
    env.update({f"HYBRIDGEN_{k.upper()}": str(v) for k, v in settings.items()})
    if "data_dir" in settings:  # a data folder must exist: hybridgen refuses a mistyped one
        Path(settings["data_dir"]).mkdir(parents=True, exist_ok=True)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(HYBRIDGEN + args, env=env, cwd=REPO, capture_output=True, timeout=timeout,
                          input=stdin if stdin is not None else b"")


class WorkerProcess:
    """`hybridgen worker` in a subprocess (its own process group, so a kill takes its children)."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            HYBRIDGEN + ["worker", "--loglevel", "INFO", *args], env=env, cwd=REPO,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self._log.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5,
             on_timeout: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    extra = ("\n" + on_timeout()) if on_timeout else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{extra}")
