"""The HTML report (conformance/report.py): its structure in Python, and what a real headless Chromium makes of it.

The browser tests share one load of a sample report (each Chromium start costs about a second); the sample holds
the strings a student could use to break the page. test_a_broken_page_is_caught proves that the console-error
detection the other tests rely on does see errors.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from browser import Element, PageLoad, load, parse

from conformance import report

WORST_FIRST = ["FAIL", "FLAKY", "BLOCKED", "WARN", "SKIP", "PASS"]  # the spec's order, kept apart from report.py's

INJECTED = "<script>alert(1)</script>"
IMG_INJECTION = "<img src=x onerror=alert(1)>"
LONG_LINE = "got: " + "0123456789" * 1000
TRANSCRIPT = f"Listening on port 4000...\nZoë ✓> hi \"quotes\" &amp; {INJECTED}\x1b[31mred\x07\n{LONG_LINE}\n"
FAIL_DETAILS = ["the server's answer to HELLO 'Chris'", f'  expected: HELLO "Chris" {INJECTED}', f"  {LONG_LINE}"]
NASTY_NAME = f'{INJECTED} Zoë ✓ "quotes" &amp; \x1b[2J'

CASES = [  # (full id, mode, title, requirements)
    ("S-HELLO-1[whole]", "server", f"HELLO is answered with the server's HELLO {INJECTED}", ["W-1", "S-4"]),
    ("S-HELLO-1[bytewise]", "server", f"HELLO is answered with the server's HELLO {INJECTED}", ["W-1", "S-4"]),
    ("S-BUSY-2", "server", "a second client is refused with ERROR BUSY", ["S-8"]),
    ("S-LONG-3[a]", "server", "500 characters pass intact", ["W-2"]),
    ("S-LONG-3[b]", "server", "500 characters pass intact", ["W-2"]),
    ("S-LONG-3[c]", "server", "500 characters pass intact", ["W-2"]),
    ("C-PROMPT-1", "client", "the handle prompt", ["C-1"]),
    ("C-QUIT-2[ctrl-d]", "client", "\\quit ends the conversation", ["C-7"]),
    ("C-QUIT-2[quit]", "client", "\\quit ends the conversation", ["C-7"]),
    ("P-RELAY-1", "pair", "a relay that cuts the stream into single bytes", ["P-2"]),
]
TEXT_CASES = {"C-PROMPT-1"}  # kind="text"; the others are behaviour cases
ROOT_CAUSE = "S-HELLO-1[whole]"  # what a BLOCKED result needed


def result(verdict: str) -> dict[str, Any]:
    if verdict == "PASS":
        return {"verdict": "PASS", "title": "", "details": [], "transcripts": {}, "seconds": 0.05}
    return {"verdict": verdict, "title": "", "details": FAIL_DETAILS, "transcripts": {"server": TRANSCRIPT},
            "seconds": 0.21, "root": ROOT_CAUSE if verdict == "BLOCKED" else ""}


def submission(name: str, status: str, mode: str, verdicts: dict[str, str], message: str = "",
               log: str = "") -> dict[str, Any]:
    return {"name": name, "status": status, "mode": mode, "message": message, "log": log, "seconds": 12.3,
            "summary": dict(Counter(verdicts.values())),
            "results": {case_id: result(verdict) for case_id, verdict in verdicts.items()}}


def points(score: float, total: float = 100.0, **by_item: tuple[float, float]) -> dict[str, Any]:
    """A submission's points as conformance/profile.py's score() gives them."""
    return {"score": score, "max_score": total, "mode": "framed", "profile": "course",
            "items": [{"id": rid, "kind": "requirement", "score": got, "max_score": of, "visibility": "visible",
                       "passed": 1, "counted": 1, "cases": []} for rid, (got, of) in by_item.items()]}


def sample() -> dict[str, Any]:
    alice = {"S-HELLO-1[whole]": "FAIL", "S-HELLO-1[bytewise]": "PASS", "S-BUSY-2": "WARN", "S-LONG-3[a]": "PASS",
             "S-LONG-3[b]": "FLAKY", "S-LONG-3[c]": "SKIP", "C-PROMPT-1": "BLOCKED", "C-QUIT-2[ctrl-d]": "PASS",
             "C-QUIT-2[quit]": "PASS"}
    return {
        "title": f"Conformance report {INJECTED}",
        "generated": "2026-11-26T10:30:00Z",
        "seconds": 95.2,
        "timeout_scale": 1.3,
        "command": f"python3 -m conformance batch SUBMISSIONS/ --timeout-scale 1.3 # {INJECTED}",
        "cases": [{"id": cid, "base": cid.split("[")[0], "mode": mode, "title": title, "requirements": reqs,
                   "kind": "text" if cid in TEXT_CASES else "behaviour"} for cid, mode, title, reqs in CASES],
        "submissions": [
            {**submission("alice", "GRADED", "framed", alice), "points": points(62.5, **{"A-3": (12.5, 20)})},
            {**submission(NASTY_NAME, "GRADED", "pair", {"P-RELAY-1": "FAIL"}), "points": points(80)},
            {**submission("Zoë ✓", "GRADED", "framed", {cid: "PASS" for cid, mode, *_ in CASES if mode != "pair"}),
             "points": points(100)},
            {**submission("bob", "BUILD-FAIL", "", {}, message=f"chatclient.c:3:1: error: {IMG_INJECTION}",
                          log=f"gcc -Wall chatclient.c\n{LONG_LINE}\n\x00\x1b[0m"), "points": points(0)},
            {**submission("carol", "HUNG", "framed", {"S-HELLO-1[whole]": "PASS", "S-HELLO-1[bytewise]": "FAIL"},
                          message="the server hung in S-BUSY-2"), "points": points(30)},
        ],
    }


def shown(value: str) -> str:
    """A string as the page shows it: C0 control characters (but tab and newline) as Unicode control pictures."""
    return re.sub(r"[\x00-\x08\x0b-\x1f]", lambda found: chr(0x2400 + ord(found.group())), value)


def group_bases(data: dict[str, Any], sub: dict[str, Any]) -> list[str]:
    """The columns of a submission's table: the cases of its own kind (pair, or framed: server and client), and
    any other case it ran; its own kind's first."""
    pair = sub["mode"] == "pair"
    ran = {cid.split("[")[0] for cid in sub["results"]}
    own = [c["base"] for c in data["cases"] if (c["mode"] == "pair") == pair]
    other = [c["base"] for c in data["cases"] if (c["mode"] == "pair") != pair and c["base"] in ran]
    return list(dict.fromkeys(own + other))


