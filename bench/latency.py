#!/usr/bin/env python3
"""One-way message latency through both real programs, against netcat through the same harness.

A line is written to one pseudo-terminal and timed until it shows on the other: through
`chatclient` and `chatserve.py` (client to server, then server to client, each waiting for its
prompt first), and through two OpenBSD netcats (`nc -l` and `nc`, one per pty) joined by a
loopback TCP connection. Both pairs are started at the start and kept; short blocks of messages
run in ABBA order (chat, nc, nc, chat, and again for each round), so that a machine busy for a
while weighs on both alike (on a shared machine, blocks of 300 gave ratios 0.2x apart from run to
run; blocks of 25 make the two samples interleave finely). Prints each direction's median and
p99 per pair, and the chat's median over netcat's.

    .venv/bin/python bench/latency.py [--messages 25] [--rounds 20] [--size 100]
                                      [--server CHATSERVE.PY] [--client CHATCLIENT]

--server and --client measure another copy of a program (a candidate change) in the same harness.

Where OpenBSD's netcat (`nc.openbsd`; other netcats take other options) is missing it installs
Debian's netcat-openbsd with apt-get (as root; nothing when it is there); where that cannot be
had it measures the chat alone and says why.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers (procs); the project: installed in .venv

from conformance.programs import free_port, listening  # noqa: E402
from procs import CLIENT_BUILDS, HANDLE_PROMPT, Screen  # noqa: E402

Samples = dict[str, list[float]]  # direction ("up": client to server, "down") -> seconds


def read_until(fd: int, needle: bytes, buffer: bytearray, timeout: float = 10.0) -> None:
    """Read the pty until `needle` has appeared; what follows it stays in `buffer`."""
    deadline = time.perf_counter() + timeout
    while (at := buffer.find(needle)) < 0:
        left = deadline - time.perf_counter()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"{needle!r} did not appear")
        buffer += os.read(fd, 65536)
    del buffer[: at + len(needle)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pair:
    """Two ptys joined by a connection: `up` types on the client's and waits for the text on the
    server's, `down` the other way. `shown` is how a line shows on the far screen (the chat puts
    the sender's handle before it), `turn` the prompt to wait for before typing there."""

    def __init__(self, name: str, cfd: int, sfd: int, shown: tuple[bytes, bytes], turn: tuple[bytes, bytes]) -> None:
        self.name, self.cfd, self.sfd = name, cfd, sfd
        self.shown, self.turn = shown, turn
        self.cbuf, self.sbuf = bytearray(), bytearray()
        self.count = 0

    def block(self, messages: int, size: int, samples: Samples) -> None:
        for _ in range(messages):
            self.count += 1
            for direction, src, dst, dbuf, prefix, turn in (
                    ("up", self.cfd, self.sfd, self.sbuf, self.shown[0], self.turn[0]),
                    ("down", self.sfd, self.cfd, self.cbuf, self.shown[1], self.turn[1])):
                # Unique per message and direction, so that an echo or an earlier line never matches.
                text = f"{direction[0]}{self.count:07d}".encode() + b"x" * (size - 8)
                start = time.perf_counter()
                os.write(src, text + b"\n")
                read_until(dst, prefix + text + b"\r\n", dbuf)
                samples[direction].append(time.perf_counter() - start)
                if turn:
                    read_until(dst, turn, dbuf)  # the far side's prompt: its turn to type now


@contextlib.contextmanager
def chat_pair(server: Path, client: Path) -> Iterator[tuple[Screen, Screen]]:
    """The server and the client in ptys of their own, past the handshake, the client's prompt
    showing; both stopped afterwards."""
    started: list[Screen] = []
    try:
        # The system python3, as a user starts it: chatserve.py re-executes itself under .venv.
        srv = Screen(["python3", str(server), "0"], role="server")
        started.append(srv)
        port = srv.expect_re(r"Listening on port (\d+)\.\.\.\r\n").group(1)
        cli = Screen([str(client), "127.0.0.1", port], role="client")
        started.append(cli)
        cli.expect_text(HANDLE_PROMPT)
        cli.type("Chris")
        srv.expect_re(r"Established connection with [^\r\n]*\r\n")
        cli.expect_text("Chris> ")
        yield srv, cli
    finally:
        for screen in started:
            screen.stop()


# --- netcat ------------------------------------------------------------------------------------


