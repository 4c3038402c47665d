"""The conformance suite, checked: the reference passes every case in every mode on both
loopback families; the front end's selection, exit statuses, JSON and JUnit XML; its matcher."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.checks import CaseFailure, hexdump, quote, requirements, unknown_requirements
from conformance.options import RunOptions
from conformance.programs import free_port, listening
from procs import CLIENT_BUILDS, ROOT, SANITIZER_ENV, conformance, listed

SERVER = ["--", "python3", "chatserve.py", "{port}", "--handshake-timeout", "{handshake_timeout}"]


def verdicts(path: Path) -> dict[str, str]:
    return {case["id"]: case["verdict"] for case in json.loads(path.read_text())["cases"]}


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_reference_server_passes_every_case(tmp_path: Path, host: str) -> None:
    result = conformance("server", "--host", host, "--json", str(tmp_path / "r.json"), *SERVER)
    assert result.returncode == 0, result.stdout
    got = verdicts(tmp_path / "r.json")
    assert sorted(got) == sorted(listed("server"))
    assert set(got.values()) == {"PASS"}, [line for line in result.stdout.splitlines() if not line.startswith("PASS")]
    assert result.stdout.splitlines()[-1] == f"{len(got)} passed, 0 failed, 0 warned, 0 skipped, 0 blocked"


@pytest.mark.parametrize(("build", "host"), [("plain", "127.0.0.1"), ("plain", "::1"), ("asan", "127.0.0.1")])
def test_the_reference_client_passes_every_case(tmp_path: Path, build: str, host: str) -> None:
    command = ["--", str(CLIENT_BUILDS[build]), "{host}", "{port}"]
    result = conformance("client", "--host", host, "--json", str(tmp_path / "r.json"), *command,
                         env=SANITIZER_ENV if build == "asan" else None)
    assert result.returncode == 0, result.stdout
    got = verdicts(tmp_path / "r.json")
    assert sorted(got) == sorted(listed("client"))
    assert set(got.values()) == {"PASS"}, [line for line in result.stdout.splitlines() if not line.startswith("PASS")]


def test_attach_tests_the_wire_and_skips_the_terminal(tmp_path: Path) -> None:
    port = free_port()
    # Its screen goes nowhere (an unread pty would fill up); its input stays open until the end.
    srv = subprocess.Popen(["python3", "chatserve.py", str(port), "--handshake-timeout", "1"], cwd=ROOT,
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not listening(port) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling /proc for another process's listen()
        result = conformance("server", "--attach", f"127.0.0.1:{port}", "--json", str(tmp_path / "r.json"))
    finally:
        srv.kill()
        srv.wait()
    assert result.returncode == 0, result.stdout
    got = verdicts(tmp_path / "r.json")
    assert got["S-HELLO-1[bytewise]"] == "PASS" and got["S-BUSY-1[in-conversation]"] == "PASS"
    assert got["S-LISTEN-1"] == "SKIP" and got["S-CTRLC-1"] == "SKIP"
    assert set(got.values()) == {"PASS", "SKIP"}


def test_junit_xml_is_junit(tmp_path: Path) -> None:
    xml = tmp_path / "r.xml"
    result = conformance("server", "--case", "S-HELLO-1", "--case", "S-BUSY-1", "--junit-xml", str(xml), *SERVER)
    assert result.returncode == 0, result.stdout
    suites = ET.parse(xml).getroot()
    assert suites.tag == "testsuites"
    suite = suites.find("testsuite")
    assert suite is not None and int(suite.get("tests")) == 6 and int(suite.get("failures")) == 0
    for testcase in suite.iter("testcase"):
        assert testcase.get("name") and testcase.get("classname") and float(testcase.get("time")) >= 0
        props = {p.get("name"): p.get("value") for p in testcase.iter("property")}
        assert props["verdict"] == "PASS" and props["requirements"]


def test_selection_by_case_and_k(tmp_path: Path) -> None:
    one = conformance("server", "--case", "S-BUSY-1[hello-came-first]", *SERVER)
    assert one.returncode == 0 and one.stdout.splitlines()[0].startswith("PASS    S-BUSY-1[hello-came-first]")
    assert one.stdout.splitlines()[-1].startswith("1 passed")
    k = conformance("server", "-k", "TIMEOUT", *SERVER)
    assert k.returncode == 0 and k.stdout.splitlines()[-1].startswith("3 passed"), k.stdout


@pytest.mark.parametrize("args", [
    ["server", "--case", "S-NOPE-9", *SERVER],  # a selection that matches nothing
    ["server", "-k", "nothing_matches_this", *SERVER],
    ["server"],  # no command and no --attach
    ["server", "--", "python3", "chatserve.py"],  # no {port}
    ["client", "--host", "10.0.0.1", "--", "./chatclient", "{host}", "{port}"],  # not loopback
    ["bogus"],
])
def test_usage_errors_exit_2_with_one_line(args: list[str]) -> None:
    result = conformance(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("conformance: "), result.stderr


def test_list_prints_every_case_with_known_requirements() -> None:
    result = conformance("list")
    lines = result.stdout.splitlines()
    ids = [line.split()[0] for line in lines]
    assert len(ids) == len(set(ids)) > 200
    for line in lines:
        reqs = list(itertools.takewhile(lambda word: re.fullmatch(r"[A-Z]-\d+", word), line.split()[1:]))
        assert reqs and not unknown_requirements(reqs), line


def test_a_command_that_cannot_start_is_one_fail_and_the_rest_blocked() -> None:
    result = conformance("server", "--", "./no-such-server", "{port}")
    assert result.returncode == 1
    verdict_lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert sum(line.startswith("FAIL") for line in verdict_lines) == 1
    assert "not found" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("0 passed, 1 failed, 0 warned, 0 skipped, ")


def test_a_port_that_never_opens_is_one_fail_not_a_hang() -> None:
    # `sleep 60 PORT` sleeps for hours: at rest at once, it is decided then (a busy one at its timeout).
    result = conformance("server", "--timeout", "1", "--", "sleep", "60", "{port}", timeout=60)
    assert result.returncode == 1
    assert "the server came to rest without listening on port" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("0 passed, 1 failed")


def test_a_crash_is_attributed_to_its_case() -> None:
    result = conformance("server", "--case", "S-HELLO-1[whole]", "--", sys.executable,
                         str(ROOT / "tests" / "fixtures" / "crashing_server.py"), "{port}")
    assert result.returncode == 1
    assert "the server was killed by SIGSEGV during S-HELLO-1[whole]" in result.stdout
    assert "re-run: python3 -m conformance server --case 'S-HELLO-1[whole]' --" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# --- the matcher ---------------------------------------------------------------------------------


def test_hexdump_shows_bytes_and_text() -> None:
    assert hexdump(bytes.fromhex("4d000474657374")) == "4d 00 04 74 65 73 74  |M..test|"
    assert hexdump(b"") == "(no bytes)"
    assert hexdump(b"a" * 100, limit=4) == "61 61 61 61  |aaaa| ... (100 bytes in all)"


def test_failures_say_what_was_expected_and_what_came() -> None:
    failure = CaseFailure("S-8 E-4", "the refusal", ["45 00 05 01 62 75 73 79", "ERROR BUSY"], "nothing")
    assert failure.details() == ["the refusal", "expected: 45 00 05 01 62 75 73 79", "      or: ERROR BUSY",
                                 "     got: nothing"]
    assert failure.reqs == ["S-8", "E-4"]


def test_requirements_are_read_whole_from_protocol_md() -> None:
    known = requirements()
    assert {"W-1", "W-7", "T-5", "E-3", "F-3", "S-14", "C-15", "X-2"} <= set(known)
    assert known["S-8"].endswith("The open conversation is not disturbed and nothing is printed.")
    assert quote("W-4", width=40).startswith("W-4: No frame may declare") and quote("W-4", width=40).endswith("...")


INDEPENDENT = ROOT / "tests" / "independent"


@pytest.mark.parametrize("mode", ["server", "client"])
def test_an_independent_implementation_gets_the_same_verdicts(tmp_path: Path, mode: str) -> None:
    """tests/independent/ was written from PROTOCOL.md alone, with struct instead of construct."""
    if mode == "server":
        command = ["--", "python3", str(INDEPENDENT / "indserve.py"), "{port}", "--handshake-timeout",
                   "{handshake_timeout}"]
    else:
        command = ["--", "python3", str(INDEPENDENT / "indclient.py"), "{host}", "{port}"]
    result = conformance(mode, "--json", str(tmp_path / "r.json"), *command)
    assert result.returncode == 0, result.stdout
    got = verdicts(tmp_path / "r.json")
    assert got == dict.fromkeys(listed(mode), "PASS")


# --- what the terminal shows, the events, the kinds, the run options --------------------------

READY_SERVER = '''"""Its own first line; on a connection, a line and a prompt a moment later, and never a HELLO."""
import socket, sys, time
with socket.create_server(("127.0.0.1", int(sys.argv[1]))) as listener:
    print(f"Server is ready on port {sys.argv[1]}", flush=True)
    while True:
        conn, addr = listener.accept()
        conn.recv(64)
        time.sleep(0.05)
        print(f"Connected to {addr}", flush=True)
        print("HostA> ", end="", flush=True)
        time.sleep(3600)
'''


def test_a_fail_shows_the_screen_read_to_the_end_and_a_rerun_line_without_output_files(tmp_path: Path) -> None:
    server = tmp_path / "ready_server.py"
    server.write_text(READY_SERVER)
    outputs = ["--json", str(tmp_path / "r.json"), "--junit-xml", str(tmp_path / "r.xml"), "--report",
               str(tmp_path / "r.html"), "--events", str(tmp_path / "events")]
    result = conformance("server", "-q", "--timeout", "1", "--case", "S-HELLO-1[whole]", *outputs, "--",
                         sys.executable, str(server), "{port}")
    assert result.returncode == 1, result.stdout
    screen = result.stdout.split("the server's screen, last lines (is still running):\n")[1].splitlines()
    assert screen[:3] == [f"            | Server is ready on port {screen[0].split()[-1]}",
                          f"            | Connected to ('127.0.0.1', {screen[1].split()[-1]}",
                          "            | HostA> "], result.stdout
    (rerun,) = [line.strip() for line in result.stdout.splitlines() if "re-run:" in line]
    assert rerun == (f"re-run: python3 -m conformance server --case 'S-HELLO-1[whole]' --timeout 1 -- "
                     f"{sys.executable} {server} {{port}}")
    (case,) = json.loads((tmp_path / "r.json").read_text())["cases"]
    assert "HostA> " in case["transcripts"]["server"]


def test_quiet_shows_what_did_not_pass_and_folds_the_blocked_under_their_root(tmp_path: Path) -> None:
    events = tmp_path / "events"
    result = conformance("server", "-q", "--json", str(tmp_path / "r.json"), "--events", str(events), "--",
                         "./no-such-server", "{port}")
    assert result.returncode == 1
    cases = json.loads((tmp_path / "r.json").read_text())["cases"]
    blocked = [c for c in cases if c["verdict"] == "BLOCKED"]
    assert len(blocked) == len(cases) - 1 > 100
    assert {c["root"] for c in blocked} == {"S-LISTEN-1"}  # also those a fixture BLOCKED, and so those they blocked
    headlines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert headlines == [
        f"FAIL    {'S-LISTEN-1':36} {cases[0]['title']}",
        f"BLOCKED {len(blocked)} cases need S-LISTEN-1, which FAILed",
        f"0 passed, 1 failed, 0 warned, 0 skipped, {len(blocked)} blocked"]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["case"] * len(cases) + ["end"]
    assert [(e["id"], e["verdict"], e["mode"], e["root"]) for e in lines[:-1]] == [
        (c["id"], c["verdict"], "server", c["root"]) for c in cases]
    assert lines[-1]["summary"] == {"FAIL": 1, "BLOCKED": len(blocked)}
    passing = conformance("server", "-q", "--case", "S-HELLO-1", *SERVER)
    assert passing.returncode == 0 and passing.stdout.splitlines() == [
        "4 passed, 0 failed, 0 warned, 0 skipped, 0 blocked"]


KINDS_MODULE = '''import pytest

@pytest.mark.case("T-TEXT-1", reqs="S-3", title="an exact line", kind="text")
def test_text():
    pass

@pytest.mark.case("T-BEHAVE-1", reqs="S-4", title="what it does")
def test_behaviour():
    pass
'''


def run_plugin(tmp_path: Path, module: str, mode: str) -> subprocess.CompletedProcess[str]:
    """The plugin on a module of cases of our own (as if other engineers had written them)."""
    (tmp_path / "test_kinds.py").write_text(module)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    script = ("import sys, pytest\nfrom pathlib import Path\n"
              "from conformance.plugin import ConformancePlugin, Options\n"
              f"opts = Options(mode={mode!r}, json_path=Path({str(tmp_path / 'r.json')!r}), "
              f"report_path=Path({str(tmp_path / 'r.html')!r}))\n"
              f"args = [{str(tmp_path / 'test_kinds.py')!r}, '-c', {str(tmp_path / 'pytest.ini')!r}, "
              "'-p', 'no:terminal', '-p', 'no:cacheprovider'] + (['--collect-only'] if opts.mode == 'list' else [])\n"
              "sys.exit(int(pytest.main(args, plugins=[ConformancePlugin(opts)])))\n")
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_case_kind_is_listed_in_the_json_and_marked_in_the_report(tmp_path: Path) -> None:
    listing = run_plugin(tmp_path, KINDS_MODULE, "list")
    assert [line.split()[:3] for line in listing.stdout.splitlines()] == [["T-TEXT-1", "S-3", "text"],
                                                                          ["T-BEHAVE-1", "S-4", "behaviour"]]
    ran = run_plugin(tmp_path, KINDS_MODULE, "server")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert {c["id"]: c["kind"] for c in json.loads((tmp_path / "r.json").read_text())["cases"]} == {
        "T-TEXT-1": "text", "T-BEHAVE-1": "behaviour"}
    page = (tmp_path / "r.html").read_text()
    assert re.search(r'<th [^>]*data-case="T-TEXT-1" data-kind="text"[^>]*>.*?class="kind-mark"', page)
    assert not re.search(r'<th [^>]*data-case="T-BEHAVE-1" data-kind="behaviour"[^>]*><span class="colid">'
                         r'T-BEHAVE-1</span><span class="kind-mark"', page)
    mistyped = run_plugin(tmp_path, KINDS_MODULE.replace('kind="text"', 'kind="txt"'), "server")
    assert mistyped.returncode == pytest.ExitCode.USAGE_ERROR and "T-TEXT-1: kind='txt'" in mistyped.stderr


def test_help_says_what_text_and_behaviour_cases_are() -> None:
    epilog = " ".join(conformance("--help").stdout.split())
    assert "A text case checks one exact text or exit status that PROTOCOL.md fixes" in epilog
    assert "A behaviour case (the default) learns what a program shows and checks what it does" in epilog


def test_run_options_read_back_what_they_write() -> None:
    parser = argparse.ArgumentParser()
    RunOptions.add_arguments(parser)
    assert RunOptions().to_argv() == []
    run = RunOptions(timeout=2.5, timeout_scale=1.3, handshake_timeout=1.0, cases=("S-MSG-1", "C-HELLO-1[whole]"))
    assert run.to_argv() == ["--timeout", "2.5", "--timeout-scale", "1.3", "--case", "S-MSG-1", "--case",
                             "C-HELLO-1[whole]"]
    assert RunOptions.from_args(parser.parse_args(run.to_argv())) == run
    assert RunOptions.from_args(parser.parse_args([])) == RunOptions()
    for bad in ("0", "-1", "x", "inf"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--timeout", bad])


# --- client mode: behaviour apart from wording ---------------------------------------------------


def test_a_plain_text_client_fails_once_with_the_pair_command_and_the_rest_is_skipped(tmp_path: Path) -> None:
    """tests/pairs' client asks for its handle in words of its own and sends plain lines: the suite
    types the handle at whatever prompt it shows, sees the plain text, names pair mode once, and
    skips the rest instead of failing each case."""
    client = ["python3", "tests/pairs/plain_client.py", "{host}", "{port}"]
    result = conformance("client", "--json", str(tmp_path / "r.json"), "--", *client, timeout=120)
    assert result.returncode == 1, result.stdout
    cases = json.loads((tmp_path / "r.json").read_text())["cases"]
    hint = 'pair --server "YOUR-SERVER {port}" --client "python3 tests/pairs/plain_client.py {host} {port}"'
    found = [i for i, c in enumerate(cases) if c["verdict"] == "FAIL" and hint in " ".join(c["details"])]
    assert len(found) == 1, result.stdout
    at = found[0]
    assert "Pick a handle (up to 10 characters): abcdefghij" in cases[at]["transcripts"]["client"]
    # Before it, only text cases FAIL (its prompt is not ours), and the command-line cases that
    # start no conversation (it takes port 99999, and resolves its host after the handle: true FAILs
    # of C-1 and C-3); after it, everything is SKIPped.
    before = {c["id"] for c in cases[:at] if c["verdict"] != "PASS" and c["kind"] != "text"}
    assert before == {"C-USAGE-2", "C-RESOLVE-1"}, result.stdout
    assert {c["verdict"] for c in cases[at + 1:]} == {"SKIP"}
    assert all("speaks plain text" in " ".join(c["details"]) for c in cases[at + 1:])


def test_a_plain_text_server_fails_once_with_the_pair_command_and_the_run_ends_soon(tmp_path: Path) -> None:
    """tests/pairs' server asks its operator a handle (answered), then sends plain lines: the first
    case that connects names pair mode, every later case is SKIPped (or BLOCKED behind that FAIL),
    and the run, its own-clock servers for S-TIMEOUT-1 included, ends within 10 s."""
    server = ["python3", "tests/pairs/plain_server.py", "{port}"]
    started = time.monotonic()
    result = conformance("server", "--json", str(tmp_path / "r.json"), "--", *server, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout
    cases = json.loads((tmp_path / "r.json").read_text())["cases"]
    hint = 'pair --server "python3 tests/pairs/plain_server.py {port}" --client "YOUR-CLIENT {host} {port}"'
    found = [i for i, c in enumerate(cases) if c["verdict"] == "FAIL" and hint in " ".join(c["details"])]
    assert [cases[i]["id"] for i in found] == ["S-HELLO-1[whole]"], result.stdout
    assert {c["verdict"] for c in cases[found[0] + 1:]} <= {"SKIP", "BLOCKED"}, result.stdout
    assert elapsed < 10, f"{elapsed:.1f} s"
