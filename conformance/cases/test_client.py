"""Client cases: the suite plays the server (a scripted peer on chatwire), types into the
client's terminal, and checks its bytes, its screen and its exit status.

Two kinds of case. A behaviour case judges what the client does: the frames it sends, that it
waits for its user, that a refused line or handle is answered on its screen, that a message is
shown after the peer's handle, that it ends (non-zero after an error). It learns what the client
shows (its handle prompt, its prompt in its turn) instead of assuming the reference's words. A
text case (kind="text") checks one exact text or exit status that PROTOCOL.md fixes, in a
minimal scenario of its own: a client that behaves right but words its screen its own way FAILs
those and nothing else.

Each case names the PROTOCOL.md requirements it checks; wire cases run in each delivery of W-5.
`needs` is used only where a case cannot run without another: a connection and the client's
HELLO (C-HELLO-1), or a MESSAGE sent by the client (C-MSG-1).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import vectors
from chatwire import Error, ErrorCode, Event, FrameType, Hello, Message, Quit, encode, error_name
from conformance.checks import CaseFailure
from conformance.controllers import Context, ModeCheck, ScriptedServer
from conformance.peer import DELIVERIES, WirePeer, describe, invalid_vector_cases, send_invalid
from conformance.plugin import Options
from conformance.plugin import case_id as id_of
from conformance.procstate import terminal_unread
from conformance.programs import Policy, Program, free_port, substitute

case = pytest.mark.case
deliveries = pytest.mark.parametrize("delivery", DELIVERIES)
TEXT = "text"  # kind= of a case that checks an exact text or exit status of PROTOCOL.md

# The texts and statuses PROTOCOL.md fixes: only the text cases use them.
HANDLE_PROMPT = "Enter client handle (length 10 or less): "
TURN_PROMPT = "Chris> "
SHOWN = "HostA> hello"
SERVER_CLOSED = "The server has closed the connection..."
NOT_YOUR_TURN = "Not your turn; the line was not sent."
LOST = "chatclient: the connection to the server was lost"
DESCRIPTIONS = {
    1: "the server is busy with another client",
    2: "the server got a malformed frame",
    3: "the server got an unexpected frame",
    4: "the server rejected the handle",
    5: "the server timed out waiting for HELLO",
}

MIXED_500 = ("é€😀" * 167)[:500]
BAD_HANDLES = [
    pytest.param("", "is empty", id="empty"),
    pytest.param("abcdefghijk", "is longer than 10 characters", id="eleven"),
    pytest.param("a b", "contains whitespace", id="space"),
    pytest.param("a>b", "contains '>'", id="gt"),
    pytest.param("a\x01b", "contains control characters", id="control"),
]
BAD_LINES = [
    pytest.param("", "is empty", id="empty"),
    pytest.param("x" * 501, "is longer than 500 characters", id="long"),
    pytest.param("bell\x07", "contains control characters", id="control"),
]
ERROR_CODES = [1, 2, 3, 4, 5, 77]
UNKNOWN_TYPE = vectors.by_name("type-unknown").data  # 58 00 00: MALFORMED at the header


# --- what the client shows, learnt ----------------------------------------------------------


@dataclass
class Learned:
    """What the client shows, learnt by the first case that sees it (a prompt, whatever its words).
    Later cases wait for that text, which is quicker than waiting until the client is idle."""

    handle_prompt: str | None = None
    turn_prompt: str | None = None  # in its turn, with the handle 'Chris'


@pytest.fixture(scope="session")
def learned() -> Learned:
    return Learned()


class Chat:
    """The steps of a conversation with the client under test, each a wait for what the client
    does, never for its words."""

    def __init__(self, start_client: Callable[..., Program], server: ScriptedServer, learned: Learned,
                 ctx: Context) -> None:
        self.start = start_client
        self.server = server
        self.learned = learned
        self.ctx = ctx

    def ask_handle(self, client: Program) -> str:
        """Until the client waits for its user at its handle prompt (C-2); that prompt."""
        known = self.learned.handle_prompt
        if known:
            client.expect_text(known, "C-2", f"its handle prompt {known!r}")
            return known
        prompt = client.wait_for_user("C-2", "the client asks its user for a handle")
        client.forget_unread()
        if prompt.strip() and prompt in client.transcript:
            self.learned.handle_prompt = prompt
        return prompt

    def in_turn(self, client: Program, reqs: str, what: str) -> str:
        """Until the client waits for its user in its turn with its prompt showing (C-5); the prompt.
        The first case to get there learns it; every later turn must show the same."""
        known = self.learned.turn_prompt
        if known and "Chris" in known:  # a prompt with the handle cannot be mistaken for a message line
            client.expect_text(known, reqs, f"{what}: its prompt {known!r}")
            return known
        prompt = client.wait_for_user(reqs, what)
        client.forget_unread()
        if not prompt.strip():
            raise CaseFailure(reqs, f"{what}: the client waits for its user without a prompt",
                              ["a prompt on its last line"], "an empty line")
        if known is not None and prompt != known:
            raise CaseFailure(reqs, f"{what}: the prompt differs from the one it showed before", [repr(known)],
                              repr(prompt))
        if known is None and prompt in client.transcript:
            self.learned.turn_prompt = prompt
            self.ctx.note(f"its prompt in its turn: {prompt!r}")
        return prompt

    def no_connection(self, reqs: str, what: str) -> None:
        """The client has not connected (it is idle now, so a connection would be queued already)."""
        if select.select([self.server.sock], [], [], 0)[0]:
            raise CaseFailure(reqs, what, ["no connection"], "a connection")

    def connected(self, handle: str = "Chris") -> tuple[Program, WirePeer]:
        """A client that has typed its handle and sent its HELLO."""
        client = self.start()
        self.ask_handle(client)
        client.type(handle)
        peer = self.server.accept()
        peer.expect("C-4 F-1", f"the client's HELLO {handle!r}", Hello(handle))
        return client, peer

    def in_conversation(self) -> tuple[Program, WirePeer]:
        """Past the handshake: the client's turn, its prompt showing."""
        client, peer = self.connected()
        peer.send(Hello("HostA"))
        self.in_turn(client, "C-5", "the client's turn after the server's HELLO")
        return client, peer

    def waiting(self) -> tuple[Program, WirePeer]:
        """The client has sent 'test' and it is the server's turn."""
        client, peer = self.in_conversation()
        client.type("test")
        peer.expect("C-5", "the typed line as a MESSAGE", Message("test"))
        return client, peer


