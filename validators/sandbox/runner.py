"""Start the sandbox process with limits, collect its results, and always clean up.

Layers of containment (each covers a case the others miss):
- resource limits set in the child before exec: CPU seconds, address space, size of any file it
  writes (stdout/stderr go to files, so a 100 MB print is cut at the cap), open files, process
  count, no core dumps;
- if the worker runs as root, the child drops to the unprivileged `nobody` user (process-count
  limits do not bind root, and nobody cannot write to the worker's files);
- a fresh session and process group, killed whole at the wall-clock limit;
- a cleaned environment (no secrets), an isolated interpreter (-I -S -B), a private temp folder;
- the harness's audit hook: no subprocesses, sockets, ctypes, or writes outside the folder.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HARNESS = Path(__file__).resolve().parent / "harness.py"


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    output_bytes: int = 1_000_000
    max_processes: int = 32
    max_open_files: int = 64


@dataclass
class SandboxResult:
    passed: bool
    tests: list[dict] = field(default_factory=list)
    solution_error: str | None = None
    problem: str | None = None
    """Why the run itself failed: timeout, killed by a limit, no result."""
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


def _unprivileged_ids() -> tuple[int, int] | None:
    """nobody's ids, when running as root and `nobody` can execute this interpreter.

    (A pyenv Python under /root is not reachable by nobody; then the child stays root and the
    audit hook and the other limits carry the containment alone.)"""
    if os.geteuid() != 0 or not _reachable_by_others(Path(sys.executable).resolve()):
        return None
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid
    except KeyError:
        return None


def _reachable_by_others(path: Path) -> bool:
    import stat

    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            return False
    return True


def _limit_child(limits: Limits, ids: tuple[int, int] | None):
    def apply() -> None:
        os.setsid()
        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if ids is not None:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
    return apply


def run_tests(code: str, tests: list[str], setup: str = "", limits: Limits = Limits()) -> SandboxResult:
    t0 = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="hybridgen-sandbox-"))
    ids = _unprivileged_ids()
    try:
        config = folder / "config.json"
        config.write_text(json.dumps({"code": code, "tests": tests, "setup": setup}), encoding="utf-8")
        harness = folder / "harness.py"
        shutil.copyfile(HARNESS, harness)
        if ids is not None:
            for p in (folder, config, harness):
                os.chown(p, *ids)
        read_fd, write_fd = os.pipe()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": str(folder)}
        with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
            if ids is not None:
                for p in ("stdout", "stderr"):
                    os.chown(folder / p, *ids)
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(harness), str(config), str(write_fd)],
                cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, pass_fds=(write_fd,),
                preexec_fn=_limit_child(limits, ids), close_fds=True,
            )
            os.close(write_fd)
            problem = None
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                problem = f"timed out after {limits.wall_s:g} s (wall clock)"
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: children it managed to start
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as fh:
            raw = fh.read(2_000_000)
        stdout = _tail(folder / "stdout")
        stderr = _tail(folder / "stderr")
        if problem is None and proc.returncode != 0:
            problem = _explain_exit(proc.returncode, limits)
        try:
            results = json.loads(raw.strip().splitlines()[-1]) if raw.strip() else None
        except (json.JSONDecodeError, IndexError):
            results = None
        if results is None:
            return SandboxResult(False, problem=problem or "the sandbox returned no result", stdout=stdout,
                                 stderr=stderr, seconds=time.monotonic() - t0)
        tests_out = results["tests"]
        passed = problem is None and results["solution_error"] is None and all(t["passed"] for t in tests_out)
        return SandboxResult(passed, tests_out, results["solution_error"], problem, stdout, stderr,
                             time.monotonic() - t0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _explain_exit(code: int, limits: Limits) -> str:
    if code < 0:
        sig = signal.Signals(-code).name
        reasons = {"SIGXCPU": f"CPU limit of {limits.cpu_s} s", "SIGXFSZ": f"output limit of {limits.output_bytes} bytes",
                   "SIGKILL": "killed", "SIGSEGV": "crashed (segmentation fault)"}
        return f"stopped by {sig}: {reasons.get(sig, 'signal')}"
    return f"exited with status {code}"


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
