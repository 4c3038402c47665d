"""The batch's sandbox against hostile submissions (tests/hostile/attacks.py), all graded in one
batch run beside two plain references: each attack fails, the grader finishes, nothing of the
grader's leaks, nothing is written outside the submission's copy, no process is left, and the
references get their normal verdicts. Then what the batch does when it has no sandbox."""

from __future__ import annotations

import csv
import ctypes
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "hostile"))

import contextlib

from attacks import BYSTANDERS, FORGED, make_class
from submissions import reference

from conformance import batch, procstate, runner, sandbox
from procs import ROOT, listed

SECRET = "the-grader-secret-7f3a"  # in a root-only file of a folder the test owns
TOKEN = "grader-token-91c2"  # in the grader's environment
CASES = ("S-LISTEN-1", "S-MSG-1", "C-MSG-1")
PR_SET_CHILD_SUBREAPER = 36
MAXRSS = """import resource, subprocess, sys
done = subprocess.run(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(done.returncode)
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None,
                                reason="the sandbox needs root and bubblewrap (./compileall installs it)")


@dataclass
class HostileRun:
    expected: dict[str, str]
    result: subprocess.CompletedProcess[str]
    data: dict[str, Any]
    csv_text: str
    html: str
    kept: Path
    names: list[str]
    listeners: dict[str, socket.socket]
    before: dict[str, str]
    after: dict[str, str]
    maxrss_kb: int

    def submission(self, name: str) -> dict[str, Any]:
        return next(s for s in self.data["submissions"] if s["name"] == name)

    def found(self, name: str) -> dict[str, Any]:
        """What the attack noted, from its copy as the grading left it (--keep)."""
        path = self.kept / f"{self.names.index(name) + 1:03d}" / "found.json"
        return json.loads(path.read_text()) if path.exists() else {}


def digest(*roots: Path) -> dict[str, str]:
    """Every file, folder and link under `roots`: its content's hash, or its link's target."""
    seen = {}
    for root in roots:
        for path in sorted([root, *root.rglob("*")]):
            if path.is_symlink():
                seen[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                seen[str(path)] = "folder"
    return seen


def descendants() -> list[str]:
    """This test process's descendants (orphans included: it is a subreaper): their command lines."""
    with contextlib.suppress(ChildProcessError):  # the zombies it adopted (a sandbox's last processes)
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    found = []
    for pid in procstate.descendants(os.getpid()):
        if pid != os.getpid():
            with contextlib.suppress(OSError):
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    base = tmp_path_factory.mktemp("hostile")
    grader = base / "grader"
    grader.mkdir(mode=0o700)
    secret = grader / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    listeners = {"unix": socket.socket(socket.AF_UNIX), "abstract": socket.socket(socket.AF_UNIX),
                 "tcp": socket.socket(socket.AF_INET)}
    listeners["unix"].bind(str(grader / "x.sock"))
    listeners["abstract"].bind(f"\0conformance-test-{os.getpid()}")
    listeners["tcp"].bind(("127.0.0.1", 0))
    for sock in listeners.values():
        sock.listen(8)
        sock.setblocking(False)
    folder = base / "class"
    params = {"secrets": [str(secret)], "secret_dir": str(grader), "unix": str(grader / "x.sock"),
              "abstract": f"conformance-test-{os.getpid()}", "tcp": listeners["tcp"].getsockname()[1],
              "forged": FORGED,
              "targets": [str(folder / "aa-reference" / "chatserve.py"), str(folder / "writes-outside" / "owned"),
                          str(ROOT / "conformance" / "plugin.py"), str(grader / "owned"), str(base / "owned")]}
    expected = make_class(folder, params)
    watched = (folder, grader)  # the suite is watched for what the attack writes (others may edit it meanwhile)
    before = digest(*watched)
    out = base / "out"
    out.mkdir()
    options = [arg for case in CASES for arg in ("--case", case)]
    argv = [sys.executable, "-c", MAXRSS, str(out / "maxrss"), "python3", "-m", "conformance", "batch", str(folder),
            "--timeout-scale", "1", *options, "--keep", "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
            "--report", str(out / "r.html")]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                            env={**os.environ, "GRADER_TOKEN": TOKEN})
    after = digest(*watched)
    kept = re.search(r"the copies are kept in (\S+)", result.stdout)
    assert result.returncode == 0 and kept, result.stdout + result.stderr
    run = HostileRun(expected, result, json.loads((out / "r.json").read_text()),
                     (out / "r.csv").read_text(encoding="utf-8-sig"), (out / "r.html").read_text(), Path(kept[1]),
                     sorted(expected), listeners, before, after, int((out / "maxrss").read_text()))
    yield run
    shutil.rmtree(run.kept, ignore_errors=True)
    for sock in listeners.values():
        sock.close()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def everything_shown(run: HostileRun) -> str:
    return "\n".join([run.result.stdout, run.result.stderr, run.csv_text, json.dumps(run.data), run.html])


