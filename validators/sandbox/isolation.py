"""The OS wall around untrusted code: the bubblewrap command line that isolates one test run.

What the sandboxed process gets:
- its own PID, network, IPC, UTS and (where allowed) cgroup namespaces: it sees only its own
  processes, only a loopback of its own (nothing on the host's 127.0.0.1 answers), and it dies
  with the worker (`--die-with-parent`). The harness's judge is PID 1 (`--as-pid-1`): the code
  under test cannot signal it, and when it ends the kernel kills everything else in the sandbox;
- a root file system that is an empty tmpfs plus read-only binds of the shared libraries, the
  interpreter binary and its standard library (site-packages hidden). No /etc, /home, /root, the
  project, the data folder or the worker's /proc. /proc is a fresh one for its PID namespace;
- a private, size-capped tmpfs as its working folder (/sandbox);
- an empty environment;
- a non-root uid inside and outside:
  - a worker running as root has bwrap build the namespaces (no user namespace), then `setpriv`
    drops to a uid of its own, picked per run from a range no account uses, with no capabilities
    and no_new_privs, before the interpreter starts. A per-run uid also makes RLIMIT_NPROC count
    this run's processes only;
  - a worker running as any other user gets an unprivileged user namespace that maps its own uid.

`command()` refuses (SandboxUnavailable) rather than run without these when bwrap is missing or
does not work here; the only way round is the explicit `isolation="none"` opt-out in the runner.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

WORKDIR = "/sandbox"
"""The working folder inside the sandbox: a private tmpfs."""
HARNESS_INSIDE = "/harness/harness.py"
SETPRIV = "/usr/bin/setpriv"
FIRST_RUN_UID = 1_610_000_000
"""Per-run uids are drawn from [FIRST_RUN_UID, FIRST_RUN_UID + RUN_UIDS): far above any account."""
RUN_UIDS = 100_000_000


class SandboxUnavailable(RuntimeError):
    """OS isolation cannot be set up on this host; untrusted code must not run."""


def interpreter_binds() -> list[tuple[str, str]]:
    """(host path, same path inside) for the interpreter binary, its stdlib and libpython."""
    exe = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_paths()["stdlib"]
    binds = [exe, stdlib]
    libdir, ldlibrary = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and ldlibrary:
        lib = os.path.join(libdir, ldlibrary)
        if os.path.exists(lib):
            binds.append(lib)
    return [(p, p) for p in binds]


def system_binds() -> list[str]:
    """bwrap arguments for the shared libraries (and nothing else of /usr)."""
    args: list[str] = []
    for usr_lib in ("/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.isdir(usr_lib):
            args += ["--ro-bind", usr_lib, usr_lib]
    for top in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _ancestors(paths: list[str], covered: tuple[str, ...]) -> list[str]:
    """Folders bwrap would create for these mount points, shallowest first.

    bwrap makes missing parents with mode 0700, which a non-root uid cannot enter; they are
    created explicitly with 0755 instead (they are empty folders in the sandbox's own tmpfs)."""
    out: set[str] = set()
    for p in paths:
        for parent in Path(p).parents:
            s = str(parent)
            if s == "/" or any(s == c or s.startswith(c + "/") for c in covered):
                continue
            out.add(s)
    return sorted(out, key=lambda s: (s.count("/"), s))


def run_uid() -> int:
    return FIRST_RUN_UID + secrets.randbelow(RUN_UIDS)


def command(argv: list[str], harness: str, disk_mb: int, uid: int | None = None,
            info_fd: int | None = None) -> list[str]:
    """The bwrap command line that runs `argv` (interpreter first) isolated; `harness` is bound
    read-only at HARNESS_INSIDE. `uid` is the run's uid when the worker is root; bwrap writes the
    sandbox's first pid (JSON) to `info_fd`."""
    bwrap = _bwrap_path()
    as_root = os.geteuid() == 0
    binds = interpreter_binds()
    args = [bwrap, *(["--info-fd", str(info_fd)] if info_fd is not None else []), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv", "--as-pid-1"]
    if not as_root:
        args += ["--unshare-user"]  # maps this (non-root) uid; capabilities in it are dropped by bwrap
    system = system_binds()
    bound_dirs = tuple(system[i + 2] for i, a in enumerate(system) if a == "--ro-bind")
    dests = [d for _, d in binds] + [HARNESS_INSIDE] + ([SETPRIV] if as_root else []) + list(bound_dirs)
    for folder in _ancestors(dests, covered=bound_dirs):  # before any bind makes them 0700
        args += ["--perms", "0755", "--dir", folder]
    args += system
    for src, dest in binds:
        args += ["--ro-bind", src, dest]
    site = os.path.join(sysconfig.get_paths()["stdlib"], "site-packages")
    if os.path.isdir(site):
        args += ["--tmpfs", site]  # the stdlib folder of a non-venv install holds its packages too
    args += ["--ro-bind", harness, HARNESS_INSIDE,
             "--proc", "/proc", "--dev", "/dev",
             "--size", str(disk_mb * 2**20), "--perms", "0777", "--tmpfs", WORKDIR,
             "--size", str(4 * 2**20), "--perms", "1777", "--tmpfs", "/tmp"]
    if as_root:
        args += ["--ro-bind", SETPRIV, SETPRIV]
    args += ["--remount-ro", "/", "--chdir", WORKDIR,
             "--setenv", "PATH", "/nonexistent", "--setenv", "LANG", "C.UTF-8", "--setenv", "HOME", WORKDIR,
             "--setenv", "PYTHONHASHSEED", "0"]
    if as_root:
        if uid is None:
            raise ValueError("a root worker needs a run uid to drop to")
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
                 SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--no-new-privs", "--"]
    else:
        args += ["--cap-drop", "ALL"]
    return args + argv


def _bwrap_path() -> str:
    bwrap = shutil.which("bwrap") or ("/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap") else None)
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so generated code and job tests cannot be isolated; install it "
            "(Debian/Ubuntu: apt-get install bubblewrap) or set HYBRIDGEN_SANDBOX_ISOLATION=none to run them "
            "without OS isolation (unsafe: only for code you trust)")
    if os.geteuid() == 0 and not os.path.exists(SETPRIV):
        raise SandboxUnavailable(f"the worker runs as root and {SETPRIV} (util-linux) is missing, so the sandbox "
                                 "cannot drop to an unprivileged uid; install util-linux or run the worker as "
                                 "another user")
    return bwrap


@lru_cache(maxsize=1)
def check_available(harness: str) -> None:
    """Build one sandbox that runs an empty program; SandboxUnavailable if that fails (once per process)."""
    probe = command([os.path.realpath(sys.executable), "-I", "-S", "-c", "pass"], harness, disk_mb=1,
                    uid=run_uid() if os.geteuid() == 0 else None)
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxUnavailable(f"bwrap could not be started ({e}); set HYBRIDGEN_SANDBOX_ISOLATION=none to run "
                                 "tests without OS isolation (unsafe)") from None
    if done.returncode != 0:
        raise SandboxUnavailable(
            f"bwrap cannot build a sandbox on this host ({done.stderr.strip()[:300] or f'exit {done.returncode}'}); "
            "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone / "
            "user.max_user_namespaces). Set HYBRIDGEN_SANDBOX_ISOLATION=none to run tests without OS isolation "
            "(unsafe)")
