"""A local HTML file in Debian's headless Chromium: the DOM after its scripts ran, and its console errors.

The tests call load(path). Chromium is found at /usr/bin/chromium or on PATH; when it is missing and we are root
with apt-get, it is installed (Debian's package, once per machine); when it cannot be had at all the calling test
is skipped, saying why. Every Chromium run ends within a timeout: one that outlives it is killed, with all the
processes it started, and the test fails saying so.

Console errors are caught two ways, because either alone can miss some:
- the page is loaded with a small recorder script put first in its <head>, which keeps every uncaught exception,
  unhandled rejection, failed resource load and console.error() in an attribute of <html> that the dumped DOM
  carries out (and the recorder's own traces are taken out of the DOM handed back);
- Chromium's own log (--enable-logging=stderr) is read for CONSOLE lines of level ERROR or saying "Uncaught",
  which also catches what happens before the recorder runs (a parse error in a script, say).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO

import pytest

from conformance.sandbox import kill_group

INSTALL_TIMEOUT = 900.0  # seconds for one apt-get step: the package and its libraries are some 100 MB
LOAD_TIMEOUT = 60.0  # seconds for one page: a healthy load takes about one

# Without the background-networking flags Chromium keeps trying to reach Google, and the closed network refuses it.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--enable-logging=stderr", "--v=0")

ERRORS_ATTRIBUTE = "data-browser-test-errors"

# Runs before any script of the page. It removes its own <script> element, so the DOM handed back is the page's.
RECORDER = """<script>(function () {
  var errors = [], root = document.documentElement;
  function keep(text) { errors.push(String(text)); root.setAttribute("ATTR", JSON.stringify(errors)); }
  window.addEventListener("error", function (e) {
    var what = e.target;
    if (what && what !== window) { keep("failed to load " + (what.src || what.href || what.tagName)); return; }
    keep("Uncaught " + (e.error && e.error.stack ? e.error.stack : e.message));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { keep("Unhandled rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    keep("Content-Security-Policy refused " + e.blockedURI + " (" + e.violatedDirective + ")");
  });
  var original = console.error;
  console.error = function () {
    keep("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  root.setAttribute("ATTR", "[]");
  document.currentScript.remove();
})();</script>""".replace("ATTR", ERRORS_ATTRIBUTE)

# Chromium's log line of a console message, e.g. [12:12:1126/103000.1:INFO:CONSOLE(7)] "Uncaught Error: x", source: ...
# (the level is INFO even for errors in some versions, hence also the "Uncaught" test).
CONSOLE_LINE = re.compile(r":(?P<level>[A-Z]+):CONSOLE[(:]?\d*\)?\]\s*(?P<text>.*)")


@dataclass(frozen=True)
class PageLoad:
    """What one headless load of a page left: its DOM after the scripts ran, and every console error."""

    dom: str
    recorded_errors: list[str]  # caught by the recorder inside the page
    logged_errors: list[str]  # read from Chromium's log

    @property
    def console_errors(self) -> list[str]:
        return self.recorded_errors + self.logged_errors


def chromium_path() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def ensure_chromium() -> str:
    """The path of Chromium, installed first if need be; skips the calling test if it cannot be had."""
    if path := chromium_path():
        return path
    reason = _install()
    if path := chromium_path():
        return path
    pytest.skip(f"headless Chromium is not available: {reason}")


@cache  # one attempt per session: a failed install is not retried for every test
def _install() -> str:
    """Installs Debian's chromium; returns why it could not when it could not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not installed, and installing it needs root and apt-get"
    install = ["apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120", "chromium"]
    result = _apt(install)
    if result.returncode != 0:  # most often a stale or missing package list
        _apt(["apt-get", "update"])
        result = _apt(install)
    return f"apt-get install chromium failed:\n{result.stdout[-2000:]}" if result.returncode else ""


def _apt(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired as timeout:
        return subprocess.CompletedProcess(command, 1, f"{' '.join(command)}: timed out after {timeout.timeout} s")


def load(page: Path, *, fragment: str = "", timeout: float = LOAD_TIMEOUT) -> PageLoad:
    """Loads the page (a self-contained file: it is loaded from a copy) and returns what the load left."""
    chromium = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="browser-test-") as scratch:
        work = Path(scratch)
        copy = work / page.name
        copy.write_text(_with_recorder(page.read_text(encoding="utf-8")), encoding="utf-8")
        url = copy.as_uri() + (f"#{fragment}" if fragment else "")
        command = [chromium, *FLAGS, f"--user-data-dir={work / 'profile'}", "--dump-dom", url]
        stdout, stderr = _run(command, work, timeout)
    dom, recorded = _take_recorded_errors(stdout)
    return PageLoad(dom=dom, recorded_errors=recorded, logged_errors=_logged_errors(stderr))


def _with_recorder(text: str) -> str:
    """The page with the recorder first in its <head> (after <!DOCTYPE>, which must stay first)."""
    head = re.search(r"<head\b[^>]*>", text, re.IGNORECASE)
    at = head.end() if head else 0
    return text[:at] + RECORDER + text[at:]


def _run(command: list[str], work: Path, timeout: float) -> tuple[str, str]:
    """Runs Chromium in a process group of its own, so that nothing it started can outlive the run."""
    # Files, not pipes: a helper process that lingers holding a pipe would keep a reader waiting.
    with open(work / "stdout", "w+b") as out, open(work / "stderr", "w+b") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            pytest.fail(f"Chromium did not finish loading {command[-1]} within {timeout} s and was killed; its log "
                        f"ends:\n{_tail(err)}", pytrace=False)
        finally:
            _kill_group(proc)  # helpers (zygote, renderers) that are still there
        if proc.returncode != 0:
            pytest.fail(f"Chromium exited with {proc.returncode} loading {command[-1]}; its log ends:\n{_tail(err)}",
                        pytrace=False)
        out.seek(0)
        err.seek(0)
        return out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    kill_group(proc.pid)  # the group is the one Chromium was started in, and only it
    proc.wait()


def _tail(file: BinaryIO) -> str:
    file.seek(0)
    return file.read().decode("utf-8", "replace")[-3000:]


def _take_recorded_errors(dom: str) -> tuple[str, list[str]]:
    """The DOM without the recorder's attribute, and what the recorder kept there."""
    found = re.search(rf'\s{ERRORS_ATTRIBUTE}="([^"]*)"', dom)
    if found is None:  # the recorder never ran: that alone is an error worth reporting
        return dom, ["the error recorder did not run (a script error before it, or no DOM dumped)"]
    return dom[:found.start()] + dom[found.end():], json.loads(html.unescape(found.group(1)))


def _logged_errors(log: str) -> list[str]:
    errors = []
    for line in log.splitlines():
        if (found := CONSOLE_LINE.search(line)) and (found["level"] in ("ERROR", "FATAL") or "Uncaught" in line):
            errors.append(found["text"])
    return errors


# A small DOM for the tests to query: Chromium's serialization closes every element that is not void, so a stack
# of open elements rebuilds the tree exactly.

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, test: Callable[[Element], bool] = lambda element: True,
                 **attrs: str) -> list[Element]:
        """Elements below (and including) this one with that tag and those attributes (data_x means data-x)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [element for element in self.iter()
                if (tag is None or element.tag == tag) and test(element)
                and all(element.attrs.get(name) == value for name, value in wanted.items())]

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag or '*'}> with {attrs}, found {len(found)}"
        return found[0]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.open[-1].children.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while len(self.open) > 1 and self.open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(dom: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(dom)
    builder.close()
    return builder.root