@pytest.fixture
def chat(start_client: Callable[..., Program], scripted_server: ScriptedServer, learned: Learned, ctx: Context) -> Chat:
    return Chat(start_client, scripted_server, learned, ctx)


# --- judging ----------------------------------------------------------------------------------


def said(client: Program, mark: int, typed: bool) -> list[str]:
    """The non-blank lines the client completed after `mark`, without the line in progress there
    (a prompt) nor, when something was `typed` after the mark, the line that echoes it."""
    lines = client.lines_since(mark)
    fresh = mark == 0 or client.output_since(mark - 1).startswith("\n")
    skip = 0 if fresh and not typed else 1
    return [line for line in lines[skip:] if line.strip()]


def reported(client: Program, mark: int, reqs: str, what: str, typed: bool = False) -> list[str]:
    """The client said something on its screen after `mark` (its words are its own)."""
    lines = said(client, mark, typed)
    if not lines:
        raise CaseFailure(reqs, f"the client says nothing about {what}", ["a line on its screen"], "none")
    return lines


def ended(client: Program, reqs: str, after: str, nonzero: bool = False, signal_ok: int | None = None) -> int:
    """Until the client exits after `after`: any status, or (nonzero) any but 0, as after an error;
    killed by a signal is a failure (but `signal_ok`)."""
    status = client.wait_exit(reqs, after)
    if status < 0 and -status != signal_ok:
        shown = f"killed by {signal.Signals(-status).name}"
        raise CaseFailure(reqs, f"the client's end after {after}", ["an exit"], shown)
    if nonzero and status == 0:
        raise CaseFailure(f"{reqs} X-1", f"the client's exit status after {after}",
                          ["a non-zero status: it ends with an error"], "0")
    return status


def expect_status(client: Program, status: int, reqs: str, after: str) -> None:
    """Text cases: the exit status X-1 gives."""
    got = client.wait_exit(reqs, after)
    if got != status:
        shown = f"killed by {signal.Signals(-got).name}" if got < 0 else str(got)
        raise CaseFailure(f"{reqs} X-1", f"the client's exit status after {after}", [str(status)], shown)


def shows_after_handle(client: Program, text: str, reqs: str, what: str) -> None:
    """A line that shows the server's handle 'HostA' and then `text` (C-6), however it is worded."""
    client.expect_re("HostA[^\r\n]*" + re.escape(text) + "[^\r\n]*\r\n", reqs, what)


def no_raw_control(client: Program, reqs: str) -> None:
    if raw := client.raw_control_in_output():
        raise CaseFailure(reqs, "a raw control character reached the client's screen", ["none"], raw)


# --- the command line (C-1, C-3) ---------------------------------------------------------------

USAGE = "usage: chatclient HOST PORT"
BAD_PORTS = [
    pytest.param("99999", "it is not between 1 and 65535", id="99999"),
    pytest.param("abc", "it is not a decimal number", id="abc"),
    pytest.param("", "it is empty", id="empty"),
]
# A name the resolver refuses by itself ('!' is not allowed in a host name), so that no DNS query
# leaves the machine (glibc answers EAI_NONAME without asking any server).
UNRESOLVABLE = "nosuch!host"


@dataclass
class Ran:
    status: int
    out: str
    err: str

    def shown(self) -> str:
        return f"status {self.status}, stdout {self.out!r}, stderr {self.err!r}"


def run_with(opts: Options, reqs: str, args: list[str]) -> Ran:
    """The client's command with `args` in place of its {host} {port} arguments, its input at end
    of file, its output collected. A client that asks for a handle before it finds the fault gets
    end of input for an answer and, as C-2 says, exits 0: a non-zero status tells that the fault
    was found first."""
    argv = list(opts.command)
    if "{host}" not in argv or "{port}" not in argv or argv.index("{port}") != argv.index("{host}") + 1:
        pytest.skip("the client's command does not give {host} {port} as two arguments of their own")
    at = argv.index("{host}")
    argv = substitute(argv[:at] + args + argv[at + 2:], handshake_timeout=opts.handshake_timeout)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=opts.step, **Policy.start_options(None))
    except subprocess.TimeoutExpired:
        raise CaseFailure(reqs, f"the client started as {' '.join(args) or '(no arguments)'!r}",
                          ["an end with its input at end of file"], f"still running after {opts.step:g} s") from None
    return Ran(done.returncode, done.stdout, done.stderr)


@case("C-USAGE-1", reqs="C-1 X-1", title="--help prints the usage on stdout, first 'usage: chatclient HOST PORT', "
      "and exits 0", kind=TEXT)
def case_help(opts: Options) -> None:
    ran = run_with(opts, "C-1", ["--help"])
    if ran.status != 0 or ran.out.splitlines()[:1] != [USAGE]:
        raise CaseFailure("C-1 X-1", "the client started as 'chatclient --help'",
                          [f"status 0 and stdout starting with the line {USAGE!r}"], ran.shown())


