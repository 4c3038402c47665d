"""Deliberately broken implementations that prove the conformance suite's checks can fail.

Each mutant is the reference implementation with one documented defect, made at test time by
exact textual replacement in a copy of the reference sources: nothing broken is kept in the
repository, and a mutant cannot drift far from the reference (if the reference changes under
an `old` text, build() says so instead of silently testing something else).

`fails` lists the case IDs the mutant must FAIL: a full ID (`S-MSG-1[coalesced]`) names one
parametrization, a base ID (`S-BUSY-1`) every parametrization of that case, and `*` stands for
any characters (`S-ERR-1[hello-11-ascii-*]`: that vector in every delivery). Every
other case must PASS, or be BLOCKED because a prerequisite FAILed; `warns` and `skips` list
the cases that end WARN or SKIP instead, because the defect breaks only a SHOULD or the suite
cannot judge it, and `flaky` those that may FAIL or PASS, as timing decides (README.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import vectors

ROOT = Path(__file__).resolve().parents[2]
SERVER_FILES = ("chatserve.py", "chatwire.py", "venvboot.py")
CLIENT_FILES = ("chatclient.c", "chatwire.c", "chatwire.h")
# The flags of ./compileall: a mutant must compile as cleanly as the reference does.
CFLAGS = ("-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2")

Target = Literal["server", "client"]


@dataclass(frozen=True)
class Mutant:
    name: str
    target: Target
    file: str  # the reference file the edits apply to
    edits: tuple[tuple[str, str], ...]  # (old, new); each old occurs exactly once in the reference
    defect: str  # one line: what is wrong, with the PROTOCOL.md rule it breaks
    fails: frozenset[str]
    warns: frozenset[str] = field(default_factory=frozenset)
    skips: frozenset[str] = field(default_factory=frozenset)
    flaky: frozenset[str] = field(default_factory=frozenset)  # FAIL or PASS: decided by timing


def mutant(name: str, target: Target, file: str, old: str, new: str, defect: str, fails: set[str],
           *, more: tuple[tuple[str, str], ...] = (), warns: set[str] | None = None,
           flaky: set[str] | None = None) -> Mutant:
    return Mutant(name, target, file, ((old, new), *more), defect, frozenset(fails), frozenset(warns or ()),
                  flaky=frozenset(flaky or ()))


# The split-header delivery waits until the program has read the first part before it sends the
# rest (conformance/peer.py, wait_consumed), so a reader that mishandles split frames FAILs it
# every time; it first left a fixed 2 ms, which a loaded reader missed 1 run in 12.


# The MESSAGE vectors whose only fault is a control character (T-2).
CONTROL_MESSAGES = {"message-nul", "message-newline", "message-cr", "message-tab", "message-esc-clear",
                    "message-del", "message-c1-first", "message-c1-csi", "message-c1-last"}

SERVER_MUTANTS = [
    mutant("srv-listening-line", "server", "chatserve.py",
           'term.line(f"Listening on port {listener.getsockname()[1]}...")',
           'term.line(f"Listening on port {listener.getsockname()[1]}")',
           "wrong 'Listening' line: it lacks the '...' of 'Listening on port N...' (S-3)",
           {"S-LISTEN-1"}),
    mutant("srv-listening-asked-port", "server", "chatserve.py",
           'term.line(f"Listening on port {listener.getsockname()[1]}...")',
           'term.line(f"Listening on port {args.port}...")',
           "shows the port it was asked for, not the one it listens on: 'port 0' for port 0 (S-3)",
           {"S-LISTEN-2"}),
    mutant("srv-ipv4-only", "server", "chatserve.py",
           "    if socket.has_dualstack_ipv6():\n",
           "    if False:  # mutant: IPv4 only\n",
           "listens on IPv4 only: an IPv6 client cannot connect (S-3)",
           {"S-ADDR-1"}),
    mutant("srv-length-little-endian", "server", "chatwire.py",
           '"length" / Rebuild(Int16ub, len_(this.payload)),',
           '"length" / Rebuild(Int16ul, len_(this.payload)),',
           "wrong length bytes: the u16 length is little-endian, both ways (W-1)",
           {"S-HELLO-1"},
           more=(("from construct import Bytes, GreedyBytes, Int8ub, Int16ub,",
                  "from construct import Bytes, GreedyBytes, Int8ub, Int16ub, Int16ul,"),)),
    mutant("srv-split-frame", "server", "chatwire.py",
           "            return ConnectionClosed()\n        return NEED_DATA\n",
           "            return ConnectionClosed()\n"
           "        if self._buffer:  # mutant: each read is taken to hold whole frames\n"
           '            raise self._fail(ErrorCode.MALFORMED, "frame cut off")\n'
           "        return NEED_DATA\n",
           "misses a split frame: treats each read as whole frames, a frame cut by a read is MALFORMED (W-5)",
           {"S-HELLO-1[bytewise]", "S-HELLO-1[split-header]"}),
    mutant("srv-mapped-address", "server", "chatserve.py",
           '    if host.startswith("::ffff:") and "." in host:\n        host = host.removeprefix("::ffff:")\n',
           "",
           "wrong 'Established' address: IPv4 clients shown as ('::ffff:127.0.0.1', PORT) (S-4)",
           {"S-HELLO-3[ipv4]", "S-ERR-3"}),
    mutant("srv-one-message-per-read", "server", "chatserve.py",
           "                self.on_event(peer, event)\n",
           "                self.on_event(peer, event)\n"
           "                if isinstance(event, Message):\n"
           "                    break  # mutant: the rest of this read waits for the next one\n",
           "misses frames after a MESSAGE in the same read (W-5): they wait for more input",
           {"S-MSG-1[coalesced]", "S-QUIT-1[coalesced]", "S-ERR-2[two-messages]"}),
    mutant("srv-handle-in-message", "server", "chatserve.py",
           "peer.conn.send(Message(text))",
           'peer.conn.send(Message(f"{self.handle}> {text}"))',
           "sends 'HostA> text' as the MESSAGE instead of the text alone (S-5, W-3)",
           {"S-MSG-2", "S-MSG-3", "S-MSG-4", "S-MSG-5"}),
    mutant("srv-message-form", "server", "chatserve.py",
           'self.term.line(f"{peer.handle}> {text}")',
           'self.term.line(f"{peer.handle}: {text}")',
           "wrong shown form: a message is shown as 'Chris: test', not 'Chris> test' (S-5)",
           {"S-TEXT-1[message]"}),
    mutant("srv-refusal-wording", "server", "chatserve.py",
           'self.term.line(f"Message not sent: it {problem}.")',
           'self.term.line(f"Message not sent: {problem}.")',
           "wrong refusal: 'Message not sent: is empty.', without the 'it' of T-5 (S-6)",
           {"S-TEXT-2"}),
    mutant("srv-turn-wording", "server", "chatserve.py",
           '"Not your turn; the line was not sent."',
           '"Not your turn."',
           "wrong out-of-turn notice: 'Not your turn.' (S-6)",
           {"S-TEXT-3[not-your-turn]"}),
    mutant("srv-leaves-without-quit", "server", "chatserve.py",
           "            send_frame(peer.sock, peer.conn.send(Quit()))\n",
           "            pass  # mutant: closed without QUIT\n",
           "the operator's \\quit, Ctrl-D and Ctrl-C close the connection without sending QUIT (S-9, S-12)",
           {"S-QUIT-2", "S-QUIT-3", "S-CTRLC-1", "S-EOF-1", "S-CTRLC-2", "S-CTRLC-3", "S-NEXT-2"}),
    mutant("srv-stale-handle", "server", "chatserve.py",
           "                peer.handle, peer.deadline = handle, None\n",
           '                peer.handle, peer.deadline = self.__dict__.setdefault("first", handle), None  # mutant\n',
           "keeps the first client's handle for every later client (S-9, S-5)",
           {"S-NEXT-1"}),
    mutant("srv-silent-drop", "server", "chatserve.py",
           "            case Quit() | ConnectionClosed():\n                self.drop(peer)\n",
           "            case Quit():\n"
           "                self.drop(peer)\n"
           "            case ConnectionClosed():  # mutant: a lost client goes without a word\n"
           "                self.release(peer)\n"
           "                peer.sock.close()\n",
           "says nothing when a client's connection ends without QUIT (S-9, E-5)",
           {"S-DROP-1", "S-DROP-2", "S-TEXT-4[lost]"}),
    mutant("srv-dropped-wording", "server", "chatserve.py",
           'DROPPED = "The client has dropped the connection..."',
           'DROPPED = "The client has dropped the connection."',
           "wrong closing line: 'The client has dropped the connection.' with one dot (S-9)",
           {"S-TEXT-4[dropped]", "S-TEXT-4[lost]"}),
    mutant("srv-no-busy", "server", "chatserve.py",
           "        try:\n"
           '            send_frame(sock, Connection(Role.SERVER).send(Error(ErrorCode.BUSY, "busy")))\n'
           "        except PeerGone:\n"
           "            sock.close()\n"
           "            return\n"
           "        self.linger(sock)\n",
           "        sock.close()  # mutant: refused without ERROR BUSY\n",
           "no BUSY: a second connection is closed without ERROR BUSY (S-8)",
           {"S-BUSY-1"}),
    mutant("srv-busy-ends-conversation", "server", "chatserve.py",
           "        self.linger(sock)\n",
           "        self.linger(sock)\n"
           "        if self.conversation:  # mutant: the refusal ends the conversation going on too\n"
           "            self.drop(self.conversation)\n",
           "a BUSY refusal also ends the conversation going on (S-8: it is not disturbed)",
           {"S-BUSY-2", "S-BUSY-3"}),
    mutant("srv-default-handle", "server", "chatserve.py",
           'DEFAULT_HANDLE = "HostA"',
           'DEFAULT_HANDLE = "Host"',
           "the default handle is 'Host', not 'HostA' (S-1)",
           {"S-HELLO-2"}),
    mutant("srv-busy-reason", "server", "chatserve.py",
           'Error(ErrorCode.BUSY, "busy")',
           'Error(ErrorCode.BUSY, "server busy")',
           "BUSY with the wrong reason 'server busy' instead of 'busy' (E-4)",
           {"S-BUSY-1"}),
    mutant("srv-accepts-11-char-handle", "server", "chatwire.py",
           "    if problem := _text_problem(text, HANDLE_MAX):\n",
           "    if problem := _text_problem(text, HANDLE_MAX + 1):\n",
           "accepts an 11-character handle (T-1)",
           {"S-ERR-1[hello-11-ascii-*]"}),
    mutant("srv-raw-esc", "server", "chatwire.py",
           '    return UNSHOWABLE.sub("?", text)\n',
           "    return text\n",
           "prints raw ESC: the client's ERROR reason reaches the screen unsanitised (S-13)",
           {"S-ERR-4", "S-TEXT-5", "S-ERR-6"}),
    mutant("srv-error-wording", "server", "chatserve.py",
           'f"The client sent ERROR {code} {error_name(code)}: {reason}"',
           'f"The client sent ERROR {code}: {reason}"',
           "wrong line for the client's ERROR: its code without the name, 'The client sent ERROR 3: ...' (S-10)",
           {"S-TEXT-5"}),
    mutant("srv-no-timeout", "server", "chatserve.py",
           "deadline=time.monotonic() + self.handshake_timeout)",
           "deadline=None)",
           "no TIMEOUT: a connection that never completes HELLO is kept forever (S-11)",
           {"S-TIMEOUT-1", "S-TIMEOUT-2"}),
    mutant("srv-exit-status", "server", "chatserve.py",
           "        self.gate.disarm()\n        return 0\n",
           "        self.gate.disarm()\n        return 1\n",
           "wrong exit status: 1 instead of 0 after Ctrl-C or Ctrl-D (S-12, X-2)",
           {"S-TEXT-6"}),
    # Issue 14: concurrent handshakes (S-8) and the server's open points (S-6, S-10, S-12, S-13, S-14).
    mutant("srv-one-handshake-at-a-time", "server", "chatserve.py",
           "            if self.conversation is None and len(self.handshakes) < MAX_HANDSHAKES:\n",
           "            if self.conversation is None and not self.handshakes:  # mutant: one handshake at a time\n",
           "one connection in its handshake makes every other arrival BUSY, the S-8 of before: one idle "
           "connection per handshake timeout keeps every client out (S-8)",
           {"S-BUSY-1[hello-came-first]", "S-BUSY-3", "S-TIMEOUT-2"}),
    mutant("srv-shared-handshake-clock", "server", "chatserve.py",
           "deadline=time.monotonic() + self.handshake_timeout)",
           "deadline=min([p.deadline for p in self.handshakes.values()]  # mutant: the first one's clock\n"
           "                                                 or [time.monotonic() + self.handshake_timeout]))",
           "one handshake clock for all: a connection arriving while another is in its handshake times out "
           "with the first (S-11)",
           {"S-TIMEOUT-2"}),
    mutant("srv-unbounded-handshakes", "server", "chatserve.py",
           "MAX_HANDSHAKES = 64 ",
           "MAX_HANDSHAKES = 1 << 20 ",
           "no bound on the connections in their handshake: a 65th is kept waiting, not refused BUSY at once (S-8)",
           {"S-BUSY-4"}),
    mutant("srv-draining-is-busy", "server", "chatserve.py",
           "            if self.conversation is None and len(self.handshakes) < MAX_HANDSHAKES:\n",
           "            if self.conversation is None and len(self.handshakes) < MAX_HANDSHAKES \\\n"
           "                    and getattr(self, 'closing', None) not in self.lingering:  # mutant\n",
           "the last conversation's socket, in its W-7 drain after the operator's \\quit, still counts as a "
           "conversation: a client arriving during the drain gets BUSY (S-8, W-7)",
           {"S-NEXT-2"},
           more=(("        else:\n            self.linger(peer.sock)\n        self.discard_typing()\n",
                  "        else:\n            self.linger(peer.sock)\n"
                  "            self.closing = peer.sock  # mutant: remembered as still open\n"
                  "        self.discard_typing()\n"),)),
    mutant("srv-busy-loop", "server", "chatserve.py",
           "        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None\n",
           "        return 0.0 if deadlines else None  # mutant: polls while a deadline is pending\n",
           "polls without sleeping while a handshake or a drain is pending: a busy loop (S-14)",
           {"S-IDLE-1"}),
    mutant("srv-handshake-error-shown", "server", "chatserve.py",
           "                if peer.established:  # S-10; from a handshake, nothing is shown (S-9)\n",
           "                if True:  # mutant: shown for a connection in its handshake too\n",
           "shows the ERROR of a connection still in its handshake, a stranger's words on the screen (S-10)",
           {"S-ERR-5"}),
    mutant("srv-quit-stops-server", "server", "chatserve.py",
           "        if peer is None:  # S-6: \\quit too; connections in their handshake are no conversation\n",
           "        if peer is None and text == QUIT_COMMAND:  # mutant: \\quit with no client stops the server\n"
           "            self.shut_down()\n"
           "        elif peer is None:\n",
           "\\quit typed with no conversation stops the server and closes the handshakes (S-6)",
           {"S-QUIT-4"}),
    mutant("srv-drains-until-closed", "server", "chatserve.py",
           "        deadline = time.monotonic() + LINGER_SECONDS\n",
           "        deadline = time.monotonic() + 3600  # mutant: no bound on the drain before exit\n",
           "after Ctrl-C it waits for the client to close, however long, whatever signal comes: not promptly "
           "(S-12, W-7)",
           {"S-CTRLC-2"},
           more=(("                    if key.fileobj is self.wakeup_r:\n                        return\n",
                  "                    if key.fileobj is self.wakeup_r:  # mutant: signals ignored\n"
                  "                        self.wakeup_r.recv(64)\n                        continue\n"),)),
    mutant("srv-signal-retries-write", "server", "chatserve.py",
           "            self.armed = True\n            if self.signalled and not writable(fd):\n"
           "                raise Interrupted\n            return os.write(fd, data)\n",
           "            return os.write(fd, data)  # mutant: the handler returns, and Python retries the write\n",
           "a signal while a write to the terminal is blocked (output stopped with Ctrl-S) only wakes the loop; "
           "Python retries the write, so the server never stops (S-12)",
           {"S-CTRLC-3"}),
    mutant("srv-shows-overrides", "server", "chatwire.py",
           '    return UNSHOWABLE.sub("?", text)\n',
           '    return CONTROL.sub("?", text)  # mutant: direction overrides shown\n',
           "shows a direction override (U+202E) of an ERROR reason raw, reversing the rest of the line (S-13)",
           {"S-ERR-6"}),
    mutant("srv-epoll", "server", "chatserve.py",
           "        self.selector = selectors.PollSelector()\n",
           "        self.selector = selectors.EpollSelector()  # mutant: epoll refuses /dev/null\n",
           "crashes with a traceback when its input is /dev/null, which epoll refuses (S-12, X-2)",
           {"S-STDIN-1"}),
]

CLIENT_MUTANTS = [
    mutant("cli-handle-prompt", "client", "chatclient.c",
           '        outs("Enter client handle (length 10 or less): ");\n',
           '        outs("Enter client handle: ");\n',
           "wrong handle prompt 'Enter client handle: ' (C-2)",
           {"C-PROMPT-1"}),
    mutant("cli-length-little-endian", "client", "chatwire.c",
           "    out[1] = (unsigned char)(len >> 8);\n    out[2] = (unsigned char)(len & 0xFF);\n",
           "    out[1] = (unsigned char)(len & 0xFF);\n    out[2] = (unsigned char)(len >> 8);\n",
           "wrong length bytes: frames go out with a little-endian length (W-1)",
           {"C-HELLO-1", "C-HANDLE-1"}),
    mutant("cli-handle-no-reprompt", "client", "chatclient.c",
           "    if (problem != NULL && !stdin_tty) {\n",
           "    if (problem != NULL) {\n",
           "does not re-prompt: an invalid handle typed at a terminal is fatal (C-2)",
           {"C-HANDLE-1", "C-TEXT-2"}),
    mutant("cli-split-frame", "client", "chatclient.c",
           "    feed(buf, (size_t)n);\n",
           "    feed(buf, (size_t)n);\n"
           "    if (dec.have > 0 && !dec.done) /* mutant: each read is taken to hold whole frames */\n"
           '        protocol_error(WIRE_MALFORMED, "frame cut off");\n',
           "misses a split frame: treats each read as whole frames, a frame cut by a read is MALFORMED (W-5)",
           {"C-HELLO-2[bytewise]", "C-HELLO-2[split-header]", "C-MSG-2[bytewise]", "C-MSG-2[split-header]",
            # a bad handle cut by a read is answered MALFORMED, not BAD_HANDLE (the other vectors are MALFORMED)
            *(f"C-ERR-2[{v.name}-{d}]" for v in vectors.load() if v.error == "BAD_HANDLE"
              for d in ("bytewise", "split-header"))}),
    mutant("cli-hangs-after-quit", "client", "chatclient.c",
           "    close(sock);\n    exit(EXIT_SUCCESS);\n",
           "    close(sock);\n    sock = -1; /* mutant: and waits on, for the terminal */\n",
           "hangs after QUIT: shows the server's QUIT but does not exit (C-11)",
           {"C-HELLO-2[coalesced]", "C-MSG-2[coalesced]", "C-QUIT-4", "C-QUIT-5", "C-EXIT-1[closed]"}),
    mutant("cli-message-off-by-one", "client", "chatclient.c",
           "    if (send_frame(WIRE_MESSAGE, s, n) < 0)\n",
           "    if (send_frame(WIRE_MESSAGE, s, n + 1) < 0)\n",
           "sends one byte too many with each MESSAGE: 'test' goes out as 'tests' (C-5)",
           {"C-MSG-1"}),
    mutant("cli-no-prompt", "client", "chatclient.c",
           '    outs("\\n");\n    enter(CLIENT_TURN);\n    show_prompt();\n',
           '    outs("\\n");\n    enter(CLIENT_TURN);\n    fflush(stdout);\n',
           "no prompt after a received MESSAGE (C-6)",
           {"C-MSG-2[whole]", "C-MSG-2[bytewise]", "C-MSG-2[split-header]"}),
    mutant("cli-truncates-499", "client", "chatclient.c",
           "    if (send_frame(WIRE_MESSAGE, s, n) < 0)\n",
           "    if (send_frame(WIRE_MESSAGE, s, n > 499 ? 499 : n) < 0)\n",
           "truncates typed lines at 499 bytes (C-7: nothing is truncated)",
           {"C-MSG-3", "C-MSG-4"}),
    mutant("cli-sends-out-of-turn", "client", "chatclient.c",
           "    if (state != CLIENT_TURN) {\n",
           "    if (state != CLIENT_TURN && state != SERVER_TURN) {\n",
           "sends lines typed out of turn (C-7, F-2)",
           {"C-MSG-5", "C-TEXT-4"}),
    mutant("cli-leaves-without-quit", "client", "chatclient.c",
           "        if (send_frame(WIRE_QUIT, NULL, 0) < 0 && failure_is_lost)\n            lost();\n",
           "        (void)failure_is_lost; /* mutant: no QUIT */\n",
           "\\quit, Ctrl-D and Ctrl-C close the connection without sending QUIT (C-8, C-9)",
           {"C-QUIT-1", "C-QUIT-2", "C-QUIT-3", "C-CTRLC-1", "C-SCRIPT-1"}),
    mutant("cli-quit-unexpected-waiting", "client", "chatclient.c",
           "        [SERVER_TURN] = WIRE_ALLOW_MESSAGE | WIRE_ALLOW_QUIT,\n",
           "        [SERVER_TURN] = WIRE_ALLOW_MESSAGE,\n",
           "takes the server's QUIT during the server's turn for UNEXPECTED (F-3, C-11)",
           {"C-QUIT-4"}),
    mutant("cli-glued-quit-line", "client", "chatclient.c",
           '    end_prompt_line();\n    outs("The server has closed the connection...\\n");\n',
           '    outs("The server has closed the connection...\\n");\n',
           "prints the server's QUIT line after the half-typed input, not on a fresh line (C-10)",
           {"C-QUIT-5"}),
    mutant("cli-sigpipe", "client", "chatclient.c",
           "        n = send(sock, buf, len, MSG_NOSIGNAL);\n",
           "        n = send(sock, buf, len, 0);\n",
           "dies on SIGPIPE: sets SIGPIPE to SIG_DFL, sends without MSG_NOSIGNAL, and answers a lost "
           "connection with QUIT, a write to the reset socket (C-15)",
           {"C-SIGPIPE-1", "C-LOST-1[reset]", "C-QUIT-6", "C-EXIT-1[quit-lost]"},
           # SIG_DFL, not merely "not ignored": the suite's children inherit SIGPIPE ignored from
           # Python (pexpect does not restore it), so only an explicit SIG_DFL can kill a client.
           # The QUIT is what writes after the reset: a client like the reference notices the reset
           # by reading and exits without writing, and the first write after a reset gets
           # ECONNRESET, not SIGPIPE (README.md has the evidence).
           more=(("    sa.sa_handler = SIG_IGN;\n    sigaction(SIGPIPE, &sa, NULL); /* C-15 */\n",
                  "    sa.sa_handler = SIG_DFL; /* mutant: SIGPIPE kills */\n    sigaction(SIGPIPE, &sa, NULL);\n"),
                 ('    errline("chatclient: the connection to the server was lost");\n    exit(EXIT_LOST);\n',
                  '    errline("chatclient: the connection to the server was lost");\n'
                  "    send_frame(WIRE_QUIT, NULL, 0); /* mutant: a goodbye to a dead connection */\n"
                  "    exit(EXIT_LOST);\n"))),
    mutant("cli-refused-exit-status", "client", "chatclient.c",
           '        errline("chatclient: cannot connect to %s port %s: %s", host, port, strerror(err));\n'
           "        exit(EXIT_CONNECT);\n",
           '        errline("chatclient: cannot connect to %s port %s: %s", host, port, strerror(err));\n'
           "        exit(EXIT_LOST);\n",
           "wrong exit status: 6 instead of 3 when the connection is refused (C-3, X-1)",
           {"C-EXIT-2"}),
    mutant("cli-raw-esc", "client", "chatclient.c",
           "    wire_sanitize(dec.payload + 1, dec.len - 1, reason, sizeof reason);\n",
           "    memcpy(reason, dec.payload + 1, dec.len - 1); /* mutant: not sanitised */\n"
           "    reason[dec.len - 1] = '\\0';\n",
           "prints raw ESC: the server's ERROR reason reaches the screen unsanitised (C-12, S-13)",
           {"C-ERR-1[2]", "C-ERR-1[3]", "C-ERR-1[4]", "C-ERR-1[5]", "C-ERR-1[77]",
            "C-TEXT-8[2]", "C-TEXT-8[3]", "C-TEXT-8[4]", "C-TEXT-8[5]", "C-TEXT-8[77]"}),
    mutant("cli-shows-overrides", "client", "chatwire.c",
           "        if (wire_utf8_next(s, len, &i, &cp) && !wire_is_control(cp) && !wire_is_override(cp)) {\n",
           "        if (wire_utf8_next(s, len, &i, &cp) && !wire_is_control(cp)) { /* mutant */\n",
           "shows a direction override (U+202E) in the server's ERROR reason raw, reversing the rest of the line "
           "(C-12, S-13)",
           {"C-ERR-1[2]", "C-ERR-1[3]", "C-ERR-1[4]", "C-ERR-1[5]", "C-ERR-1[77]",
            "C-TEXT-8[2]", "C-TEXT-8[3]", "C-TEXT-8[4]", "C-TEXT-8[5]", "C-TEXT-8[77]"}),
    mutant("cli-bad-handle-is-malformed", "client", "chatwire.c",
           "        return fail(d, wire_utf8_valid(p, len, NULL) ? WIRE_BAD_HANDLE : WIRE_MALFORMED, why);\n",
           "        return fail(d, WIRE_MALFORMED, why); /* mutant */\n",
           "answers every bad handle in the server's HELLO with MALFORMED instead of BAD_HANDLE (E-3 step 5)",
           {f"C-ERR-2[{v.name}-*]" for v in vectors.load() if v.error == "BAD_HANDLE"}),
    mutant("cli-shows-control-characters", "client", "chatwire.c",
           "    if (d->buf[0] == WIRE_MESSAGE && (problem = wire_message_problem(p, len)) != NULL) {\n",
           "    if (d->buf[0] == WIRE_MESSAGE && (problem = wire_message_problem(p, len)) != NULL &&\n"
           '        strcmp(problem, "contains control characters") != 0) { /* mutant */\n',
           "accepts MESSAGEs with control characters from the server and prints them raw (T-3, E-2)",
           {f"C-ERR-4[{v.name}-*]" for v in vectors.load() if v.name in CONTROL_MESSAGES}),
    mutant("cli-second-hello", "client", "chatclient.c",
           "        [CLIENT_TURN] = WIRE_ALLOW_QUIT,\n",
           "        [CLIENT_TURN] = WIRE_ALLOW_QUIT | WIRE_ALLOW_HELLO,\n",
           "accepts a second HELLO from the server instead of UNEXPECTED (E-1, section 4)",
           {"C-ERR-3[second-hello]"}),
    mutant("cli-no-timeout", "client", "chatclient.c",
           "        timeout = state == HELLO_SENT ? ms_until(&hello_deadline) : -1;\n",
           "        timeout = -1; /* mutant: waits for the server's HELLO forever */\n",
           "no TIMEOUT: waits for the server's HELLO forever (C-4)",
           {"C-TIMEOUT-1", "C-EXIT-1[timeout]"}),
    mutant("cli-ignores-hello-timeout-env", "client", "chatclient.c",
           '    const char *env = getenv("CHAT_HELLO_TIMEOUT");\n',
           "    const char *env = NULL; /* mutant: CHAT_HELLO_TIMEOUT ignored */\n",
           "ignores CHAT_HELLO_TIMEOUT and always waits 10 s for the server's HELLO (C-4 SHOULD)",
           set(), warns={"C-TIMEOUT-1"}),
    mutant("cli-refused-exits-0", "client", "chatclient.c",
           '        errline("chatclient: cannot connect to %s port %s: %s", host, port, strerror(err));\n'
           "        exit(EXIT_CONNECT);\n",
           '        errline("chatclient: cannot connect to %s port %s: %s", host, port, strerror(err));\n'
           "        exit(EXIT_SUCCESS);\n",
           "a refused connection ends with status 0, as if all went well (C-3, X-1)",
           {"C-REFUSED-1", "C-EXIT-2"}),
    mutant("cli-quit-lost-exits-0", "client", "chatclient.c",
           "    if (is_quit(s, n))\n        leave(EXIT_SUCCESS, 1);\n",
           "    if (is_quit(s, n))\n        leave(EXIT_SUCCESS, 0); /* mutant: a QUIT that fails is ignored */\n",
           "a \\quit whose QUIT cannot be sent (the connection reset) exits 0 as if all went well; it also takes "
           "the terminal before the socket, so that it meets the reset by sending (C-8, C-14)",
           {"C-QUIT-6", "C-EXIT-1[quit-lost]"},
           # The reference reads the socket first and finds the reset there; the case holds the
           # reset and the \quit for the client together, so only a client that takes the
           # terminal first meets the failed QUIT. That order is allowed (PROTOCOL.md C-8).
           more=(("        if (p[1].revents)\n            on_socket();\n"
                  "        if (state == HELLO_SENT && ms_until(&hello_deadline) == 0)\n"
                  "            on_hello_timeout();\n"
                  "        if (p[2].revents)\n            on_stdin();\n",
                  "        if (p[2].revents) /* mutant: the terminal first */\n            on_stdin();\n"
                  "        if (p[1].revents)\n            on_socket();\n"
                  "        if (state == HELLO_SENT && ms_until(&hello_deadline) == 0)\n"
                  "            on_hello_timeout();\n"),)),
    mutant("cli-script-prompt-glued", "client", "chatclient.c",
           "    if (stdin_tty)\n        prompt_showing = 0;\n    else\n        end_prompt_line();\n",
           "    prompt_showing = 0; /* mutant: as if a terminal had echoed the line */\n",
           "with its input from a file, a message received is glued to the prompt: 'Chris> HostA> hello' (C-6, C-10)",
           {"C-SCRIPT-1"}),
    mutant("cli-port-wraps", "client", "chatclient.c",
           '    if (v < 1 || v > 65535)\n        return "it is not between 1 and 65535";\n',
           '    v %= 65536; /* mutant: the port is kept in 16 bits, so 99999 is 34463 */\n'
           '    if (v < 1)\n        return "it is not between 1 and 65535";\n',
           "takes a port above 65535 modulo 65536 (99999 is 34463) instead of refusing it (C-1)",
           {"C-USAGE-2", "C-TEXT-11[99999]"}),
    mutant("cli-resolves-after-handle", "client", "chatclient.c",
           "    resolve();\n    show_prompt();\n",
           "    show_prompt();\n",
           "resolves HOST only after the handle is typed, so a mistyped host is told after the user typed a "
           "handle (C-3)",
           {"C-RESOLVE-1", "C-TEXT-12"},
           more=(("    for (ai = addrs; ai != NULL; ai = ai->ai_next) {\n",
                  "    resolve(); /* mutant: only once the handle is typed */\n"
                  "    for (ai = addrs; ai != NULL; ai = ai->ai_next) {\n"),)),
    # Wording only: each FAILs its text case and nothing else.
    mutant("cli-help-is-usage-error", "client", "chatclient.c",
           "        fputs(help, stdout);\n        exit(fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);\n",
           "        fputs(help, stderr); /* mutant: help as a usage error */\n        exit(EXIT_USAGE);\n",
           "--help prints the usage on stderr and exits 2, as a usage error (C-1, X-1)",
           {"C-USAGE-1"}),
    mutant("cli-port-reason-wording", "client", "chatclient.c",
           'fprintf(stderr, "chatclient: invalid port \'%s\': %s\\n", shown, problem);',
           'fprintf(stderr, "chatclient: bad port %s (%s)\\n", shown, problem);',
           "wrong bad-port line: 'chatclient: bad port 99999 (it is not between 1 and 65535)' (C-1)",
           {"C-TEXT-11"}),
    mutant("cli-resolve-line", "client", "chatclient.c",
           'errline("chatclient: cannot resolve %s: %s", host,',
           'errline("chatclient: unknown host %s: %s", host,',
           "wrong resolution failure line: 'chatclient: unknown host HOST: REASON' (C-3)",
           {"C-TEXT-12"}),
    mutant("cli-timeout-reason-fixed", "client", "chatclient.c",
           '    snprintf(why, sizeof why, "no HELLO within %g s", hello_timeout_ms() / 1000.0);\n',
           '    snprintf(why, sizeof why, "no HELLO within 10 s"); /* mutant: whatever the wait */\n',
           "the ERROR TIMEOUT reason says 'no HELLO within 10 s' after a wait of CHAT_HELLO_TIMEOUT seconds (C-4, E-4)",
           {"C-TEXT-10"}),
    mutant("cli-turn-prompt", "client", "chatclient.c",
           '        out(handle, handle_len);\n        outs("> ");\n',
           '        out(handle, handle_len);\n        outs(": ");\n',
           "wrong prompt in its turn: 'Chris: ' (C-5)",
           {"C-PROMPT-2"}),
    mutant("cli-message-form", "client", "chatclient.c",
           '    out(peer, peer_len);\n    outs("> ");\n',
           '    out(peer, peer_len);\n    outs(": ");\n',
           "a MESSAGE shown as 'HostA: hello' (C-6)",
           {"C-TEXT-5"}),
    mutant("cli-closed-line", "client", "chatclient.c",
           '    outs("The server has closed the connection...\\n");\n',
           '    outs("The server has closed the connection.\\n");\n',
           "wrong closing line: 'The server has closed the connection.' (C-11)",
           {"C-TEXT-1"}),
    mutant("cli-handle-reason-wording", "client", "chatclient.c",
           '        outs("Invalid handle: it ");\n',
           '        outs("Invalid handle, it ");\n',
           "wrong refusal of a handle: 'Invalid handle, it PHRASE.' (C-2, T-5)",
           {"C-TEXT-2"}),
    mutant("cli-message-reason-wording", "client", "chatclient.c",
           '        outs("Message not sent: it ");\n',
           '        outs("Not sent: it ");\n',
           "wrong refusal of a line: 'Not sent: it PHRASE.' (C-7, T-5)",
           {"C-TEXT-3"}),
    mutant("cli-not-your-turn-wording", "client", "chatclient.c",
           '        outs("Not your turn; the line was not sent.\\n");\n',
           '        outs("Not your turn.\\n");\n',
           "wrong out-of-turn notice: 'Not your turn.' (C-7)",
           {"C-TEXT-4"}),
    mutant("cli-lost-line", "client", "chatclient.c",
           '    errline("chatclient: the connection to the server was lost");\n',
           '    errline("chatclient: connection lost");\n',
           "wrong lost-connection line: 'chatclient: connection lost' (C-14)",
           {"C-TEXT-6"}),
    mutant("cli-connect-line", "client", "chatclient.c",
           'errline("chatclient: cannot connect to %s port %s: %s", host, port, strerror(err));',
           'errline("chatclient: cannot connect to %s:%s: %s", host, port, strerror(err));',
           "wrong connection failure line: 'chatclient: cannot connect to HOST:PORT: REASON' (C-3)",
           {"C-TEXT-7"}),
    mutant("cli-busy-description", "client", "chatclient.c",
           '        [WIRE_BUSY] = "the server is busy with another client",\n',
           '        [WIRE_BUSY] = "the server is full",\n',
           "wrong description of BUSY: 'the server is full' (C-12)",
           {"C-TEXT-8[1]"}),
    mutant("cli-protocol-error-line", "client", "chatclient.c",
           'errline("chatclient: protocol error: sent ERROR %u %s (%s)", code,',
           'errline("chatclient: protocol error (sent ERROR %u %s: %s)", code,',
           "wrong protocol error line: 'chatclient: protocol error (sent ERROR C NAME: REASON)' (C-13)",
           {"C-TEXT-9"}),
    mutant("cli-their-error-exit-status", "client", "chatclient.c",
           "    close(sock);\n    exit(EXIT_THEIR_ERROR);\n",
           "    close(sock);\n    exit(EXIT_OUR_ERROR);\n",
           "wrong exit status: 5 instead of 4 after the server's ERROR (C-12, X-1)",
           {"C-EXIT-1[error]"}),
]

MUTANTS = SERVER_MUTANTS + CLIENT_MUTANTS

# Base case IDs that no mutant can FAIL, because the suite cannot (findings: README.md). The
# coverage test demands exactly these gaps, so a suite that learns to fail one asks for a mutant.
UNFAILABLE: dict[str, str] = {}  # base case IDs no mutant can FAIL, with why (none now)
BY_NAME = {m.name: m for m in MUTANTS}
assert len(BY_NAME) == len(MUTANTS), "mutant names must be unique"


# --- building --------------------------------------------------------------------------------


class BuildError(Exception):
    """The mutant cannot be made: an `old` text is not in the reference exactly once, or the C does not compile."""


def mutated_source(m: Mutant) -> str:
    """The reference file with the mutant's edits applied, each checked to match exactly once."""
    text = (ROOT / m.file).read_text(encoding="utf-8")
    for old, new in m.edits:
        # Counted in the reference, not after earlier edits, so that the check means what it says.
        found = (ROOT / m.file).read_text(encoding="utf-8").count(old)
        if found != 1:
            raise BuildError(f"{m.name}: the old text occurs {found} times in {m.file}, not once: {old!r}")
        text = text.replace(old, new)
    return text


