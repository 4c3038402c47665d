"""The conformance suite, checked: the reference passes every case in every mode on both
loopback families; the front end's selection, exit statuses, JSON and JUnit XML; its matcher."""

from __future__ import annotations

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
    one = conformance("server", "--case", "S-BUSY-1[in-handshake]", *SERVER)
    assert one.returncode == 0 and one.stdout.splitlines()[0].startswith("PASS    S-BUSY-1[in-handshake]")
    assert one.stdout.splitlines()[-1].startswith("1 passed")
    k = conformance("server", "-k", "TIMEOUT", *SERVER)
    assert k.returncode == 0 and k.stdout.splitlines()[-1].startswith("2 passed"), k.stdout


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
    result = conformance("server", "--timeout", "1", "--", "sleep", "60", "{port}", timeout=60)
    assert result.returncode == 1
    assert "did not listen on port" in result.stdout
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
