"""A class of test submissions for `python3 -m conformance batch`, made at test time.

Each is a folder as a student would hand it in: the project's own files where it should pass,
a mutant of them (tests/broken/mutants.py) where it should FAIL exactly that mutant's cases,
the plain-text pair of tests/pairs/ and four copies of it with a student's defect (each FAILing
exactly its cases), the independent implementation of tests/independent/, one
as a real class hands it in (a zip's top folder, a client built as chatClient, a stale binary
committed with it), a server that sleeps after it listens (graded at once: it is at rest), and
seven that cannot be graded: one that does not compile, one that hangs,
one that exits at once, one with no programs, a Python 2 server, a server that listens on
another port than given, a build that installs packages. `make_class()` returns what each must get.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mutants import CLIENT_FILES, MUTANTS, SERVER_FILES, Mutant, mutated_source

ROOT = Path(__file__).resolve().parent.parent
MUTANT_NAMES = ("srv-stale-handle", "srv-no-busy", "cli-message-off-by-one")

HANGING_SERVER = '''"""Answers each HELLO as PROTOCOL.md says, then never reads nor writes that connection again;
a clock of its own ticks all the while, so that every wait for it lasts its full time."""
import socket
import sys
import threading
import time

from chatwire import Hello, encode


def tick() -> None:
    while True:
        time.sleep(0.05)


threading.Thread(target=tick, daemon=True).start()
with socket.create_server(("127.0.0.1", int(sys.argv[1]))) as listener:
    print(f"Listening on port {sys.argv[1]}...", flush=True)
    held = []
    while True:
        conn, _ = listener.accept()
        conn.recv(64)
        conn.sendall(encode(Hello("HostA")))
        held.append(conn)
'''

# Listens, then sleeps for an hour: blocked with no clock of its own, it is at rest (each wait for
# it ends at once, where the hanging server above makes each wait last its full time). Its
# conformance.toml says it is framed, since it answers no probe.
SLEEPING_SERVER = '''"""Listens, says so, then sleeps for an hour: it never accepts a connection."""
import socket
import sys
import time

with socket.create_server(("127.0.0.1", int(sys.argv[1]))) as listener:
    print(f"Listening on port {listener.getsockname()[1]}...", flush=True)
    time.sleep(3600)
'''


# Listens on the port after the one it was given: a student's fixed or mis-read port.
WRONG_PORT_SERVER = '''import socket
import sys
import time

with socket.create_server(("127.0.0.1", int(sys.argv[1]) + 1)) as listener:
    time.sleep(3600)
'''

# A Makefile that builds the client as chatClient (another name than the usual one).
CAMEL_MAKEFILE = """all: chatClient

chatClient: chatclient.c chatwire.c chatwire.h
\tcc -O2 -o chatClient chatclient.c chatwire.c -lm
"""

# A Python 3 that understands Python 2's print statement (no Python 2 is on the test machine): the
# stand-in for the grader's `--python2 PATH`.
FAKE_PYTHON2 = '''#!/usr/bin/env python3
"""A stand-in Python 2: the script's print statements become calls, then it runs as Python 3."""
import re
import sys