def test_the_grader_finishes_and_every_submission_gets_its_status(hostile: HostileRun) -> None:
    got = {s["name"]: s["status"] for s in hostile.data["submissions"]}
    assert got == hostile.expected, {s["name"]: s["message"] for s in hostile.data["submissions"]}


def test_the_submissions_graded_beside_them_get_their_normal_verdicts(hostile: HostileRun) -> None:
    cases = [cid for cid in listed("server") + listed("client") if cid.split("[")[0] in CASES]
    for name in BYSTANDERS:
        sub = hostile.submission(name)
        assert (sub["status"], sub["mode"], sub["message"]) == ("GRADED", "framed", ""), name
        assert {cid: r["verdict"] for cid, r in sub["results"].items()} == dict.fromkeys(cases, "PASS"), name
    # their attacks over, graded as usual
    for name in ("fork-bomb", "host-sockets", "fills-disk", "writes-outside"):
        results = hostile.submission(name)["results"]
        assert {r["verdict"] for r in results.values()} == {"PASS"}, name


def test_the_graders_files_and_environment_do_not_leak(hostile: HostileRun) -> None:
    sub = hostile.submission("leak-secret")
    assert sub["message"].startswith("error: LEAK ")  # its error line is shown: without the secret
    shown = everything_shown(hostile)
    assert SECRET not in shown and TOKEN not in shown
    found = hostile.found("leak-secret")
    assert found, "the attack ran and noted what it found"
    reads = {key: value for key, value in found.items() if not key.startswith(("ls ", "environ "))}
    assert "read" not in reads.values(), reads  # the secret, /etc/shadow, the link to the secret
    assert found["link-to-secret"].startswith("FileNotFoundError")  # copied as a link, to nowhere in its view
    listings = {key: value for key, value in found.items() if key.startswith("ls ") and key != "ls /"}
    assert len(listings) == 6 and all(isinstance(v, str) for v in listings.values()), listings  # /root, /home, ...
    environs = [value for key, value in found.items() if key.startswith("environ ")]
    assert environs and all(value != "read" or TOKEN not in value for value in environs)


def test_forged_verdicts_are_not_taken(hostile: HostileRun) -> None:
    sub = hostile.submission("forge-then-hang")  # killed at the stall limit: the cases that had ended are kept
    assert sub["status"] == "HUNG" and "forged" not in sub["message"] and sub["results"]
    known = set(listed("server") + listed("client") + listed("pair"))
    for submission in hostile.data["submissions"]:
        assert set(submission["results"]) <= known, submission["name"]
        assert all(r.get("title") != "forged" for r in submission["results"].values())
    assert {c["id"] for c in hostile.data["cases"]} <= known
    found = hostile.found("forge-verdicts")
    assert found["written"] == [] and found["refused"] >= 2  # the runner's and the suite's: not even listed
    # Its real verdicts: its first line is not the server's, and it serves as the reference does.
    verdicts = {cid: r["verdict"] for cid, r in hostile.submission("forge-verdicts")["results"].items()}
    assert verdicts.pop("S-LISTEN-1") == "FAIL" and set(verdicts.values()) == {"PASS"}


def test_every_csv_cell_is_formula_safe(hostile: HostileRun) -> None:
    rows = list(csv.reader(hostile.csv_text.splitlines()))
    assert len(rows) == len(hostile.expected) + 1
    for row in rows:  # the header too
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), cell


