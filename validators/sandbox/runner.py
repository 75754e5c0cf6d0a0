"""Start one sandboxed test run with its limits, collect its results, and always clean up.

Layers of containment, outermost first:
- the OS sandbox (isolation.py): namespaces, read-only interpreter and stdlib, a private tmpfs,
  no network, a non-root uid of its own; killed whole at the wall-clock limit;
- resource limits set before exec: CPU seconds, address space, size of any file it writes,
  open files, process count, no core dumps;
- the harness (harness.py): a judge process that holds the results channel and a runner process
  for the code under test, which never sees the expected values or the channel;
- the runner's audit hook (no subprocesses, sockets, ctypes): an extra layer, not the wall.

Nothing touches the host's disk: the job goes in on an in-memory file, stdout, stderr and the
results come back on in-memory files.

`isolation="none"` drops the OS sandbox (for hosts without bubblewrap, explicitly opted into by
HYBRIDGEN_SANDBOX_ISOLATION=none); the harness still refuses to run code as root.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from validators.sandbox import isolation
from validators.sandbox.harness import describe_signal

HARNESS = Path(__file__).resolve().parent / "harness.py"
ISOLATIONS = ("bwrap", "none")


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    output_bytes: int = 1_000_000
    """Largest file the code may write, stdout and stderr included."""
    max_processes: int = 8
    """Processes of the run's uid (judge and runner included). With the per-process address-space
    limit this also bounds a run's memory: 8 x memory_mb (4 GiB by default)."""
    max_open_files: int = 64
    disk_mb: int = 64
    """Size of the sandbox's private working folder (a tmpfs)."""
    isolation: str = "bwrap"
    """'bwrap' (the OS sandbox; refuse to run when it cannot be built) or 'none' (unsafe opt-out)."""
    audit_hook: bool = True
    """The runner's Python audit hook; the adversarial tests turn it off to test the OS wall alone."""

    def __post_init__(self):
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"sandbox isolation {self.isolation!r}; expected one of {', '.join(ISOLATIONS)}")


@dataclass
class SandboxResult:
    passed: bool
    tests: list[dict] = field(default_factory=list)
    solution_error: str | None = None
    problem: str | None = None
    """Why the run itself failed: not isolated, timeout, killed by a limit, no result."""
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


def run_tests(code: str, tests: list[str], setup: str = "", limits: Limits = Limits()) -> SandboxResult:
    t0 = time.monotonic()
    uid = isolation.run_uid() if os.geteuid() == 0 else None
    info_r, info_w = os.pipe()  # bwrap writes the sandbox's first pid here (for the kill at the wall clock)
    try:
        argv = _command(limits, uid, info_w)
    except isolation.SandboxUnavailable as e:
        os.close(info_r)
        os.close(info_w)
        return SandboxResult(False, problem=f"tests not run: {e}", seconds=time.monotonic() - t0)
    job = json.dumps({"code": code, "tests": tests, "setup": setup, "audit_hook": limits.audit_hook,
                      "limits": {"cpu_s": limits.cpu_s, "output_bytes": limits.output_bytes}})
    stdin, stdout, stderr, results = (_memfd(name) for name in ("job", "stdout", "stderr", "results"))
    try:
        os.write(stdin, job.encode("utf-8"))
        os.lseek(stdin, 0, os.SEEK_SET)
        try:
            harness_args = [str(results), str(limits.max_processes),
                            "isolated" if limits.isolation == "bwrap" else "not-isolated"]
            proc = subprocess.Popen(argv + harness_args, stdin=stdin, stdout=stdout, stderr=stderr,
                                    pass_fds=(results, info_w), start_new_session=True, close_fds=True,
                                    preexec_fn=_limit_child(limits))
        except OSError as e:
            return SandboxResult(False, problem=f"the sandbox could not be started: {e}",
                                 seconds=time.monotonic() - t0)
        os.close(info_w)
        info_w = -1
        problem = None
        try:
            proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            problem = f"timed out after {limits.wall_s:g} s (wall clock)"
        finally:
            _kill_sandbox(proc, info_r)
        if problem is None and proc.returncode != 0:
            problem = _explain_exit(proc.returncode, limits)
        raw = _read_all(results, 2_000_000)
        out_text, err_text = _tail(stdout), _tail(stderr)
    finally:
        for fd in (stdin, stdout, stderr, results, info_r, info_w):
            if fd >= 0:
                os.close(fd)
    try:
        payload = json.loads(raw.strip().splitlines()[-1]) if raw.strip() else None
    except (json.JSONDecodeError, IndexError):
        payload = None
    seconds = time.monotonic() - t0
    if payload is None:
        return SandboxResult(False, problem=problem or "the sandbox returned no result", stdout=out_text,
                             stderr=err_text, seconds=seconds)
    problem = problem or payload.get("problem")
    tests_out = payload["tests"]
    passed = problem is None and payload["solution_error"] is None and all(t["passed"] for t in tests_out)
    return SandboxResult(passed, tests_out, payload["solution_error"], problem, out_text, err_text, seconds)


def _command(limits: Limits, uid: int | None, info_fd: int) -> list[str]:
    python = [os.path.realpath(sys.executable), "-I", "-S", "-B"]
    if limits.isolation == "none":
        return python + [str(HARNESS)]
    isolation.check_available(str(HARNESS))
    return isolation.command(python + [isolation.HARNESS_INSIDE], str(HARNESS), limits.disk_mb, uid, info_fd)


def _limit_child(limits: Limits):
    """Limits for bwrap and everything under it (they are inherited across exec and setpriv).

    The process count is set by the harness's runner, for the code under test alone: set here, it
    would count a non-root worker's own threads and stop bwrap from creating its namespaces.
    Without isolation a root worker's child drops to `nobody` when it can (the harness refuses root)."""
    nobody = _nobody_ids() if limits.isolation == "none" and os.geteuid() == 0 else None

    def apply() -> None:
        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nobody is not None:
            os.setgroups([])
            os.setgid(nobody[1])
            os.setuid(nobody[0])
    return apply


def _nobody_ids() -> tuple[int, int] | None:
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return nobody.pw_uid, nobody.pw_gid


def _kill_sandbox(proc: subprocess.Popen, info_fd: int) -> None:
    """SIGKILL the sandbox's first process, which takes its whole PID namespace with it; bwrap then
    reaps it and exits (killing bwrap first would leave zombies for the host's init to reap)."""
    if proc.poll() is None and select.select([info_fd], [], [], 0)[0]:
        try:
            info = json.loads(os.read(info_fd, 65536) or b"{}")
            os.kill(int(info["child-pid"]), signal.SIGKILL)
            proc.wait(timeout=5)
        except (ValueError, KeyError, TypeError, OSError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _memfd(name: str) -> int:
    return os.memfd_create(f"hybridgen-sandbox-{name}", 0)


def _read_all(fd: int, limit: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, limit).decode("utf-8", errors="replace")


def _tail(fd: int, limit: int = 2000) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, max(0, size - limit), os.SEEK_SET)
    return os.read(fd, limit).decode("utf-8", errors="replace")


def _explain_exit(code: int, limits: Limits) -> str:
    """A negative code is a signal; bwrap reports its child's signal N as 128 + N."""
    signo = -code if code < 0 else code - 128 if 128 < code < 128 + signal.NSIG else None
    if signo is None:
        return f"exited with status {code}"
    return "stopped by " + describe_signal(signo, {"cpu_s": limits.cpu_s, "output_bytes": limits.output_bytes})