def expected_cells(data: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(submission, base id) -> the worst verdict of its variants, "" if none ran; for rows that have cells."""
    cells = {}
    for sub in data["submissions"]:
        if not sub["results"]:
            continue  # a row with no results has its message across it instead
        for base in group_bases(data, sub):
            verdicts = [r["verdict"] for cid, r in sub["results"].items() if cid.split("[")[0] == base]
            cells[shown(sub["name"]), base] = min(verdicts, key=WORST_FIRST.index) if verdicts else ""
    return cells


def sub_row(root: Element, name: str) -> Element:
    rows = root.find_all("tr", test=lambda e: "sub-row" in e.attrs.get("class", ""), data_submission=name)
    assert len(rows) == 1, f"{len(rows)} rows for {name!r}"
    return rows[0]


def cells(root: Element) -> list[Element]:
    return root.find_all("td", test=lambda e: "cell" in e.attrs.get("class", "").split())


def by_id(root: Element, element_id: str) -> Element:
    return root.find(id=element_id)


# -- without a browser

def test_the_page_is_self_contained_and_escapes_everything() -> None:
    data = sample()
    page = report.render(data)
    root = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert [len(root.find_all(tag)) for tag in ("html", "head", "body", "style", "script")] == [1, 1, 1, 1, 1]
    # Nothing to load from anywhere, and a policy that forbids it: only the page's own style and script may apply.
    assert not root.find_all(test=lambda e: "src" in e.attrs or "href" in e.attrs)
    policy = root.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in policy
    for tag in ("style", "script"):
        source = root.find(tag).text()
        assert f"'sha256-{base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()}'" in policy
    assert "@import" not in page and "url(" not in page
    # The untrusted strings never reach the page as markup, nor their control characters as such.
    assert INJECTED not in page and IMG_INJECTION not in page
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", page)
    assert len(root.find_all("img")) == 0


def test_every_cell_that_did_not_pass_has_its_panel() -> None:
    data = sample()
    root = parse(report.render(data))
    panels = root.find(id="panels")
    assert "hidden" in panels.attrs
    expected = expected_cells(data)
    assert {(cell.attrs["data-submission"], cell.attrs["data-case"]): cell.attrs["data-verdict"]
            for cell in cells(root)} == expected
    for cell in cells(root):
        if cell.attrs["data-verdict"] in ("", "PASS"):
            assert "data-detail" not in cell.attrs and "tabindex" not in cell.attrs
        else:
            panel = by_id(panels, cell.attrs["data-detail"])
            assert cell.attrs["tabindex"] == "0"
            assert (panel.attrs["data-submission"], panel.attrs["data-case"]) == (cell.attrs["data-submission"],
                                                                                  cell.attrs["data-case"])


def test_text_cases_are_marked_and_blocked_cells_name_their_root() -> None:
    root = parse(report.render(sample()))
    for header in root.find_all("th", test=lambda e: "data-kind" in e.attrs):
        is_text = header.attrs["data-case"] in TEXT_CASES
        assert header.attrs["data-kind"] == ("text" if is_text else "behaviour")
        assert bool(header.find_all("span", **{"class": "kind-mark"})) == is_text
        assert ("A text case" in header.attrs["title"]) == is_text
    blocked = root.find("td", data_submission="alice", data_case="C-PROMPT-1")
    assert (blocked.attrs["data-verdict"], blocked.attrs["data-root"]) == ("BLOCKED", ROOT_CAUSE)
    assert f"blocked by {ROOT_CAUSE}, which FAILed" in blocked.attrs["title"]
    panel = by_id(root.find(id="panels"), blocked.attrs["data-detail"])
    assert panel.find("code", data_root="").text() == ROOT_CAUSE
    assert f"it needs {ROOT_CAUSE}, which FAILed" in panel.text()


def test_a_pair_submission_shows_its_own_columns_first() -> None:
    data = sample()
    root = parse(report.render(data))
    tables = root.find_all("table", test=lambda e: "matrix" in e.attrs.get("class", "").split())
    assert [t.attrs["data-group"] for t in tables] == ["framed", "pair"]
    for table in tables:
        headers = [th.attrs["data-case"] for th in table.find_all("th", test=lambda e: "data-kind" in e.attrs)]
        for row in table.find_all("tr", test=lambda e: "sub-row" in e.attrs.get("class", "")):
            sub = next(s for s in data["submissions"] if shown(s["name"]) == row.attrs["data-submission"])
            assert headers == group_bases(data, sub), sub["name"]
            if sub["results"]:
                assert [c.attrs["data-case"] for c in cells(row)] == headers
    framed, pair = tables
    assert "P-RELAY-1" not in [th.attrs.get("data-case") for th in framed.find_all("th")]
    assert "Pair submissions (1)" in pair.find("th", **{"class": "corner"}).text()
    # A pair row that also ran a framed case (it cannot, but the page must not hide it) gets that column after its own.
    odd = {**data, "submissions": [submission("dave", "GRADED", "pair", {"P-RELAY-1": "PASS", "S-BUSY-2": "FAIL"})]}
    (table,) = parse(report.render(odd)).find_all("table", data_group="pair")
    assert [c.attrs["data-case"] for c in cells(table)] == ["P-RELAY-1", "S-BUSY-2"]


def test_the_points_column_and_panel() -> None:
    data = sample()
    root = parse(report.render(data))
    for sub in data["submissions"]:
        row = sub_row(root, shown(sub["name"]))
        (cell,) = row.find_all("td", test=lambda e: "pts" in e.attrs.get("class", "").split())
        assert float(cell.attrs["data-points"]) == sub["points"]["score"]
        assert float(cell.attrs["data-max-points"]) == sub["points"]["max_score"]
    assert len(root.find_all("th", test=lambda e: "pts-head" in e.attrs.get("class", ""))) == 2  # one per table
    panel = by_id(root.find(id="panels"), "s-0")  # alice's own panel: her points per requirement
    assert panel.find("tr", data_item="A-3").text().startswith("A-312.5 / 20")
    assert "points: 62.5 of 100" in panel.text()
    # Data without points (a run without --profile) has no points column.
    plain = sample()
    for sub in plain["submissions"]:
        del sub["points"]
    assert not parse(report.render(plain)).find_all("td", test=lambda e: "pts" in e.attrs.get("class", "").split())


@pytest.mark.parametrize("data", [
    {},
    {"title": "empty", "cases": [], "submissions": []},
    {"cases": [{"id": "S-X-1"}], "submissions": [{"name": "x", "status": "NO-START", "summary": None,
                                                   "results": ["not", "a", "dict"], "seconds": "?"}]},
    {"cases": [], "submissions": [{"name": 7, "results": {"S-ONLY-IN-RESULTS[a]": {"verdict": "ODD"}}}]},
], ids=["nothing", "no-submissions", "mistyped-fields", "unknown-case-and-verdict"])
def test_odd_data_still_makes_a_page(data: dict[str, Any]) -> None:
    root = parse(report.render(data))
    assert root.find("table", **{"class": "matrix"})
    if not data.get("submissions"):
        assert "No submissions" in root.text()
    if "S-ONLY-IN-RESULTS[a]" in str(data):  # a result whose case the list lacks still gets its column
        (cell,) = cells(root)
        assert (cell.attrs["data-case"], cell.attrs["data-verdict"]) == ("S-ONLY-IN-RESULTS", "ODD")


# -- in the browser


@pytest.fixture(scope="module")
def sample_data() -> dict[str, Any]:
    return sample()


@pytest.fixture(scope="module")
def alice_hello_panel(sample_data: dict[str, Any]) -> str:
    """The panel id of alice's FAIL of S-HELLO-1, which the page is loaded with (#id opens it)."""
    root = parse(report.render(sample_data))
    (cell,) = [cell for cell in cells(root)
               if (cell.attrs["data-submission"], cell.attrs["data-case"]) == ("alice", "S-HELLO-1")]
    return cell.attrs["data-detail"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, sample_data: dict[str, Any], alice_hello_panel: str) -> PageLoad:
    page = tmp_path_factory.mktemp("report") / "report.html"
    report.write(page, sample_data)
    return load(page, fragment=alice_hello_panel)


@pytest.fixture(scope="module")
def dom(loaded: PageLoad) -> Element:
    return parse(loaded.dom)


def test_the_page_loads_without_console_errors(loaded: PageLoad, dom: Element) -> None:
    assert loaded.console_errors == []
    assert dom.find("h1").text() == f"Conformance report {INJECTED}"


def test_the_matrix_shows_the_counts_of_the_data(sample_data: dict[str, Any], dom: Element) -> None:
    for sub in sample_data["submissions"]:
        row = sub_row(dom, shown(sub["name"]))
        counts = {element.attrs["data-count"]: int(element.text())
                  for element in row.find_all(test=lambda element: "data-count" in element.attrs)}
        assert counts == {verdict: sub["summary"].get(verdict, 0) for verdict in WORST_FIRST}, sub["name"]
    expected = expected_cells(sample_data)
    assert Counter(cell.attrs["data-verdict"] for cell in cells(dom)) == Counter(expected.values())
    assert {(c.attrs["data-submission"], c.attrs["data-case"]): c.attrs["data-verdict"] for c in cells(dom)} == expected
    alice_long = dom.find("td", data_submission="alice", data_case="S-LONG-3")
    assert alice_long.text() == "~1/3"  # FLAKY is the worst of PASS, FLAKY, SKIP; one of three passed
    assert dom.find("th", data_case="S-HELLO-1").find(data_failed="2")  # alice and carol
    totals = sum((Counter(sub["summary"]) for sub in sample_data["submissions"]), Counter())
    assert {verdict: int(dom.find(data_total=verdict).text()) for verdict in WORST_FIRST} == {
        verdict: totals[verdict] for verdict in WORST_FIRST}


def test_a_submission_that_was_not_graded_says_why_across_its_row(dom: Element) -> None:
    bob = sub_row(dom, "bob")
    (points, notice) = bob.find_all("td")
    assert (points.attrs["data-points"], points.attrs["data-max-points"]) == ("0", "100")
    assert int(notice.attrs["colspan"]) == 5  # every column of its table: bob has no mode, so the framed one
    assert f"BUILD-FAIL chatclient.c:3:1: error: {IMG_INJECTION}" in notice.text()
    assert "HUNG the server hung in S-BUSY-2" in dom.find("tr", **{"class": "notice-row"}).text()


def test_escaping_holds(dom: Element, loaded: PageLoad) -> None:
    assert len(dom.find_all("script")) == 1  # the page's own
    assert not dom.find_all("img")
    name = sub_row(dom, shown(NASTY_NAME)).find("button")
    assert name.text() == shown(NASTY_NAME) == NASTY_NAME.replace("\x1b", "␛")  # all else as written
    assert "\x1b" not in loaded.dom and "\x00" not in loaded.dom


def test_the_detail_of_a_fail_is_in_the_page_and_opens(dom: Element, alice_hello_panel: str) -> None:
    hidden = by_id(dom.find(id="panels"), alice_hello_panel)
    dialog = dom.find("dialog")
    assert "open" in dialog.attrs  # the script ran and opened the panel named in the address
    opened = dom.find(id="panel-body").find("section")
    for panel in (hidden, opened):
        assert (panel.attrs["data-submission"], panel.attrs["data-case"]) == ("alice", "S-HELLO-1")
        failed = panel.find("li", data_id="S-HELLO-1[whole]", data_verdict="FAIL")
        assert failed.find("pre", **{"class": "details"}).text() == "\n".join(FAIL_DETAILS)
        assert failed.find("pre", data_transcript="server").text() == shown(TRANSCRIPT)
        assert panel.find("li", data_id="S-HELLO-1[bytewise]", data_verdict="PASS")


# -- the detection the browser tests rely on

def test_a_broken_page_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>broken</title></head><body><p>before</p>"
                    "<script>console.error('told ' + 'the console');</script>"
                    "<script>throw new Error('thrown ' + 'on purpose');</script>"
                    "<script>let x = ;</script><p>after</p></body></html>", encoding="utf-8")
    loaded = load(page)
    recorded, logged = "\n".join(loaded.recorded_errors), "\n".join(loaded.logged_errors)
    assert "told the console" in recorded and "thrown on purpose" in recorded
    assert "Uncaught Error: thrown on purpose" in logged and "SyntaxError" in logged
    assert [p.text() for p in parse(loaded.dom).find_all("p")] == ["before", "after"]


def test_a_hung_page_fails_within_the_timeout_and_leaves_no_process(tmp_path: Path) -> None:
    page = tmp_path / f"hang-{uuid.uuid4().hex}.html"  # a name of its own: the browser loads a copy of that name
    page.write_text("<!DOCTYPE html><html><head></head><body><script>while (true) {}</script></body></html>",
                    encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match=r"did not finish loading .* within 2 s and was killed"):
        load(page, timeout=2)
    # Only this test's browser (its page's name is its own), not another run's on the same machine.
    left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert not [args for args in left if page.name in args]
