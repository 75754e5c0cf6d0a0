"""The sandbox: real tests pass, and every attack is contained by the OS wall.

The adversarial cases run with the runner's audit hook switched off (`audit_hook=False`), so they
test the namespaces, the uid and the limits alone: the hook is an extra layer, not the wall. Each
case asserts that the attack failed inside *and* that the state outside (files, database rows,
processes, listening sockets) did not change.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from validators.base import ValidationContext
from validators.sandbox import isolation
from validators.sandbox.runner import Limits, run_tests
from validators.sandbox.validator import SandboxTests

LIMITS = Limits(wall_s=8, cpu_s=3, memory_mb=256)
BARE = Limits(wall_s=8, cpu_s=3, memory_mb=256, audit_hook=False)
"""The OS wall alone: no audit hook."""
SECRET = "s3cret-worker-value"


def ctx(tests, setup=""):
    return ValidationContext(kind="code", input={"prompt": "x", "tests": tests, "test_setup": setup})


def run_code(code: str, tests=("assert f() == 1",), setup="", limits=BARE):
    return run_tests(code, list(tests), setup, limits)


def sandbox_processes() -> list[int]:
    """Host pids running under a sandbox run's uid (zombies excluded: they run nothing)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{entry}/status").read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue
        if int(status["Uid"].split()[0]) >= isolation.FIRST_RUN_UID and not status["State"].strip().startswith("Z"):
            found.append(int(entry))
    return found


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """Host state an attack aims at: a secret file, a project-like SQLite database, a listening
    socket, a live process, the worker's environment."""
    monkeypatch.setenv("HYBRIDGEN_TEST_SECRET", SECRET)
    secret = tmp_path / "secret_key"
    secret.write_text(SECRET)
    db = tmp_path / "hybridgen.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("create table items (id integer primary key, status text)")
        con.execute("insert into items (status) values ('flagged')")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    victim = subprocess.Popen(["sleep", "60"])

    class Outside:
        folder = tmp_path
        secret_path = str(secret)
        db_path = str(db)
        port = listener.getsockname()[1]
        victim_pid = victim.pid
        worker_pid = os.getpid()

        def snapshot(self) -> dict:
            files = {str(p): (p.stat().st_mode, p.stat().st_mtime_ns, p.read_bytes())
                     for p in sorted(tmp_path.rglob("*")) if p.is_file()}
            with sqlite3.connect(db) as con:
                rows = con.execute("select id, status from items").fetchall()
            return {"files": files, "rows": rows}

        def connections(self) -> int:
            n = 0
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return n
                conn.close()
                n += 1

    o = Outside()
    before = o.snapshot()
    yield o
    assert o.snapshot() == before, "the attack changed files or rows outside the sandbox"
    assert o.connections() == 0, "the attack reached a socket on the host's loopback"
    assert victim.poll() is None, "the attack killed a process outside the sandbox"
    assert not sandbox_processes(), "a sandboxed process outlived its run"
    victim.kill()
    victim.wait()
    listener.close()