@case("C-USAGE-2", reqs="C-1", title="a bad PORT is refused at once, with a line and a non-zero status, "
      "no handle asked")
def case_bad_port(opts: Options) -> None:
    ran = run_with(opts, "C-1", [opts.host, "99999"])
    if ran.status <= 0 or not (ran.err + ran.out).strip():
        raise CaseFailure("C-1 X-1", "the client started with port 99999 (above 65535)",
                          ["a line saying what is wrong, and a non-zero status"], ran.shown())


@case("C-TEXT-11", reqs="C-1 X-1", title="a bad PORT gets one line 'chatclient: invalid port 'PORT': REASON' on "
      "stderr and status 2", kind=TEXT)
@pytest.mark.parametrize(("port", "reason"), BAD_PORTS)
def case_bad_port_text(opts: Options, port: str, reason: str) -> None:
    ran = run_with(opts, "C-1", [opts.host, port])
    want = f"chatclient: invalid port '{port}': {reason}\n"
    if (ran.status, ran.err) != (2, want):
        raise CaseFailure("C-1 X-1", f"the client started with port {port!r}", [f"status 2 and stderr {want!r}"],
                          ran.shown())


@case("C-RESOLVE-1", reqs="C-3", title="a host that cannot be resolved is reported before a handle is asked, "
      "and the client ends non-zero")
def case_unresolvable(opts: Options) -> None:
    ran = run_with(opts, "C-3", [UNRESOLVABLE, "1"])
    if ran.status == 0 or not (ran.err + ran.out).strip():
        raise CaseFailure("C-3", f"the client started with the host {UNRESOLVABLE!r}, its input at end of file",
                          ["a line saying so, and a non-zero status, before any handle is read"], ran.shown())


@case("C-TEXT-12", reqs="C-3 X-1", title="a host that cannot be resolved gets one line 'chatclient: cannot "
      "resolve HOST: REASON' on stderr and status 3, before a handle is asked", kind=TEXT)
def case_unresolvable_text(opts: Options) -> None:
    ran = run_with(opts, "C-3", [UNRESOLVABLE, "1"])
    if ran.status != 3 or not re.fullmatch(rf"chatclient: cannot resolve {re.escape(UNRESOLVABLE)}: [^\n]+\n",
                                           ran.err) or HANDLE_PROMPT in ran.out:
        raise CaseFailure("C-3 X-1", f"the client started with the host {UNRESOLVABLE!r}",
                          [f"status 3, stderr 'chatclient: cannot resolve {UNRESOLVABLE}: REASON', no handle prompt"],
                          ran.shown())


# --- handle and handshake ---------------------------------------------------------------------


@case("C-PROMPT-1", reqs="C-2", title="the handle prompt is 'Enter client handle (length 10 or less): '", kind=TEXT)
def case_handle_prompt(chat: Chat) -> None:
    chat.start().expect_text(HANDLE_PROMPT, "C-2", "the handle prompt")


@case("C-HANDLE-1", reqs="C-2 T-1", title="an invalid handle is refused with a line and asked again, unconnected")
@pytest.mark.parametrize(("handle", "phrase"), BAD_HANDLES)
def case_invalid_handle(chat: Chat, handle: str, phrase: str) -> None:
    client = chat.start()
    chat.ask_handle(client)
    mark = client.here()
    client.type(handle)
    try:
        client.wait_for_user("C-2", "the client asks for a handle again")
    except CaseFailure:
        chat.no_connection("C-2 T-1", "the client connected with an invalid handle")
        raise
    chat.no_connection("C-2 T-1", "the client connected with an invalid handle")
    reported(client, mark, "C-2", f"the handle it refused (it {phrase})", typed=True)
    client.forget_unread()
    client.type("abcdefghij")  # ten: the longest valid handle
    chat.server.accept().expect("C-2 T-1", "the HELLO of a 10-character handle", Hello("abcdefghij"))


@case("C-TEXT-2", reqs="C-2 T-5", title="an invalid handle gets the line 'Invalid handle: it PHRASE.'", kind=TEXT)
@pytest.mark.parametrize(("handle", "phrase"), BAD_HANDLES)
def case_invalid_handle_text(chat: Chat, handle: str, phrase: str) -> None:
    client = chat.start()
    chat.ask_handle(client)
    client.type(handle)
    client.expect_line(f"Invalid handle: it {phrase}.", "C-2 T-5", "the reason the handle was refused")


@case("C-HELLO-1", reqs="C-4 W-1 W-3", title="the HELLO for 'Chris' is the golden 48 00 05 43 68 72 69 73")
def case_hello_golden(chat: Chat) -> None:
    client = chat.start()
    chat.ask_handle(client)
    client.type("Chris")
    peer = chat.server.accept()
    peer.expect_bytes("C-4 W-1 W-3", "HELLO 'Chris', byte for byte", vectors.by_name("hello-chris").data)


@case("C-HELLO-2", reqs="C-5 W-5", title="after the server's HELLO it is the client's turn: it waits for its user",
      needs=("C-HELLO-1",))
@deliveries
def case_server_hello(chat: Chat, delivery: str) -> None:
    client, peer = chat.connected()
    if delivery == "coalesced":
        peer.send(Hello("HostA"), Quit(), delivery="coalesced")
        peer.expect_closed("C-11 W-5 W-8", "after HELLO and QUIT in one segment: nothing (no ERROR), then the close")
        ended(client, "C-11 W-5", "the server's HELLO and QUIT in one segment")
        return
    peer.send(Hello("HostA"), delivery=delivery)
    chat.in_turn(client, "C-5 W-5", "the client's turn after the server's HELLO")