def test_every_text_of_a_submission_is_escaped_where_shown(hostile: HostileRun) -> None:
    assert "\x1b" not in hostile.result.stdout and "\r" not in hostile.result.stdout
    assert re.search(rf"^\[\d+/{len(hostile.expected)}\] probe-and-kill\?\[2J: NO-START", hostile.result.stdout, re.M)
    assert "<img src=x" not in hostile.html and "&lt;img src=x onerror=alert(1)&gt;" in hostile.html
    assert 'HYPERLINK("https' not in hostile.html  # escaped: &quot;


def test_a_fork_bomb_is_bounded_and_its_daemon_does_not_outlive_the_batch(hostile: HostileRun) -> None:
    found = hostile.found("fork-bomb")
    assert 100 < found["forked"] < sandbox.TASKS, found
    assert found["error"] == "Resource temporarily unavailable"
    assert descendants() == []  # the daemon it left, the bomb's children: all gone with its sandbox


def test_the_hosts_sockets_and_the_world_are_out_of_reach(hostile: HostileRun) -> None:
    found = hostile.found("host-sockets")
    for key in ("unix", "abstract", "tcp", "outside", "udp", "run"):
        assert isinstance(found[key], str) and "Error" in found[key], (key, found[key])
    assert found["interfaces"] == ["lo"]
    for name, sock in hostile.listeners.items():
        with pytest.raises(BlockingIOError):
            sock.accept()  # nothing ever connected
        assert name


def test_disk_and_memory_are_bounded(hostile: HostileRun) -> None:
    found = hostile.found("fills-disk")
    assert 0 < found["written"] <= sandbox.TMP_BYTES and found["error"] == "No space left on device", found
    assert found["memory"].startswith("MemoryError")


def test_a_flood_of_output_is_read_within_bounds(hostile: HostileRun) -> None:
    sub = hostile.submission("floods-output")
    assert sub["message"] == "error: flooded"  # its last line: the tail is kept
    assert len(sub["log"]) < 100_000 and re.search(r"\[\.\.\. \d+ (bytes|characters) left out \.\.\.\]",
                                                              sub["log"])
    assert hostile.maxrss_kb < 300_000  # no process of the grading held its 200 MB


def test_nothing_is_written_outside_the_copy(hostile: HostileRun) -> None:
    assert hostile.after == hostile.before  # the class folder, the grader's folder
    assert not (ROOT / "conformance" / "plugin.py").read_text().endswith("owned")  # the suite
    found = hostile.found("writes-outside")
    allowed = {"/tmp/owned", str(sandbox.WORK / "owned")}
    for path, outcome in found.items():
        if path in allowed:
            assert outcome == "written", path
        else:
            assert outcome != "written", path
    assert not (hostile.kept.parent / "owned").exists()