script = sys.argv[1]
source = re.sub(r"^(\\s*)print\\s+(?!\\()(.+)$", r"\\1print(\\2)", open(script).read(), flags=re.M)
sys.argv = sys.argv[1:]
sys.path[0] = "."
exec(compile(source, script, "exec"), {"__name__": "__main__", "__file__": script})
'''


def python2_server(target: Path) -> int:
    """The reference, with one Python 2 print statement in its server; returns its line."""
    reference(target)
    lines = (target / "chatserve.py").read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(("import ", "from "))) + 1
    lines.insert(at, 'def banner():\n    print "Chat server, Python 2 style"\n')
    (target / "chatserve.py").write_text("".join(lines))
    return at + 2


def camel_zipped_stale(target: Path) -> None:
    """As a zip unpacks: one top folder, in it a Makefile that builds chatClient, and a chatClient
    committed long ago (newer than the sources by its date) that only exits."""
    inner = target / "project-main"
    reference(inner)
    (inner / "Makefile").write_text(CAMEL_MAKEFILE)
    stale = inner / "chatClient"
    stale.write_text("#!/bin/sh\nexit 3\n")
    stale.chmod(0o755)
    future = time.time() + 3600
    os.utime(stale, (future, future))


@dataclass(frozen=True)
class Expected:
    status: str  # GRADED, BUILD-FAIL, NO-START or HUNG
    mode: str = ""  # framed or pair, when GRADED or HUNG
    message: str = ""  # a piece of the submission's message
    mutant: Mutant | None = None  # then FAIL exactly its cases
    others: frozenset[str] = field(default_factory=frozenset)  # verdicts allowed beside PASS
    fails: frozenset[str] = field(default_factory=frozenset)  # without a mutant: the cases it FAILs

    @property
    def failing(self) -> frozenset[str]:
        """The case IDs (patterns of mutants.expected_ids) it must FAIL, and no others."""
        return self.mutant.fails if self.mutant else self.fails


# name, server options, client options, the pair cases it must FAIL
PAIR_DEFECTS = (
    ("pair-colon-prompt", "--shape colon", "--shape colon", {"P-PREFIX-1"}),  # `Chris: `: its form only
    ("pair-recv-per-message", "--defect recv-per-message", "",  # each recv() shown as a message
     {"P-LONG-1", "P-FRAME-1", "P-UTF8-1"}),
    ("pair-missed-drop", "--defect missed-drop", "", {"P-DROP-1"}),  # its client killed: it dies
    ("pair-quit-as-message", "--defect quit-as-message", "", {"P-QUIT-2"}),  # \quit sent as a message
)


def copy(names: tuple[str, ...], source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(source / name, target / name)


def reference(target: Path) -> None:
    """The project's server and client, built by the batch's default rule (no build file)."""
    copy(SERVER_FILES + CLIENT_FILES, ROOT, target)


def make_class(folder: Path) -> dict[str, Expected]:
    expected: dict[str, Expected] = {}

    reference(folder / "reference")
    expected["reference"] = Expected("GRADED", "framed")

    for name in MUTANT_NAMES:
        m = next(m for m in MUTANTS if m.name == name)
        reference(folder / name)
        (folder / name / m.file).write_text(mutated_source(m), encoding="utf-8")
        expected[name] = Expected("GRADED", "framed", mutant=m, others=frozenset({"BLOCKED"}))

    pair = folder / "plain-text-pair"
    copy(("plain_server.py", "plain_client.py", "plainlines.py"), ROOT / "tests" / "pairs", pair)
    (pair / "conformance.toml").write_text('server = "python3 plain_server.py {port}"\n'
                                           'client = "python3 plain_client.py {host} {port}"\n')
    expected["plain-text-pair"] = Expected("GRADED", "pair")

    # Plain-text pairs with the defects students really make (tests/pairs/README.md).
    for name, server, client, fails in PAIR_DEFECTS:
        target = folder / name
        copy(("plain_server.py", "plain_client.py", "plainlines.py"), ROOT / "tests" / "pairs", target)
        (target / "conformance.toml").write_text(f'server = "python3 plain_server.py {{port}} {server}"\n'
                                                 f'client = "python3 plain_client.py {{host}} {{port}} {client}"\n')
        expected[name] = Expected("GRADED", "pair", fails=frozenset(fails))

    independent = folder / "independent"
    copy(("indserve.py", "indclient.py", "indwire.py"), ROOT / "tests" / "independent", independent)
    (independent / "conformance.toml").write_text('server = "python3 indserve.py {port}"\n'
                                                  'client = "python3 indclient.py {host} {port}"\n')
    expected["independent"] = Expected("GRADED", "framed")

    broken = folder / "does-not-compile"
    reference(broken)
    source = (broken / "chatclient.c").read_text()
    (broken / "chatclient.c").write_text("static int forgotten = ;\n" + source)
    expected["does-not-compile"] = Expected("BUILD-FAIL", message="chatclient.c:1:")

    hangs = folder / "hangs"
    copy(("chatwire.py", "chatclient.c", "chatwire.c", "chatwire.h"), ROOT, hangs)
    (hangs / "chatserve.py").write_text(HANGING_SERVER)
    expected["hangs"] = Expected("HUNG", "framed", message="and it was killed")

    sleeps = folder / "sleeps"
    copy(("chatclient.c", "chatwire.c", "chatwire.h"), ROOT, sleeps)
    (sleeps / "chatserve.py").write_text(SLEEPING_SERVER)
    (sleeps / "conformance.toml").write_text('mode = "framed"\n')
    expected["sleeps"] = Expected("GRADED", "framed", fails=frozenset({"S-HELLO-1", "S-TEXT-6"}),
                                  others=frozenset({"BLOCKED"}))

    quits = folder / "exits-at-once"
    quits.mkdir()
    (quits / "chatserve.py").write_text("raise SystemExit(1)\n")
    (quits / "chatclient.c").write_text("int main(void) { return 1; }\n")
    expected["exits-at-once"] = Expected("NO-START", message="exited with status 1 before it listened")

    line = python2_server(folder / "python2-server")
    expected["python2-server"] = Expected(
        "NO-START", message=f"chatserve.py is Python 2 (print statement, line {line}); give --python2 PATH")

    camel_zipped_stale(folder / "zipped-camel-stale")
    expected["zipped-camel-stale"] = Expected("GRADED", "framed",
                                              message="programs in its folder project-main/; client: chatClient")

    wrong = folder / "wrong-port"
    reference(wrong)
    (wrong / "chatserve.py").write_text(WRONG_PORT_SERVER)
    expected["wrong-port"] = Expected("NO-START", message="instead (the port must come from {port}")

    installs = folder / "installs-packages"
    reference(installs)
    (installs / "Makefile").write_text("all:\n\tnpm install\n")
    expected["installs-packages"] = Expected("BUILD-FAIL", message="the sandbox has no network")

    empty = folder / "no-programs"
    empty.mkdir()
    (empty / "README.txt").write_text("I ran out of time.\n")
    expected["no-programs"] = Expected("NO-START", message="no server")
    return expected