@case("C-PROMPT-2", reqs="C-5", title="the prompt in the client's turn is 'Chris> '", kind=TEXT, needs=("C-HELLO-1",))
def case_turn_prompt(chat: Chat) -> None:
    client, peer = chat.connected()
    peer.send(Hello("HostA"))
    client.expect_text(TURN_PROMPT, "C-5", "the prompt 'Chris> '")
    if client.last_line != TURN_PROMPT:
        raise CaseFailure("C-5", "the prompt, the last line of the screen", [repr(TURN_PROMPT)],
                          repr(client.last_line))


# --- messages -------------------------------------------------------------------------------


@case("C-MSG-1", reqs="C-5 W-3", title="a typed line goes out as the golden MESSAGE 'test'", needs=("C-HELLO-1",))
def case_message_golden(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    client.type("test")
    peer.expect_bytes("C-5 W-3", "MESSAGE 'test', byte for byte", vectors.by_name("message-test").data)


@case("C-MSG-2", reqs="C-6 W-5", title="a MESSAGE is shown on a line after 'HostA', then the prompt again",
      needs=("C-MSG-1",))
@deliveries
def case_message_shown(chat: Chat, delivery: str) -> None:
    client, peer = chat.waiting()
    if delivery == "coalesced":
        peer.send(Message("hello"), Quit(), delivery="coalesced")
        shows_after_handle(client, "hello", "C-6 W-5", "the message, before the QUIT in its segment")
        peer.expect_closed("C-11 W-5 W-8", "after MESSAGE and QUIT in one segment: nothing (no ERROR), then the close")
        ended(client, "C-11 W-5", "the server's QUIT")
        return
    peer.send(Message("hello"), delivery=delivery)
    shows_after_handle(client, "hello", "C-6 W-5", "the message 'hello' after the handle 'HostA'")
    chat.in_turn(client, "C-6", "the client's turn again, after the message")


@case("C-TEXT-5", reqs="C-6", title="a MESSAGE is shown as the line 'HostA> hello'", kind=TEXT, needs=("C-MSG-1",))
def case_message_shown_text(chat: Chat) -> None:
    client, peer = chat.waiting()
    peer.send(Message("hello"))
    client.expect_line(SHOWN, "C-6", "the message shown as 'HostA> hello'")


@case("C-MSG-3", reqs="T-3 C-5 C-6", title="500 code points of 2-4 byte UTF-8 arrive intact each way",
      needs=("C-MSG-1",))
def case_long_messages(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    client.type(MIXED_500)
    peer.expect("T-3 C-5", "the 500-code-point line as one MESSAGE", Message(MIXED_500))
    peer.send(Message(MIXED_500[::-1]))
    shows_after_handle(client, MIXED_500[::-1], "T-3 C-6", "the server's 500-code-point message, whole")


@case("C-MSG-4", reqs="C-7 T-3", title="empty, 501-character and control-character lines are refused with a line",
      needs=("C-MSG-1",))
def case_bad_lines(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    for param in BAD_LINES:
        line, phrase = param.values
        mark = client.here()
        client.type(line)
        chat.in_turn(client, "C-7", f"the prompt again after a line that {phrase}")
        reported(client, mark, "C-7", f"a line it did not send (it {phrase})", typed=True)
    peer.expect_quiet("C-7", "nothing on the wire for refused lines")
    client.type("x" * 500)
    peer.expect("C-7 T-3", "a 500-character line is sent whole", Message("x" * 500))


@case("C-TEXT-3", reqs="C-7 T-5", title="a refused line gets the line 'Message not sent: it PHRASE.'", kind=TEXT,
      needs=("C-HELLO-1",))
@pytest.mark.parametrize(("line", "phrase"), BAD_LINES)
def case_bad_line_text(chat: Chat, line: str, phrase: str) -> None:
    client, _ = chat.in_conversation()
    client.type(line)
    client.expect_line(f"Message not sent: it {phrase}.", "C-7 T-5", f"the reason for a line that {phrase}")


@case("C-MSG-5", reqs="C-7 F-2", title="a line typed out of turn is not sent, and the client says so",
      needs=("C-MSG-1",))
def case_out_of_turn(chat: Chat) -> None:
    client, peer = chat.waiting()
    mark = client.here()
    client.type("again")
    peer.expect_quiet("F-2", "nothing on the wire for a line out of turn")
    client.settle_idle()
    reported(client, mark, "C-7", "the line typed out of turn", typed=True)


@case("C-TEXT-4", reqs="C-7", title="a line typed out of turn gets 'Not your turn; the line was not sent.'",
      kind=TEXT, needs=("C-MSG-1",))
def case_out_of_turn_text(chat: Chat) -> None:
    client, _ = chat.waiting()
    client.type("again")
    client.expect_line(NOT_YOUR_TURN, "C-7", "the out-of-turn notice")


# --- the end of a conversation ----------------------------------------------------------------


@case("C-QUIT-1", reqs="C-8 W-3 W-7", title="\\quit sends the golden QUIT, closes and ends", needs=("C-HELLO-1",))
def case_quit(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    client.type("\\quit")
    peer.expect_bytes("C-8 W-3", "QUIT, byte for byte", vectors.by_name("quit").data)
    peer.expect_closed("C-8 W-7", "the client closes after its QUIT")
    ended(client, "C-8", "\\quit")


@case("C-QUIT-2", reqs="C-8", title="Ctrl-D at the prompt is \\quit", needs=("C-HELLO-1",))
def case_ctrl_d(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    client.end_input()
    peer.expect("C-8", "QUIT after Ctrl-D", Quit())
    ended(client, "C-8", "Ctrl-D")


@case("C-QUIT-3", reqs="C-8 F-3", title="\\quit works out of turn too", needs=("C-MSG-1",))
def case_quit_out_of_turn(chat: Chat) -> None:
    client, peer = chat.waiting()
    client.type("\\quit")
    peer.expect("C-8 F-3", "QUIT while it is the server's turn", Quit())
    ended(client, "C-8", "\\quit out of turn")


@case("C-QUIT-4", reqs="C-11 W-8", title="the server's QUIT ends the client: a line, no answer, its end",
      needs=("C-MSG-1",))
def case_server_quit(chat: Chat) -> None:
    client, peer = chat.waiting()
    mark = client.here()
    peer.send(Quit())
    peer.expect_closed("C-11 W-8", "after the server's QUIT: nothing (no ERROR), then the close")
    ended(client, "C-11", "the server's QUIT")
    reported(client, mark, "C-11", "the server's QUIT")


@case("C-TEXT-1", reqs="C-11", title="the server's QUIT gets the line 'The server has closed the connection...'",
      kind=TEXT, needs=("C-HELLO-1",))
def case_server_quit_text(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    peer.send(Quit())
    client.expect_line(SERVER_CLOSED, "C-11", "the closing line")


@case("C-QUIT-5", reqs="C-10 C-11 F-3", title="a QUIT that comes while the user types is told on a fresh line",
      needs=("C-HELLO-1",))
def case_quit_while_typing(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    mark = client.here()
    client.send("half a line")
    client.expect_text("half a line", "C-10", "the echo of the typing")
    peer.send(Quit())
    ended(client, "C-11", "the server's QUIT")
    lines = client.lines_since(mark)
    at = next((i for i, line in enumerate(lines) if "half a line" in line), None)
    if at is None or not lines[at].rstrip().endswith("half a line") or not any(s.strip() for s in lines[at + 1:]):
        raise CaseFailure("C-10 C-11", "the report of the server's QUIT, on a line of its own after the typing",
                          ["'... half a line', then a line of the client's own"], repr(lines))


def stopped(pid: int) -> bool:
    """Whether process `pid` is stopped (SIGSTOP), from /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def quit_into_reset(client: Program, peer: WirePeer, step: float) -> None:
    """The server resets the connection and the user types \\quit while the client is stopped
    (SIGSTOP to its process group), so that both wait for it together when it goes on: whichever
    it takes first, the QUIT cannot be sent (C-8). Each step is waited for, never slept."""
    group = client.pid  # the pty made it a session and group leader
    os.killpg(group, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + step
        while not stopped(client.pid) and time.monotonic() < deadline:
            time.sleep(0.002)  # polling /proc: a stop has no event to wait on
        peer.reset()
        client.type("\\quit")
        while not terminal_unread(client.pid) and time.monotonic() < deadline:
            time.sleep(0.002)  # the line reaches its terminal's input queue through a kernel worker
    finally:
        os.killpg(group, signal.SIGCONT)


@case("C-QUIT-6", reqs="C-8 C-14 C-15", title="\\quit typed as the connection is reset is a lost connection: "
      "reported, and the client ends non-zero", needs=("C-HELLO-1",))
def case_quit_into_reset(chat: Chat, opts: Options) -> None:
    client, peer = chat.in_conversation()
    mark = client.here()
    quit_into_reset(client, peer, opts.step)
    ended(client, "C-8 C-14", "\\quit typed as the server reset the connection", nonzero=True)
    reported(client, mark, "C-14", "the connection lost before its QUIT could go", typed=True)


@case("C-LOST-1", reqs="C-14 E-5", title="a connection lost without QUIT is reported, and the client ends non-zero",
      needs=("C-MSG-1",))
@pytest.mark.parametrize("how", ["eof", "eof-mid-frame", "reset"])
def case_lost(chat: Chat, how: str) -> None:
    client, peer = chat.waiting()
    mark = client.here()
    if how == "eof-mid-frame":
        peer.send_raw(encode(Message("hello"))[:5])
    if how == "reset":
        peer.reset()
    else:
        peer.close()
    ended(client, "C-14", "the lost connection", nonzero=True)
    reported(client, mark, "C-14", "the lost connection")


@case("C-TEXT-6", reqs="C-14",
      title="a lost connection gets the line 'chatclient: the connection to the server was lost'",
      kind=TEXT, needs=("C-HELLO-1",))
def case_lost_text(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    peer.close()
    client.expect_line(LOST, "C-14", "the lost-connection line")


@case("C-SIGPIPE-1", reqs="C-15 C-14", title="writing to a reset connection does not kill the client (SIGPIPE)",
      needs=("C-HELLO-1",))
def case_sigpipe(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    peer.reset()
    client.type("into the void")
    status = client.wait_exit("C-15", "a line typed after the server reset the connection")
    if status == -signal.SIGPIPE:
        raise CaseFailure("C-15", "the client died of SIGPIPE", ["a report and a non-zero exit"], "killed by SIGPIPE")
    if status <= 0:
        shown = f"killed by {signal.Signals(-status).name}" if status < 0 else "0"
        raise CaseFailure("C-14 X-1", "the client's exit status after the connection was reset",
                          ["a non-zero status: it ends with an error"], shown)


@case("C-CTRLC-1", reqs="C-9", title="Ctrl-C sends QUIT and ends the client", needs=("C-HELLO-1",))
def case_ctrl_c(chat: Chat) -> None:
    client, peer = chat.in_conversation()
    client.interrupt()
    peer.expect("C-9", "QUIT after Ctrl-C", Quit())
    ended(client, "C-9", "Ctrl-C", signal_ok=signal.SIGINT)


@case("C-REFUSED-1", reqs="C-3", title="a refused connection is reported, and the client ends non-zero")
def case_refused(chat: Chat, opts: Options) -> None:
    client = chat.start(free_port(opts.host))
    chat.ask_handle(client)
    mark = client.here()
    client.type("Chris")
    ended(client, "C-3", "a refused connection", nonzero=True)
    reported(client, mark, "C-3", "the refused connection", typed=True)


@case("C-TEXT-7", reqs="C-3", title="a refused connection gets 'chatclient: cannot connect to HOST port PORT: REASON'",
      kind=TEXT)
def case_refused_text(chat: Chat, opts: Options) -> None:
    port = free_port(opts.host)
    client = chat.start(port)
    chat.ask_handle(client)
    client.type("Chris")
    client.expect_re(rf"chatclient: cannot connect to \S+ port {port}: [^\r\n]+\r\n", "C-3",
                     "the one-line connection failure")


@case("C-EXIT-2", reqs="C-3 X-1", title="a refused connection exits 3", kind=TEXT)
def case_refused_status(chat: Chat, opts: Options) -> None:
    client = chat.start(free_port(opts.host))
    chat.ask_handle(client)
    client.type("Chris")
    expect_status(client, 3, "C-3", "a refused connection")


# --- errors ---------------------------------------------------------------------------------


OVERRIDE = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: it would reverse the rest of its line (T-6)


def send_error(peer: WirePeer, code: int) -> str:
    """ERROR `code` with a reason (an escape and a direction override in it but for BUSY); the reason
    as it must be shown (S-13)."""
    reason = "busy" if code == 1 else f"why\x1b[2J{OVERRIDE}evil"
    raw = reason.encode()
    peer.send_raw(bytes([0x45, 0, 1 + len(raw), code]) + raw)
    return reason.replace("\x1b", "?").replace(OVERRIDE, "?")


@case("C-ERR-1", reqs="C-12 W-6 S-13",
      title="an ERROR from the server is reported with its reason, sanitised, and the client ends non-zero",
      needs=("C-HELLO-1",))
@pytest.mark.parametrize("code", ERROR_CODES)
def case_error_received(chat: Chat, code: int) -> None:
    client, peer = chat.connected()
    mark = client.here()
    reason = send_error(peer, code)
    ended(client, "C-12", "the server's ERROR", nonzero=True)
    lines = reported(client, mark, "C-12", "the server's ERROR")
    words = reason.split("?")[0]  # 'busy', or 'why' before the escape
    if not any(words in line for line in lines):
        raise CaseFailure("C-12 W-6", "the server's reason on the client's screen", [f"a line with {words!r}"],
                          repr(lines))
    no_raw_control(client, "C-12 S-13")
    if OVERRIDE in client.output_since():
        raise CaseFailure("C-12 S-13", "a direction override reached the client's screen", ["none"], "U+202E")


@case("C-TEXT-8", reqs="C-12 S-13", title="an ERROR from the server gets 'chatclient: server sent ERROR C NAME "
      "(DESCRIPTION): REASON'", kind=TEXT, needs=("C-HELLO-1",))
@pytest.mark.parametrize("code", ERROR_CODES)
def case_error_received_text(chat: Chat, code: int) -> None:
    client, peer = chat.connected()
    shown = send_error(peer, code)
    description = DESCRIPTIONS.get(code, "unknown error code")
    client.expect_line(f"chatclient: server sent ERROR {code} {error_name(code)} ({description}): {shown}",
                       "C-12 S-13", "the one-line report of the server's ERROR")


@case("C-ERR-2", reqs="E-2 E-3 C-13 W-3 W-4 T-1 T-4",
      title="each invalid non-MESSAGE frame of the vectors, in place of HELLO, gets its ERROR code",
      needs=("C-HELLO-1",))
@pytest.mark.parametrize(("vector", "delivery"), invalid_vector_cases(lambda v: v.data[0] != FrameType.MESSAGE))
def case_invalid_frame(chat: Chat, vector: vectors.Vector, delivery: str) -> None:
    client, peer = chat.connected()  # in place of the server's HELLO
    reject(client, peer, vector, delivery)


@case("C-ERR-4", reqs="E-2 E-3 C-13 W-3 W-4 T-3 T-4",
      title="each invalid MESSAGE of the vectors, in the server's turn, gets its ERROR code",
      needs=("C-MSG-1",))
@pytest.mark.parametrize(("vector", "delivery"), invalid_vector_cases(lambda v: v.data[0] == FrameType.MESSAGE))
def case_invalid_message(chat: Chat, vector: vectors.Vector, delivery: str) -> None:
    client, peer = chat.waiting()
    reject(client, peer, vector, delivery)


def reject(client: Program, peer: WirePeer, vector: vectors.Vector, delivery: str) -> None:
    """Send an invalid frame of the vectors: the client answers with its ERROR and ends non-zero."""
    send_invalid(peer, vector, delivery)
    peer.expect_error("E-2 E-3", f"the answer to frame {vector.name}", ErrorCode[vector.error])
    ended(client, "C-13", "sending ERROR", nonzero=True)
    no_raw_control(client, "E-2")


@case("C-TEXT-9", reqs="C-13", title="a frame it refuses gets 'chatclient: protocol error: sent ERROR C NAME (REASON)'",
      kind=TEXT, needs=("C-HELLO-1",))
def case_protocol_error_text(chat: Chat) -> None:
    client, peer = chat.connected()
    peer.send_raw(UNKNOWN_TYPE)
    error = peer.expect_error("E-2 E-3", "the answer to an unknown frame type", ErrorCode.MALFORMED)
    client.expect_line(f"chatclient: protocol error: sent ERROR {error.code} MALFORMED ({error.reason})",
                       "C-13", "the one-line report of the ERROR sent")


@case("C-ERR-3", reqs="E-1 E-3 F-2 C-13", title="frames out of order are UNEXPECTED", needs=("C-HELLO-1",))
@pytest.mark.parametrize("order", ["message-before-hello", "quit-before-hello", "second-hello", "message-out-of-turn"])
def case_out_of_order(chat: Chat, order: str) -> None:
    client, peer = chat.connected()
    frames = {
        "message-before-hello": [Message("hello")],
        "quit-before-hello": [Quit()],
        "second-hello": [Hello("HostA"), Hello("HostA")],
        "message-out-of-turn": [Hello("HostA"), Message("hello")],  # the client's turn, not the server's
    }[order]
    peer.send_raw(b"".join(map(encode, frames)))
    peer.expect_error("E-1 E-3 F-2", f"the answer to {order.replace('-', ' ')}", ErrorCode.UNEXPECTED)
    ended(client, "C-13", "sending ERROR", nonzero=True)


# --- exit statuses ----------------------------------------------------------------------------

EXITS = {  # how the conversation ends -> (the status X-1 gives, the requirements); the probe's last
    "quit": (0, "C-8"), "closed": (0, "C-11"), "ctrl-c": (130, "C-9"), "error": (4, "C-12"),
    "protocol": (5, "C-13"), "lost": (6, "C-14"), "timeout": (5, "C-4"), "quit-lost": (6, "C-8 C-14"),
}


@case("C-EXIT-1", reqs="X-1 C-4 C-8 C-9 C-11 C-12 C-13 C-14",
      title="the exit status: 0 after \\quit or the server's QUIT, 130 after Ctrl-C, 4 after an ERROR received, "
      "5 after one sent, 6 after a lost connection (a \\quit that found it lost too)", kind=TEXT, needs=("C-HELLO-1",))
@pytest.mark.parametrize("end", list(EXITS))
def case_exit_status(chat: Chat, hello_timeout_probe: HelloTimeoutProbe | None, ctx: Context, opts: Options,
                     end: str) -> None:
    status, reqs = EXITS[end]
    if end == "timeout":
        assert hello_timeout_probe is not None
        probe = hello_timeout_probe.result(ctx)
        if probe.status != status:
            got = "no end" if probe.status is None else str(probe.status)
            raise CaseFailure(f"{reqs} X-1", "the client's exit status after its ERROR TIMEOUT", [str(status)], got)
        return
    if end in ("error", "protocol"):
        client, peer = chat.connected()
        peer.send_raw(UNKNOWN_TYPE if end == "protocol" else encode(Error(ErrorCode.BUSY, "busy")))
    else:
        client, peer = chat.in_conversation()
        if end == "quit":
            client.type("\\quit")
        elif end == "closed":
            peer.send(Quit())
        elif end == "ctrl-c":
            client.interrupt()
        elif end == "quit-lost":
            quit_into_reset(client, peer, opts.step)
        else:
            peer.close()
    if end in ("quit", "ctrl-c", "protocol"):
        # Its QUIT or ERROR, unjudged (the behaviour cases judge it): read, it ends our side of the
        # stream, so that the client's close (W-7) need not wait for its drain to time out.
        peer.next_event(reqs, "the client's last frame")
    expect_status(client, status, reqs, end)


# --- the handshake timeout, run beside the other cases ------------------------------------------


PROBE_CASES = {"C-TIMEOUT-1", "C-TEXT-10", "C-EXIT-1[timeout]"}


class HelloTimeoutProbe:
    """C-4: a client whose server never says HELLO. It is started with the run and watched by a
    thread, so that a client that ignores CHAT_HELLO_TIMEOUT (a SHOULD) spends its 10 s while the
    other cases run; C-TIMEOUT-1 and C-EXIT-1[timeout] judge what it did."""

    def __init__(self, opts: Options, mode_check: ModeCheck) -> None:
        self.opts = opts
        self.mode_check = mode_check
        self.server = ScriptedServer(opts, mode_check)
        argv = substitute(opts.command, host=opts.host, port=self.server.port, handshake_timeout=opts.handshake_timeout)
        self.client = Program("client", argv, opts.step, env={"CHAT_HELLO_TIMEOUT": str(opts.handshake_timeout)})
        self.server.clients.append(self.client)
        self.peer: WirePeer | None = None
        self.cancelled = threading.Event()
        self.failure: BaseException | None = None
        self.event: Event | None = None  # the client's answer to the silence
        self.waited = 0.0  # seconds from its HELLO to that answer
        self.status: int | None = None  # its exit status after the answer
        self.thread = threading.Thread(target=self._run, name="hello-timeout-probe", daemon=True)
        self.thread.start()

    def _idle(self) -> bool:
        return self.cancelled.is_set() or self.server.idle()

    def _run(self) -> None:
        try:
            self.client.wait_for_user("C-2", "the client asks its user for a handle")
            self.client.type("Chris")
            self.peer = self.server.accept()
            self.peer.idle = self._idle  # and a stopped run ends the wait on the client's clock
            self.peer.expect("C-4 F-1", "the client's HELLO 'Chris'", Hello("Chris"))
            started = time.monotonic()
            self.event = self.peer.next_event("C-4", "ERROR TIMEOUT", timeout=10 * self.opts.timeout_scale
                                              + self.opts.step)
            self.waited = time.monotonic() - started
            if isinstance(self.event, Error) and not self.cancelled.is_set():
                self.status = self.client.wait_exit("C-4", "sending ERROR TIMEOUT")
        except BaseException as exc:  # judged by the cases, in the main thread
            self.failure = exc

    def result(self, ctx: Context) -> HelloTimeoutProbe:
        """Once the probe has finished (a client's own 10 s at most); its failure raised here."""
        ctx.watch(self.client)
        self.thread.join(10 * self.opts.timeout_scale + 3 * self.opts.step)
        if self.thread.is_alive():
            raise CaseFailure("C-4", "the client's answer to a server that never says HELLO", ["an answer"],
                              "the client is still busy")
        if self.failure is not None:
            raise self.failure
        return self

    def stop(self) -> None:
        self.cancelled.set()
        self.thread.join(2 * self.opts.step)
        if self.peer is not None:
            self.peer.finish()
        self.server.close()
        self.client.stop()


@pytest.fixture(scope="session", autouse=True)
def hello_timeout_probe(request: pytest.FixtureRequest, opts: Options,
                        mode_check: ModeCheck) -> Iterator[HelloTimeoutProbe | None]:
    """Started with the first case when a selected case uses it."""
    if not any(id_of(item) in PROBE_CASES for item in request.session.items):
        yield None
        return
    probe = HelloTimeoutProbe(opts, mode_check)
    yield probe
    probe.stop()


@case("C-TIMEOUT-1", reqs="C-4", title="no HELLO from the server within the timeout gets ERROR TIMEOUT, and the "
      "client ends non-zero", needs=("C-HELLO-1",))
def case_hello_timeout(hello_timeout_probe: HelloTimeoutProbe | None, ctx: Context, opts: Options) -> None:
    assert hello_timeout_probe is not None
    probe = hello_timeout_probe.result(ctx)
    if not isinstance(probe.event, Error) or probe.event.code != ErrorCode.TIMEOUT:
        raise CaseFailure("C-4", "the client's answer to a server that never says HELLO",
                          ["ERROR 5 TIMEOUT"], describe(probe.event))
    if probe.waited > opts.handshake_timeout * opts.timeout_scale + opts.step:
        ctx.warn("C-4", f"CHAT_HELLO_TIMEOUT={opts.handshake_timeout:g} was not honoured "
                        f"(ERROR TIMEOUT after {probe.waited:.1f} s)")
    if probe.status is None or probe.status <= 0:
        shown = "no end" if probe.status is None else (
            f"killed by {signal.Signals(-probe.status).name}" if probe.status < 0 else "0")
        raise CaseFailure("C-4 C-13 X-1", "the client's end after its ERROR TIMEOUT",
                          ["a non-zero status: it ends with an error"], shown)


@case("C-TEXT-10", reqs="C-4 E-4", title="the ERROR TIMEOUT reason is 'no HELLO within N s', N the seconds it waited",
      kind=TEXT, needs=("C-TIMEOUT-1",))
def case_hello_timeout_reason(hello_timeout_probe: HelloTimeoutProbe | None, ctx: Context, opts: Options) -> None:
    assert hello_timeout_probe is not None
    probe = hello_timeout_probe.result(ctx)
    if not isinstance(probe.event, Error):
        raise CaseFailure("C-4", "the client's answer to a server that never says HELLO", ["ERROR 5 TIMEOUT"],
                          describe(probe.event))
    # CHAT_HELLO_TIMEOUT is a SHOULD: a client that waited its own 10 s names 10.
    waited = min((opts.handshake_timeout, 10.0), key=lambda n: abs(n - probe.waited))
    want = f"no HELLO within {waited:g} s"
    if probe.event.reason != want:
        raise CaseFailure("C-4 E-4", f"the reason of its ERROR TIMEOUT, sent after {probe.waited:.1f} s",
                          [repr(want)], repr(probe.event.reason))


# --- input that is not a terminal -------------------------------------------------------------


@case("C-SCRIPT-1", reqs="C-6 C-10", title="with its input from a file, a message received is shown on a line of its "
      "own, not after the prompt", needs=("C-MSG-1",))
def case_script_input(opts: Options, scripted_server: ScriptedServer, ctx: Context) -> None:
    """`chatclient HOST PORT < script` at a terminal: nothing echoes the script's lines, so only the
    client can end its prompt's line (C-6)."""
    with tempfile.NamedTemporaryFile("w", prefix="chat-script-", suffix=".txt", delete=False) as script:
        script.write("Chris\ntest\n")
    argv = substitute(opts.command, host=opts.host, port=scripted_server.port, handshake_timeout=opts.handshake_timeout)
    client = Program("client", ["/bin/sh", "-c", 'exec "$@" < "$0"', script.name, *argv], opts.step,
                     env={"CHAT_HELLO_TIMEOUT": str(opts.handshake_timeout)})
    scripted_server.clients.append(client)
    ctx.watch(client)
    peer: WirePeer | None = None
    try:
        peer = scripted_server.accept("C-3 C-4", "the client connects with the handle of its script")
        peer.expect("C-4 F-1", "the client's HELLO 'Chris'", Hello("Chris"))
        peer.send(Hello("HostA"))
        peer.expect("C-5 C-7", "the script's line 'test' as a MESSAGE, in the client's turn", Message("test"))
        peer.send(Message("hello"))
        shows_after_handle(client, "hello", "C-6", "the message 'hello' after the handle 'HostA'")
        peer.expect("C-8", "QUIT at the end of the script", Quit())
        ended(client, "C-8", "the end of its script")
        # Whatever its form ('HostA> hello', '[HostA] hello'), nothing of its own prompt ('Chris> ')
        # comes before the peer's handle on that line.
        shown = [line for line in client.lines_since(0) if "hello" in line and "HostA" in line]
        if not shown or "Chris" in shown[0].split("HostA", 1)[0]:
            raise CaseFailure("C-6 C-10", "the message received, on a line of its own",
                              ["a line with 'HostA' and 'hello', and none of the prompt 'Chris> ' before them"],
                              repr(shown[0] if shown else client.tail()))
    finally:
        if peer is not None:
            peer.close()
        client.stop()
        with contextlib.suppress(OSError):
            os.unlink(script.name)