def apply(text: str, edits: tuple[tuple[str, str], ...], what: str) -> str:
    """Each (old, new) edit, each `old` found exactly once (else BuildError, naming it)."""
    for old, new in edits:
        if text.count(old) != 1:
            raise BuildError(f"{what}: expected exactly one {old!r} in the reference, found {text.count(old)}")
        text = text.replace(old, new)
    return text


def build(m: Mutant, workdir: Path) -> list[str]:
    """Make the mutant in `workdir` (empty or new) and return the suite's command template for it."""
    files = SERVER_FILES if m.target == "server" else CLIENT_FILES
    sources = {name: (ROOT / name).read_text(encoding="utf-8") for name in files}
    sources[m.file] = mutated_source(m)
    return build_copy(m.target, workdir, sources, {}, m.name)


def build_copy(target: Target, workdir: Path, sources: dict[str, str],
               edits: dict[str, tuple[tuple[str, str], ...]], name: str = "copy") -> list[str]:
    """Write `sources` (file name -> text) into `workdir` with `edits` (file name -> edits) applied,
    build it as ./compileall would, and return the suite's command template for it."""
    workdir.mkdir(parents=True, exist_ok=True)
    for file, text in sources.items():
        (workdir / file).write_text(apply(text, edits.get(file, ()), f"{name}: {file}"), encoding="utf-8")
    if target == "server":
        shutil.copytree(ROOT / "vectors", workdir / "vectors", dirs_exist_ok=True)
        # Started with system python3, venvboot re-executes under the .venv beside venvboot.py: the
        # copy's, a link to the real one. The suite starts it under that .venv at once instead,
        # which venvboot accepts as is: the same interpreter, and each of the suite's many server
        # starts is 40 ms shorter, time the suite spends polling /proc for the listening socket.
        venv = workdir / ".venv"
        if not venv.exists():
            venv.symlink_to(ROOT / ".venv", target_is_directory=True)
        return [str(venv / "bin" / "python"), str(workdir / "chatserve.py"), "{port}",
                "--handshake-timeout", "{handshake_timeout}"]
    binary = workdir / "chatclient"
    cc = subprocess.run(["cc", *CFLAGS, "-o", str(binary), "chatclient.c", "chatwire.c"], cwd=workdir,
                        capture_output=True, text=True)
    if cc.returncode != 0:
        raise BuildError(f"{name}: the copy does not compile:\n{cc.stderr}")
    return [str(binary), "{host}", "{port}"]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A base ID names all its parametrizations, a full ID one, and `*` any run of characters
    (`S-ERR-1[hello-11-ascii-*]`: that vector in every delivery the suite has)."""
    full = re.escape(pattern).replace(r"\*", ".*")
    return re.compile(full if "[" in pattern else full + r"(\[.*\])?")


def expected_ids(patterns: frozenset[str] | set[str], case_ids: list[str]) -> set[str]:
    """The full case IDs that `patterns` name among `case_ids`."""
    regexes = [pattern_regex(p) for p in patterns]
    return {cid for cid in case_ids if any(r.fullmatch(cid) for r in regexes)}