def test_the_programs_run_as_an_unused_uid_without_privilege(hostile: HostileRun) -> None:
    found = hostile.found("probe-and-kill\x1b[2J")
    uid, euid, gid, egid, groups = found["ids"]
    assert uid == euid == gid == egid and sandbox.UID_FIRST <= uid < sandbox.UID_FIRST + sandbox.UID_COUNT
    assert groups == []
    assert {key: int(value, 16) for key, value in found["caps"].items()} == dict.fromkeys(found["caps"], 0)
    assert found["no_new_privs"] == "1" and found["setuid"].startswith("PermissionError")
    assert found["limits"] == [sandbox.CPU_SECONDS, sandbox.MEMORY_BYTES, sandbox.FILE_BYTES, sandbox.TASKS]
    assert set(found["root"]) <= {"bin", "dev", "etc", "lib", "lib64", "lib32", "libx32", "opt", "proc", "sbin",
                                  "tmp", "usr"}
    assert found["opt"] == ["conformance", "kept", "submission"]  # kept: the batch ran with --keep
    assert set(found["devices"]) <= {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
                                     "fd", "stdin", "stdout", "stderr", "core"}
    assert set(found["environment"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM",
                                         "PYTHONDONTWRITEBYTECODE", "LINES", "COLUMNS"}
    assert 1 in found["processes"] and len(found["processes"]) < 15  # its own PID namespace
    assert found["cwd"] == str(sandbox.WORK)


def test_no_process_of_the_batch_is_left(hostile: HostileRun) -> None:
    assert descendants() == []


# --- without the sandbox --------------------------------------------------------------------------


def run_batch(folder: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance", "batch", str(folder), *options], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=env or dict(os.environ))


def test_no_namespaces_alone_is_refused_and_says_what_it_gives_up(tmp_path: Path) -> None:
    reference(tmp_path / "class" / "ref")
    result = run_batch(tmp_path / "class", "--no-namespaces", "--timeout-scale", "1")
    assert result.returncode == 2 and "started" not in result.stdout
    assert "--unsafe-no-sandbox" in result.stderr and "read and write its files" in result.stderr


def test_without_bubblewrap_the_batch_stops_and_says_how_to_fix_the_machine(tmp_path: Path) -> None:
    reference(tmp_path / "class" / "ref")
    result = run_batch(tmp_path / "class", "--timeout-scale", "1", env={**os.environ, "PATH": str(tmp_path / "none")})
    assert result.returncode == 2 and "started" not in result.stdout
    assert "the sandbox cannot be set up" in result.stderr and "apt-get install bubblewrap" in result.stderr


def test_a_root_only_file_stays_unreadable_even_where_the_sandbox_shows_it(tmp_path: Path) -> None:
    """Permissions, not only mounts: the submission's uid cannot read a root-only file even when it
    is mounted in its view (which the batch never does), where root inside could."""
    secret = tmp_path / "grader" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    secret.chmod(0o600)
    with tempfile.TemporaryDirectory() as state:
        box = sandbox.Sandbox(ROOT, Path(state))
        argv = box.command(tmp_path)
        argv[-1:-1] = ["--ro-bind", str(secret.parent), "/grader"]
        script = ("import os, subprocess\nfrom conformance import sandbox\n"
                  f"os.environ[sandbox.UID_ENV] = '{sandbox.UID_FIRST}'\n"
                  "for preexec in (None, sandbox.preexec):\n"
                  "    print(subprocess.run(['cat', '/grader/secret.txt'], preexec_fn=preexec, capture_output=True,"
                  " text=True).returncode)\n")
        result = subprocess.run([*argv, box.python.executable, "-c", script], capture_output=True, text=True,
                                env=box.runner_env(), timeout=60)
    assert result.stdout.split() == ["0", "1"], result.stdout + result.stderr


# --- the parts ------------------------------------------------------------------------------------


def test_bounded_output_keeps_its_head_and_tail_and_counts_the_rest() -> None:
    out = sandbox.Bounded(head=4, tail=6)
    for chunk in (b"ab", b"cdefgh", b"ijklmnop", b"qr"):
        out.add(chunk)
    assert out.text() == "abcd\n[... 8 bytes left out ...]\nmnopqr"
    small = sandbox.Bounded(head=4, tail=6)
    small.add(b"abc")
    assert small.text() == "abc"


def test_the_batch_skips_an_overlong_event_line_without_holding_it() -> None:
    stream = io.BytesIO(b'{"a": 1}\n' + b"x" * (3 * 100) + b"\n" + b'{"b": 2}\n')
    original = batch.EVENT_BYTES
    batch.EVENT_BYTES = 100
    try:
        assert list(batch.bounded_lines(stream)) == [b'{"a": 1}\n', b'{"b": 2}\n']
    finally:
        batch.EVENT_BYTES = original


def test_every_header_cell_of_the_csv_is_formula_safe() -> None:
    header = batch.csv_header(["S-MSG-1", '=HYPERLINK("https://evil.invalid/","x")', "-x", "@y"], points=True)
    assert header[-6:] == ["S-MSG-1", '\'=HYPERLINK("https://evil.invalid/","x")', "'-x", "'@y", "points",
                           "max_points"]


def test_the_runner_reads_a_submissions_file_without_following_a_link(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    (tmp_path / "conformance.toml").symlink_to(secret)
    assert runner.read_own(tmp_path / "conformance.toml") == ""
    with pytest.raises(OSError):
        runner.read_own(tmp_path / "conformance.toml", strict=True)
    (tmp_path / "big.c").write_bytes(b"x" * (runner.OWN_BYTES + 10))
    assert len(runner.read_own(tmp_path / "big.c")) == runner.OWN_BYTES


def test_two_batches_never_share_an_unused_uid(tmp_path: Path) -> None:
    first, second = sandbox.Uids(tmp_path), sandbox.Uids(tmp_path)
    a, b = first.take(), first.take()
    c = second.take()
    assert len({a, b, c}) == 3 and min(a, b, c) >= sandbox.UID_FIRST
    first.give_back(a)
    assert second.take() == a  # given back: free again
