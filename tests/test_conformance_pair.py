"""The conformance suite's pair mode, run as a user runs it and judged from its JSON report.

A correct pair (ours, and tests/pairs' plain-text pair with its own wire format, prompts and
server handle) passes every case, and so does the plain pair in each start-up shape students
use (a server that asks for its handle after it listens); a pair whose only fault is its form
(`Chris>`, `Chris: `) FAILs P-PREFIX-1 alone, and a client that speaks first by itself P-TURN-1
alone. Each broken pair of tests/pairs FAILs exactly the cases its defect touches, for the
reason it should, and passes the rest. The runs are mostly idle time (the suite waits for
programs to come to rest), so the selected ones run a few at a time.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.checks import CaseFailure, unknown_requirements
from conformance.cuts import Stream, Typed, handle_read, message_read
from conformance.relay import C2S
from conformance.screen import Display, Form

ROOT = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
PLAIN_SERVER = f"{PY} tests/pairs/plain_server.py {{port}}"
PLAIN_CLIENT = f"{PY} tests/pairs/plain_client.py {{host}} {{port}}"
CASES = {"P-INFER-1", "P-PREFIX-1", "P-HANDLE-1", "P-LONG-1", "P-TURN-1", "P-FRAME-1", "P-QUIT-1", "P-QUIT-2",
         "P-DROP-1[client-turn]", "P-DROP-1[server-turn]", "P-HANDLE-2", "P-LONG-2", "P-UTF8-1", "P-EMPTY-1",
         "P-BUSY-1", "P-STATUS-1", "P-STATUS-2"}
# A course whose [assignment] differs in every key (tests/profiles/short.toml), and the plain pair written to it.
SHORT = ("--profile", "tests/profiles/short.toml")
SHORT_SERVER = (PLAIN_SERVER + " --shape colon --message-limit 140 --quit-word /quit "
                "--connected-line 'Client {address} connected.' --dropped-line 'Client gone.'")
SHORT_CLIENT = PLAIN_CLIENT + " --shape colon --handle-limit 12 --message-limit 140 --quit-word /quit --split-long"
WORKERS = 4


@dataclass(frozen=True)
class Pair:
    server: str
    client: str
    fails: dict[str, tuple[str, ...]] = field(default_factory=dict)  # case ID -> texts its FAIL details hold
    options: tuple[str, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)  # case ID -> text its details hold, whatever the verdict


BROKEN = ("--timeout", "3")  # a broken pair's failures wait out a step; 3 s is plenty on loopback
PAIRS = {
    "reference": Pair("python3 chatserve.py {port}", "./chatclient {host} {port}"),
    "reference-ipv6": Pair("python3 chatserve.py {port}", "./chatclient {host} {port}", options=("--host", "::1")),
    "plain": Pair(PLAIN_SERVER, PLAIN_CLIENT, notes={"P-INFER-1": "it asked 'Server operator, your handle? ' "
                                                                   "before it listened",
                                                     "P-LONG-2": "at the client refused, at the server refused"}),
    # The profile's variants: another course's limits, quit word, prompt form and status lines.
    "short-profile": Pair(SHORT_SERVER, SHORT_CLIENT, options=SHORT, notes={
        "P-INFER-1": "prompts like 'HANDLE: '", "P-HANDLE-2": "after the handle 'MaximilianoBa'",
        "P-LONG-2": "180 characters: at the client split into 2 messages, at the server refused"}),
    # The plain client that splits long lines, under the default profile (which does not allow it).
    "client-splits-long-lines": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --split-long", {
        "P-LONG-2": ("it went in 2 messages of 500, 40 characters (the course's profile does not allow that",),
    }, BROKEN),
    # Start-up shapes and forms of real submissions that are not defects (but the last two break ).
    "server-asks-after-listening": Pair(PLAIN_SERVER + " --shape ask-after-listen", PLAIN_CLIENT,
                                        notes={"P-INFER-1": "your handle? ' after it listened"}),
    "server-asks-once-connected": Pair(PLAIN_SERVER + " --shape ask-after-connect", PLAIN_CLIENT,
                                       notes={"P-INFER-1": "your handle? ' after it listened"}),
    "server-port-on-input": Pair(PLAIN_SERVER + " --shape port-on-input", PLAIN_CLIENT,
                                 notes={"P-INFER-1": "it asked 'Port? ' for its port, which was typed"}),
    "client-speaks-first": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --shape auto-first", {
        "P-TURN-1": ("the client sent a first message by itself: the server showed 'Chris> Hi, I am Chris'",),
    }, notes={"P-INFER-1": "the client sent a first message by itself"}),
    "form-no-space": Pair(PLAIN_SERVER + " --shape no-space", PLAIN_CLIENT + " --shape no-space", {
        "P-PREFIX-1": ("expected: 'Chris> '", "got: 'Chris>' (this pair's prompts look like 'HANDLE>'"),
    }, notes={"P-INFER-1": "prompts like 'HANDLE>'"}),
    "form-colon": Pair(PLAIN_SERVER + " --shape colon", PLAIN_CLIENT + " --shape colon", {
        "P-PREFIX-1": ("got: 'Chris: ' (this pair's prompts look like 'HANDLE: '",),
    }),
    "form-bare": Pair(PLAIN_SERVER + " --shape bare", PLAIN_CLIENT + " --shape bare", {
        "P-PREFIX-1": ("got: '> ' (this pair's prompts look like '> ' (no handle)",),
    }),
    # Each recv() taken as one message: split by the bytewise relay, merged by the coalescing one.
    "client-recv-per-message": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --defect recv-per-message", {
        "P-LONG-1": ("The client's read of a message broke: it showed the 500-character message as ",
                     "after the relay delivered it one byte at a time: 's' | '0' | '0' | '0' | ' ' | 'l'",
                     "the client shows the server's message"),
        "P-FRAME-1": ("The client's read of the server's handle took the next message too: the relay delivered "
                      "the end of the server's handle and the start of 'second' in one segment: "
                      "'Server\\nsecond\\n'", "the client shows the server's first"),
        "P-UTF8-1": ("The client's read of a message broke", "the client shows the server's message"),
    }, BROKEN),
    "server-recv-per-message": Pair(PLAIN_SERVER + " --defect recv-per-message", PLAIN_CLIENT, {
        "P-LONG-1": ("The server's read of the client's handle broke", "the server shows the client's message"),
        "P-FRAME-1": ("The server's read of the client's handle took the next message too",
                      "the server shows the client's first"),
        "P-UTF8-1": ("The server's read of a message broke", "the server shows the client's message"),
    }, BROKEN),
    # Only the handle is read with one recv(): what a relay that cuts the handshake breaks.
    "server-handle-one-recv": Pair(PLAIN_SERVER + " --defect handle-one-recv", PLAIN_CLIENT, {
        # (the server reads 'C' alone, or 'Ch' on a loaded machine: the cut is the relay's, the same)
        "P-LONG-1": ("The server's read of the client's handle broke: it showed 'C",
                     "after the relay delivered the handshake one byte at a time: "
                     "'C' | 'h' | 'r' | 'i' | 's' | '\\n' (bytes 0 to 5, 6 segment(s))",),
        "P-FRAME-1": ("in one segment: 'Chris\\nfirst\\n'", "the server then showed 'Chris', 'first joined.'"),
    }, BROKEN),
    "client-handle-8": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --defect handle-8", {"P-HANDLE-1": ("'Christop> '",)},
                            BROKEN),
    # fgets(buf, 10, stdin): 9 characters kept, the 10th read as the first message.
    "client-handle-fgets": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --defect handle-fgets", {
        "P-HANDLE-1": ("got: 'Christoph> ' (cut to 'Christoph'); and the client sent a first message by itself: "
                       "the server showed 'Christoph> e'",),
        "P-HANDLE-2": ("the client used it cut to 'Maximilia' without a word",),
    }, BROKEN),
    "client-handle-cut": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --defect handle-cut", {
        "P-HANDLE-2": ("the client used it cut to 'Maximilian' without a word: 'Maximilian joined.', "
                       "'Maximilian> Chris' (on the server's screen)",),
    }, BROKEN),
    "client-cut-long": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --defect cut-long", {
        "P-LONG-2": ("a line of 540 characters typed at the client (500 + 40) is refused",
                     "it was cut: the server showed 500 of its 540 characters"),
    }, BROKEN),
    "server-decode-per-recv": Pair(PLAIN_SERVER + " --defect decode-per-recv", PLAIN_CLIENT, {
        "P-UTF8-1": ("the server shows the client's message", "\ufffd"),
    }, BROKEN),
    "client-empty-sends": Pair(PLAIN_SERVER, PLAIN_CLIENT + " --defect empty-sends", {
        # the server takes it for the end of the conversation and closes; the client finds it gone
        "P-EMPTY-1": ("after an empty line typed at the client, the client exited with status 1",
                      "Lost the connection to the server."),
    }, BROKEN),
    "server-switch-client": Pair(PLAIN_SERVER + " --defect switch-client", PLAIN_CLIENT, {
        "P-BUSY-1": ("once a second client had started",),
    }, BROKEN),
    "server-address-form": Pair(PLAIN_SERVER + " --defect address-form", PLAIN_CLIENT, {
        "P-STATUS-1": ("expected: \"Established connection with ('127.0.0.1', ",
                       "'Established connection with 127.0.0.1:"),
    }, BROKEN),
    "server-dropped-on-loss-only": Pair(PLAIN_SERVER + " --defect dropped-on-loss-only", PLAIN_CLIENT, {
        "P-STATUS-2": ("expected: 'The client has dropped the connection...'", "'The client left.'"),
    }, BROKEN),
    "server-missed-drop": Pair(PLAIN_SERVER + " --defect missed-drop", PLAIN_CLIENT, {
        "P-DROP-1[client-turn]": ("after its client was killed",),
        "P-DROP-1[server-turn]": ("wrote to a client that was killed",),
    }, BROKEN),
    "server-quit-as-message": Pair(PLAIN_SERVER + " --defect quit-as-message", PLAIN_CLIENT, {
        "P-QUIT-2": ("showed the \\quit as a message",),
    }, BROKEN),
}


@dataclass
class Run:
    status: int
    output: str
    report: dict[str, Any]

    def verdicts(self) -> dict[str, str]:
        return {case["id"]: case["verdict"] for case in self.report.get("cases", [])}

    def details(self, case_id: str) -> str:
        return "\n".join(d for case in self.report["cases"] if case["id"] == case_id for d in case["details"])


def run_pair(pair: Pair, json_path: Path) -> Run:
    argv = [sys.executable, "-m", "conformance", "pair", *pair.options, "--server", pair.server,
            "--client", pair.client, "--json", str(json_path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = json.loads(json_path.read_text()) if json_path.exists() else {}
    return Run(done.returncode, done.stdout + done.stderr, report)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Run]]]:
    """The pair runs the selected tests need, all started at once, WORKERS at a time."""
    if not (ROOT / "chatclient").exists():
        pytest.fail(f"{ROOT / 'chatclient'} is missing: run ./compileall")
    wanted = sorted({item.callspec.params["name"] for item in request.session.items  # type: ignore[attr-defined]
                     if item.module is request.module  # type: ignore[attr-defined]
                     and "name" in getattr(getattr(item, "callspec", None), "params", {})})
    out = tmp_path_factory.mktemp("pair-reports")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        yield {name: pool.submit(run_pair, PAIRS[name], out / f"{name}.json") for name in wanted}


@pytest.mark.parametrize("name", list(PAIRS))
def test_pair(name: str, runs: dict[str, Future[Run]]) -> None:
    pair, run = PAIRS[name], runs[name].result()
    verdicts = run.verdicts()
    assert set(verdicts) == CASES, run.output
    failed = {case_id for case_id, verdict in verdicts.items() if verdict == "FAIL"}
    assert failed == set(pair.fails), run.output
    for case_id, texts in pair.fails.items():
        for text in texts:
            assert text in run.details(case_id), f"{case_id} failed for another reason:\n{run.output}"
    for case_id, text in pair.notes.items():
        assert text in run.details(case_id), f"{case_id} did not note {text!r}:\n{run.output}"
    for case_id, verdict in verdicts.items():
        if case_id in pair.fails:
            continue
        blocked_by_a_failure = verdict == "BLOCKED" and any(f in run.details(case_id) for f in pair.fails)
        assert verdict == "PASS" or blocked_by_a_failure, f"{case_id}: {verdict}\n{run.output}"
    assert run.status == (1 if pair.fails else 0), run.output


def test_list_pair() -> None:
    """Every pair case is listed, naming requirements that PROTOCOL.md defines."""
    done = subprocess.run([sys.executable, "-m", "conformance", "list", "pair"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.startswith("P-")}
    assert set(listed) == CASES
    for case_id, words in listed.items():
        reqs = [w for w in words if len(w) <= 4 and w[:1].isupper() and w[1:2] == "-"]
        assert reqs and not unknown_requirements(reqs), f"{case_id}: {words}"


# --- what pair mode learns from screens, and how it explains a cut (no programs run) -------------


@pytest.mark.parametrize(("prompt", "server_prompt", "server_handle"), [
    ("Chris> ", "Server> ", "Server"), ("Chris>", "hostA>", "hostA"), ("Chris: ", "chatServe: ", "chatServe"),
    ("[Chris] ", "[Server] ", "Server"), ("Chris >  ", "chatServe >  ", "chatServe"), ("> ", "> ", None),
])
def test_form(prompt: str, server_prompt: str, server_handle: str | None) -> None:
    form = Form.learn(prompt, "Chris")
    assert form.show("Chris") == prompt if form.handled else form.before == prompt
    assert form.handle_in(server_prompt) == server_handle


def test_display_learns_a_message_prefix_once() -> None:
    """Messages may show otherwise than prompts ('Chris: hi' beside the prompt 'Chris> '): learnt
    from the first message, with the handle in it; a cut handle is not learnt."""
    display = Display(Form.learn("Chris> ", "Chris"))
    with pytest.raises(CaseFailure):
        display.expect(["C: hi"], "client", "Chris", "hi", "A-2", "the server shows it")
    assert display.expect(["Chris joined.", "Chris: hi"], "client", "Chris", "hi", "A-2", "x") == "Chris: hi"
    with pytest.raises(CaseFailure) as failure:
        display.expect(["Chris: again", "Chris: again"], "client", "Chris", "again", "A-2", "the server shows it")
    assert failure.value.got == "shown 2 times"


def stream(data: bytes, ends: list[int], typed: list[Typed], after: list[str], screen: tuple[str, ...] = ()) -> Stream:
    return Stream("client", "server", "Chris", "one byte at a time", data, ends, typed, list(screen), after)


def test_cuts() -> None:
    """Each broken read named, with the segments around it."""
    bytewise = list(range(1, 31))
    wire = b"Chris\nhello there\n<END>"  # 6 bytes of handshake, then a message typed at offset 6
    typed = [Typed(C2S, "hello there", 6, 0)]
    assert handle_read(stream(wire, bytewise, typed, [], ("C joined.",))) == (
        "the server's read of the client's handle broke: it showed 'C joined.' (the handle 'Chris' cut to 'C') "
        "after the relay delivered the handshake one byte at a time: 'C' | 'h' | 'r' | 'i' | 's' | '\\n' "
        "(bytes 0 to 5, 6 segment(s)); it takes one read for the whole handle")
    assert "as 2 line(s) ('Chris> hel', 'Chris> lo there')" in (message_read(stream(
        wire, bytewise, typed, ["Chris> hel", "Chris> lo there"])) or "")
    assert "never found the end of the message: it showed nothing after the relay delivered it one byte at a " \
           "time, ending 'e' | 'r' | 'e' | '\\n' | '<' | 'E' | 'N'" in (message_read(stream(wire, bytewise, typed, []))
                                                                    or "")
    joined = message_read(stream(wire, [18, 23], typed, ["Chris\nhello there joined."]))
    assert joined is not None and "took the next message too" in joined and "'Chris\\nhello there\\n'" in joined
    assert message_read(stream(wire, bytewise, typed, ["Chris> hello there"])) is None
