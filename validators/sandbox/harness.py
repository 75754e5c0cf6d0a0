"""Runs inside the sandbox process (as a script, not imported by the worker).

    python -I -S -B harness.py CONFIG.json RESULT_FD

Before any generated code runs, it installs a Python audit hook that refuses process creation,
sockets, ctypes, and writes outside the sandbox folder; then it executes the solution and each test
separately, and writes one JSON line of results to the inherited file descriptor. Resource limits
(CPU, memory, output size, process count) are set by the parent before exec.
"""

import json
import os
import sys
import traceback

BLOCKED = {
    "os.system", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "ctypes.dlopen", "ctypes.dlsym",
    "ctypes.cdata", "os.kill", "os.killpg", "os.putenv", "os.unsetenv", "pty.spawn", "sys.remote_exec",
}
PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
               "os.truncate", "shutil.rmtree", "shutil.copyfile", "shutil.move"}
BLOCKED_IMPORTS = {"ctypes", "_ctypes", "cffi", "_posixsubprocess", "multiprocessing"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(root: str) -> None:
    root = os.path.realpath(root)

    def inside(path) -> bool:
        try:
            p = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return p == root or p.startswith(root + os.sep)

    def hook(event, args):
        if event in BLOCKED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args and str(args[0]).split(".")[0] in BLOCKED_IMPORTS:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            if writes and not isinstance(path, int) and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the sandbox folder is not allowed")
        elif event in PATH_EVENTS:
            for p in args[:2]:
                if isinstance(p, (str, bytes, os.PathLike)) and not inside(p):
                    raise PermissionError(f"sandbox: {event} outside the sandbox folder is not allowed")

    sys.addaudithook(hook)


def main() -> None:
    config_path, fd = sys.argv[1], int(sys.argv[2])
    with open(config_path, encoding="utf-8") as fh:
        config = json.load(fh)
    out = os.fdopen(fd, "w", encoding="utf-8")
    install(os.path.dirname(os.path.abspath(config_path)))
    results = {"solution_error": None, "tests": []}
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(config["setup"] + "\n" + config["code"], "solution.py", "exec"), namespace)
    except BaseException as e:  # noqa: BLE001 - anything the solution raises is a finding
        results["solution_error"] = _describe(e)
    for test in config["tests"]:
        if results["solution_error"] is not None:
            results["tests"].append({"test": test, "passed": False, "error": "solution failed to load"})
            continue
        try:
            exec(compile(test, "test.py", "exec"), namespace)
            results["tests"].append({"test": test, "passed": True, "error": None})
        except BaseException as e:  # noqa: BLE001
            results["tests"].append({"test": test, "passed": False, "error": _describe(e)})
    out.write(json.dumps(results) + "\n")
    out.flush()


def _describe(e: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(e), e)).strip()
    return text[-500:]


if __name__ == "__main__":
    main()