# -- ordinary use -------------------------------------------------------------------------------
def test_passing_and_failing_tests_are_counted():
    code = "def add(a, b):\n    return a + b\n"
    ok = SandboxTests(LIMITS).check(code, ctx(["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]))
    assert ok.passed and ok.details["passed"] == 2
    bad = SandboxTests(LIMITS).check(code, ctx(["assert add(1, 2) == 3", "assert add(2, 2) == 5"]))
    assert not bad.passed and bad.score == 0.5 and "1/2 tests passed" in bad.message
    assert "got 4" in bad.message


def test_setup_code_and_no_tests():
    code = "def area(r):\n    return PI * r * r\n"
    assert SandboxTests(LIMITS).check(code, ctx(["assert area(1) == 3"], setup="PI = 3")).passed
    none = SandboxTests(LIMITS).check(code, ctx([]))
    assert none.passed and none.message == "no tests given for this item and no examples in its prompt"


def test_code_that_does_not_load_is_reported():
    report = SandboxTests(LIMITS).check("def f(:\n", ctx(["assert f() == 1"]))
    assert not report.passed and "fails to run" in report.message and "SyntaxError" in report.message


@pytest.mark.parametrize("test, passed", [
    ("assert f(2) == [2, 2]", True), ("assert f(2) != [2]", True), ("assert set(f(1)) == {1}", True),
    ("assert f(0) == []", True), ("assert 1 < len(f(3)) <= 3", True), ("assert tuple(f(1)) == (1,)", True),
    ("assert f(2) == [2, 3]", False), ("assert f(2) is None", False), ("assert len(f(3)) in (1, 2)", False),
    ("import math\nassert math.isclose(len(f(2)), 2.0)", True),
])
def test_test_forms_are_decided_like_python(test, passed):
    result = run_code("def f(n):\n    return [n] * n\n", [test], limits=LIMITS)
    assert result.passed is passed, result.tests


def test_how_each_test_was_checked_is_reported():
    result = run_code("def f():\n    return 1\n", ["assert f() == 1", "assert False", "import math\nassert f()"],
                      limits=LIMITS)
    assert [t["checked"] for t in result.tests] == ["judge", "judge", "runner"]
    assert [t["passed"] for t in result.tests] == [True, False, True]


def test_values_that_are_not_plain_fail_with_a_reason():
    result = run_code("class P:\n    pass\ndef f():\n    return P()\n", ["assert f() == 1"], limits=LIMITS)
    assert not result.passed and "not a plain Python value" in result.tests[0]["error"]


def test_wall_clock_limit_kills_sleeping_code():
    result = run_tests("import time\ndef f():\n    time.sleep(30)\n", ["f()"], limits=Limits(wall_s=1.5, cpu_s=5))
    assert not result.passed and "timed out after 1.5 s" in result.problem and result.seconds < 6
    assert not sandbox_processes()


def test_nothing_is_left_on_the_host_disk(tmp_path):
    before = set(os.listdir("/tmp"))
    run_tests("def f():\n    open('x', 'w').write('y')\n    return 1\n", ["assert f() == 1"], limits=LIMITS)
    assert set(os.listdir("/tmp")) <= before


def test_bwrap_missing_refuses_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(isolation.os.path, "exists", lambda p: False if p == "/usr/bin/bwrap" else os.path.lexists(p))
    isolation.check_available.cache_clear()
    try:
        report = SandboxTests(LIMITS).check("def f():\n    return 1\n", ctx(["assert f() == 1"]))
    finally:
        isolation.check_available.cache_clear()
    assert not report.passed
    assert "bubblewrap (bwrap) is not installed" in report.message and "HYBRIDGEN_SANDBOX_ISOLATION=none" in report.message


def test_isolation_none_is_an_explicit_opt_out():
    with pytest.raises(ValueError, match="sandbox isolation 'off'"):
        Limits(isolation="off")
    result = run_code("def f():\n    return 1\n", limits=Limits(isolation="none"))
    if os.geteuid() == 0 and not _reachable_by_nobody():
        assert not result.passed and result.problem  # refused: it would have run as root
    else:
        assert result.passed


def _reachable_by_nobody() -> bool:
    import stat
    import sys

    return all(p.stat().st_mode & stat.S_IXOTH for p in [Path(os.path.realpath(sys.executable)),
                                                          *Path(os.path.realpath(sys.executable)).parents])


# -- the adversarial table: each attack fails, and nothing outside changes -----------------------
def probe(result) -> str:
    """What the attack printed inside the sandbox (stdout), for the assertions."""
    return result.stdout + result.stderr + str(result.tests) + str(result.solution_error)


def test_audit_hook_bypass_gains_nothing(outside):
    code = ("import sys\nm = sys.modules['__main__']\nm.BLOCKED.clear(); m.BLOCKED_IMPORTS.clear()\n"
            "import subprocess\n"
            "try:\n    print('ID', subprocess.run(['id'], capture_output=True).stdout)\n"
            "except OSError as e:\n    print('NOEXEC', type(e).__name__)\n"
            "import os\nprint('UID', os.getuid(), os.geteuid())\n")
    result = run_code(code + "def f():\n    return 2\n", limits=LIMITS)
    assert "NOEXEC" in result.stdout and "ID" not in result.stdout.replace("UID", ""), result.stdout
    uid = int(result.stdout.split("UID")[1].split()[0])
    assert uid != 0


def test_gc_closure_and_builtins_tampering_gain_nothing(outside):
    code = ("import gc, builtins, os.path\nos.path.realpath = lambda p: '/sandbox/x'\n"
            "builtins.isinstance = lambda *a: False\n"
            "for o in gc.get_objects():\n    if callable(o) and getattr(o, '__name__', '') == 'hook':\n"
            "        for cell in o.__closure__ or ():\n            try:\n"
            "                cell.cell_contents = (lambda *a: True)\n            except Exception:\n"
            "                pass\n"
            f"open({outside.secret_path!r} + '.pwned', 'w').write('x')\n")
    result = run_code(code, limits=LIMITS)
    assert not result.passed and ("FileNotFoundError" in probe(result) or "PermissionError" in probe(result)
                                  or "Read-only" in probe(result))


def test_runs_as_an_unprivileged_uid_with_no_capabilities(outside):
    code = ("import os\nstatus = open('/proc/self/status').read()\n"
            "print('IDS', os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
            "print('CAPS', [l.split()[1] for l in status.splitlines() if l.startswith('CapEff')][0])\n"
            "import ctypes\nprint('SETUID0', ctypes.CDLL(None).setuid(0))\n")
    result = run_code(code)
    ids = result.stdout.split("IDS")[1].split("\n")[0]
    assert " 0 " not in f" {ids} " and "CAPS 0000000000000000" in result.stdout, result.stdout
    assert "SETUID0 -1" in result.stdout


@pytest.mark.parametrize("what", ["subprocess", "os.system", "execv", "ctypes-system"])
def test_no_program_can_be_started(outside, what):
    attacks = {
        "subprocess": "import subprocess\nsubprocess.run(['id'])",
        "os.system": "import os\nprint('RC', os.system('id > /tmp/x'))",
        "execv": "import os\nos.execv('/bin/sh', ['sh', '-c', 'id'])",
        "ctypes-system": "import ctypes\nprint('RC', ctypes.CDLL(None).system(b'id'))",
    }
    result = run_code(attacks[what] + "\ndef f():\n    return 1\n")
    assert "uid=" not in result.stdout
    assert not result.passed or "RC " in result.stdout and "RC 0" not in result.stdout


def test_secrets_of_the_worker_are_unreachable(outside):
    code = (f"import os\nfor p in [{outside.secret_path!r}, '/proc/{outside.worker_pid}/environ', '/proc/1/environ',"
            " '/etc/shadow', '/home', '/root']:\n"
            "    try:\n        print('READ', p, open(p).read()[:80] if not os.path.isdir(p) else os.listdir(p))\n"
            "    except OSError as e:\n        print('DENIED', p, type(e).__name__)\n"
            "print('ENV', dict(os.environ))\n"
            "print('PROCS', sorted(int(x) for x in os.listdir('/proc') if x.isdigit()))\n")
    result = run_code(code)
    assert result.stdout.count("DENIED") == 5, result.stdout
    root_listing = eval(result.stdout.split("READ /root ")[1].split("\n")[0])
    interpreter_path = {Path(os.path.realpath(sys.executable)).parts[2]} if os.path.realpath(
        sys.executable).startswith("/root/") else set()
    assert set(root_listing) <= interpreter_path, "only the interpreter's own path may show under /root"
    assert SECRET not in probe(result)
    assert "HYBRIDGEN" not in result.stdout
    procs = eval(result.stdout.split("PROCS")[1].strip())
    assert max(procs) < 50, "the sandbox must see only its own PID namespace"


@pytest.mark.parametrize("target", ["redis", "postgres", "listener", "dns"])
def test_no_network_reaches_the_host(outside, target):
    address = {"redis": ("127.0.0.1", 6379), "postgres": ("127.0.0.1", 5432),
               "listener": ("127.0.0.1", outside.port), "dns": ("10.0.0.2", 53)}[target]
    code = ("import socket\ns = socket.socket()\ns.settimeout(2)\n"
            f"print('CONNECT', s.connect_ex({address!r}))\n"
            "import os\nprint('UNIX', [p for p in ('/var/run/postgresql', '/run') if os.path.exists(p)])\n")
    result = run_code(code)
    assert "CONNECT 0" not in result.stdout and "CONNECT" in result.stdout, result.stdout
    assert "UNIX []" in result.stdout


@pytest.mark.parametrize("how", ["dir_fd", "sqlite", "utime", "xattr", "mkfifo", "mknod", "chmod", "symlink",
                                 "proc_fd", "rename"])
def test_files_outside_cannot_be_changed(outside, how):
    folder, db, secret = str(outside.folder), outside.db_path, outside.secret_path
    attacks = {
        "dir_fd": f"import os\nd = os.open('/', os.O_RDONLY)\nos.open({secret[1:]!r}, os.O_WRONLY | os.O_CREAT, dir_fd=d)",
        "sqlite": f"import sqlite3\nc = sqlite3.connect({db!r})\nc.execute(\"update items set status='done'\")\n"
                  f"c.commit()\nc.execute(\"attach database {db!r} as x\")",
        "utime": f"import os\nos.utime({secret!r}, (0, 0))",
        "xattr": f"import os\nos.setxattr({secret!r}, 'user.x', b'1')",
        "mkfifo": f"import os\nos.mkfifo({folder!r} + '/fifo')",
        "mknod": f"import os, stat\nos.mknod({folder!r} + '/node', stat.S_IFREG | 0o600)",
        "chmod": f"import os\nos.chmod({secret!r}, 0o777)",
        "symlink": f"import os\nos.symlink({secret!r}, 'link')\nopen('link', 'w').write('x')",
        "proc_fd": "import os\nfor fd in os.listdir('/proc/1/fd'):\n    os.write(int(fd), b'x')",
        "rename": f"import os\nos.rename({secret!r}, '/sandbox/taken')",
    }
    result = run_code(attacks[how] + "\ndef f():\n    return 1\n")
    assert not result.passed
    assert result.solution_error and any(e in result.solution_error for e in
                                         ("FileNotFoundError", "PermissionError", "OSError", "OperationalError"))


def test_host_processes_cannot_be_signalled(outside):
    code = (f"import os, signal\nfor how in ('kill', 'pidfd'):\n    try:\n"
            f"        os.kill({outside.victim_pid}, 9) if how == 'kill' else "
            f"signal.pidfd_send_signal(os.pidfd_open({outside.victim_pid}), 9)\n"
            "        print('SENT', how)\n    except OSError as e:\n        print('FAILED', how, type(e).__name__)\n"
            "def f():\n    return 1\n")
    result = run_code(code)
    assert result.stdout.count("FAILED") == 2 and "SENT" not in result.stdout, result.stdout


def test_a_grandchild_does_not_outlive_the_run(outside):
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(60)\n    os._exit(0)\n"
            "def f():\n    return 1\n")
    result = run_code(code)
    assert result.passed  # the code itself is fine; what matters is that nothing is left (fixture)


def test_fork_bomb_is_bounded(outside):
    code = ("import os\ncount = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
            "            import time; time.sleep(30); os._exit(0)\n        count += 1\n"
            "except OSError as e:\n    print('FORKS', count, type(e).__name__)\n"
            "def f():\n    return 1\n")
    result = run_code(code)
    forks = int(result.stdout.split("FORKS")[1].split()[0])
    assert forks < BARE.max_processes, result.stdout


def test_forged_results_do_not_pass(outside):
    """The old attack: write a fake 'all passed' line to every fd, then leave."""
    fake = ('{"solution_error": null, "tests": [{"test": "assert f() == 1", "passed": true, "error": null}, '
            '{"test": "assert False", "passed": true, "error": null}], "problem": null}\n'
            '{"kind": "loaded", "error": null}\n{"kind": "test", "i": 1, "passed": true}\n')
    code = (f"import os\nfor fd in range(3, 200):\n    try:\n        os.write(fd, {fake.encode()!r})\n"
            "    except OSError:\n        pass\nos._exit(0)\n")
    result = run_code(code, tests=["assert f() == 1", "assert False"])
    assert not result.passed
    assert [t["passed"] for t in result.tests] == [False, False]


@pytest.mark.parametrize("name", ["infinite loop", "10 GB allocation", "print 100 MB", "hard exit", "disk fill",
                                  "big file", "file count", "deep recursion"])
def test_resource_attacks_are_stopped(outside, name):
    attacks = {
        "infinite loop": ("def f():\n    while True:\n        pass\n", "CPU limit"),
        "10 GB allocation": ("def f():\n    return len(bytearray(10 * 2**30))\n", "MemoryError"),
        "print 100 MB": ("def f():\n    print('x' * 100_000_000)\n", "File too large"),
        "hard exit": ("import os\ndef f():\n    os._exit(0)\n", "ended before this test finished"),
        "disk fill": ("def f():\n    for i in range(200):\n        open(f'part{i}', 'wb').write(b'x' * 900_000)\n",
                      "No space left"),
        "big file": ("def f():\n    open('big', 'wb').write(b'x' * 50_000_000)\n", "File too large"),
        "file count": ("def f():\n    i = 0\n    while True:\n        open(f'n{i}', 'w').close()\n        i += 1\n",
                       "CPU limit"),
        "deep recursion": ("def f(n=0):\n    return f(n + 1)\n", "RecursionError"),
    }
    code, expected = attacks[name]
    t0 = time.monotonic()
    result = run_code(code)
    assert time.monotonic() - t0 < BARE.wall_s + 5
    assert not result.passed
    assert expected in probe(result) + str(result.problem), (result.problem, result.tests)
    assert SECRET not in probe(result)


def test_audit_hook_still_blocks_as_a_second_layer():
    result = run_code("import socket\ndef f():\n    socket.create_connection(('127.0.0.1', 5432))\n",
                      limits=LIMITS)
    assert not result.passed and "socket" in str(result.tests)
    many = run_code("def f():\n    for i in range(5000):\n        open(f'n{i}', 'w').close()\n", limits=LIMITS)
    assert "more than 1000 files created" in str(many.tests)


def test_runs_in_parallel_do_not_share_anything():
    results = [None, None]

    def one(i):
        results[i] = run_code(f"import os\nopen('mine', 'w').write('{i}')\nimport time\ntime.sleep(0.3)\n"
                              "def f():\n    return int(open('mine').read())\n", [f"assert f() == {i}"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.passed for r in results), [r.tests for r in results]


# -- found in review: the keyring, the opt-out's kill, values of other types ---------------------
def test_the_workers_session_keyring_is_not_reachable(outside):
    import ctypes
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the keyring syscalls below are numbered for x86_64")
    libc = ctypes.CDLL(None, use_errno=True)
    key = libc.syscall(248, b"user", b"hybridgen-test-secret", SECRET.encode(), len(SECRET), -3)  # add_key to @s
    assert key > 0, f"the test could not add a key to its session keyring (errno {ctypes.get_errno()})"
    try:
        code = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                "found = libc.syscall(250, 10, -3, b'user', b'hybridgen-test-secret', 0)\n"  # KEYCTL_SEARCH @s
                f"direct = libc.syscall(250, 11, {key}, None, 0)\n"  # KEYCTL_READ by serial
                "print('SEARCH', found, 'READ', direct)\n")
        result = run_code(code + "def f():\n    return 1\n")
        assert "SEARCH -1 READ -1" in result.stdout, result.stdout
        assert SECRET not in probe(result)
    finally:
        libc.syscall(250, 3, key)  # KEYCTL_REVOKE


def test_the_unisolated_harness_kills_only_its_own_runner():
    """Without a PID namespace, kill(-1) would take every process of the worker's uid: the harness
    must end its runner's process group only (here it also refuses to run as root)."""
    import json as _json

    sibling = subprocess.Popen(["sleep", "30"])
    try:
        results_r, results_w = os.pipe()
        job = _json.dumps({"code": "def f():\n    return 1\n", "tests": ["assert f() == 1"], "setup": "",
                           "audit_hook": True, "limits": {"cpu_s": 3, "output_bytes": 10**6}})
        harness = Path(__file__).resolve().parents[1] / "validators" / "sandbox" / "harness.py"
        done = subprocess.run([sys.executable, "-I", "-S", "-B", str(harness), str(results_w), "32", "not-isolated"],
                              input=job.encode(), pass_fds=(results_w,), timeout=30, capture_output=True)
        os.close(results_w)
        out = _json.loads(os.read(results_r, 10**6))
        os.close(results_r)
        assert done.returncode == 0, done.stderr
        if os.geteuid() == 0:
            assert "refused" in out["problem"]
        assert sibling.poll() is None, "the harness killed a process outside its own runner"
    finally:
        sibling.kill()
        sibling.wait()


@pytest.mark.parametrize("code, test", [
    ("def big():\n    return 10 ** 5000\n", "assert big() > 0"),
    ("from collections import Counter\ndef f():\n    return Counter('aab')\n", "assert f() == {'a': 2, 'b': 1}"),
    ("def f():\n    return range(3)\n", "assert f() == range(0, 3)"),
    ("def f():\n    return {1: 'a', 2: 'b'}.keys()\n", "assert f() == {1, 2}"),
    ("class Thing:\n    pass\ndef f():\n    return Thing()\n", "assert f() is not None"),
    ("def add(a, b):\n    return a + b\n", "assert (add(1, 2)\n        + 1) == 4"),
])
def test_correct_code_with_other_value_types_passes(code, test):
    result = run_code(code, [test], limits=LIMITS)
    assert result.passed, result.tests


def test_a_runner_cannot_make_the_judge_build_huge_values():
    code = ("import os\nos.write(4, b'{\"kind\": \"loaded\", \"error\": null}\\n"
            "{\"kind\": \"test\", \"i\": 0, \"repr\": \"bytes(100000000000)\"}\\n')\nos._exit(0)\n")
    result = run_code(code, ["assert f() == b''"])
    assert not result.passed and "not a plain Python value" in result.tests[0]["error"]