def netcat() -> tuple[str | None, str]:
    """OpenBSD netcat's path, installed with apt-get where it is missing; or None and why not."""
    found = shutil.which("nc.openbsd")
    if found:
        return found, ""
    if not shutil.which("apt-get"):
        return None, "nc.openbsd is missing and there is no apt-get to install netcat-openbsd"
    if os.geteuid() != 0:
        return None, "nc.openbsd is missing: run `apt-get install netcat-openbsd` as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "netcat-openbsd"]
    print("latency: installing netcat-openbsd (apt-get)", file=sys.stderr)
    done = subprocess.run(install, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if done.returncode != 0:  # perhaps an empty package list: fetch it once, then try again
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, stdin=subprocess.DEVNULL)
        done = subprocess.run(install, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    found = shutil.which("nc.openbsd")
    if found:
        return found, ""
    last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return None, f"netcat-openbsd could not be installed ({last})"


@contextlib.contextmanager
def netcat_pair(nc: str) -> Iterator[tuple[Screen, Screen]]:
    """`nc -l` and `nc` in ptys of their own, connected; both stopped afterwards."""
    started: list[Screen] = []
    try:
        for _ in range(3):  # another program may take the free port first
            port = free_port()
            srv = Screen([nc, "-l", "127.0.0.1", str(port)], role="nc -l")
            started.append(srv)
            deadline = time.monotonic() + 5
            while not listening(port, srv.pid) and srv.alive() and time.monotonic() < deadline:
                time.sleep(0.005)  # polling /proc: a listen() has no event to wait on
            if listening(port, srv.pid):
                break
        else:
            raise RuntimeError("nc -l did not listen")
        cli = Screen([nc, "127.0.0.1", str(port)], role="nc")
        started.append(cli)
        buf = bytearray()
        os.write(cli.fd, b"hello\n")  # through, so the connection is up before any timing
        read_until(srv.fd, b"hello\r\n", buf)
        yield srv, cli
    finally:
        for screen in started:
            screen.stop()


# --- the run -------------------------------------------------------------------------------------


def report(name: str, samples: Samples, base: Samples | None) -> None:
    for direction, label in (("up", "client -> server"), ("down", "server -> client")):
        values = samples[direction]
        median = statistics.median(values)
        ratio = f"   {median / statistics.median(base[direction]):5.2f}x nc" if base else ""
        print(f"{name:6} {label:17} median {median * 1e6:7.0f} us   p99 {percentile(values, 0.99) * 1e6:7.0f} us"
              f"{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=25, help="messages each way per block (default 25)")
    parser.add_argument("--rounds", type=int, default=20, help="ABBA rounds (default 20)")
    parser.add_argument("--size", type=int, default=100, help="characters per message (default 100, at least 8)")
    parser.add_argument("--server", type=Path, default=ROOT / "chatserve.py", help="the server to run")
    parser.add_argument("--client", type=Path, default=CLIENT_BUILDS["plain"], help="the client to run")
    args = parser.parse_args()
    nc, why = netcat()
    chat_samples: Samples = {"up": [], "down": []}
    nc_samples: Samples = {"up": [], "down": []}
    with contextlib.ExitStack() as stack:
        srv, cli = stack.enter_context(chat_pair(args.server, args.client))
        chat = Pair("chat", cli.fd, srv.fd, (b"Chris> ", b"HostA> "), (b"HostA> ", b"Chris> "))
        order = [chat]
        if nc:
            listener, caller = stack.enter_context(netcat_pair(nc))
            plain = Pair("nc", caller.fd, listener.fd, (b"", b""), (b"", b""))
            order = [chat, plain, plain, chat]
        for _ in range(args.rounds):
            for pair in order:
                pair.block(args.messages, max(8, args.size), chat_samples if pair is chat else nc_samples)
    total = args.rounds * args.messages * (2 if nc else 1)
    print(f"{total} messages of {max(8, args.size)} characters each way per program, in "
          f"{'ABBA' if nc else 'chat-only'} blocks of {args.messages}")
    report("chat", chat_samples, nc_samples if nc else None)
    if not nc:
        print(f"netcat: skipped: {why}")
        return
    report("nc", nc_samples, None)
    both = statistics.median(chat_samples["up"] + chat_samples["down"])
    base = statistics.median(nc_samples["up"] + nc_samples["down"])
    print(f"both directions: chat median {both * 1e6:.0f} us, nc {base * 1e6:.0f} us: {both / base:.2f}x nc "
          f"(+{(both - base) * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
