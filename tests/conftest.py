"""Fixtures for the end-to-end tests: real programs, started and always stopped."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from procs import CLIENT_BUILDS, MUTATION_SUMMARY, SYSTEM_PATH, VENV_BIN, Client, Listener, Screen, Server

os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{SYSTEM_PATH}"  # python3 is .venv's (tests/procs.py says why)


@pytest.fixture(params=sorted(CLIENT_BUILDS))
def build(request: pytest.FixtureRequest) -> str:
    """Each end-to-end test runs against the plain client and the ASan/UBSan build."""
    if not CLIENT_BUILDS[request.param].exists():
        pytest.fail(f"{CLIENT_BUILDS[request.param]} is missing: run ./compileall")
    return request.param


@pytest.fixture
def screens() -> Iterator[list[Screen]]:
    """Every program a test starts; all are stopped afterwards, whatever happened."""
    started: list[Screen] = []
    yield started
    for screen in started:
        screen.stop()


@pytest.fixture
def server(screens: list[Screen]) -> Callable[..., Server]:
    def start(*args: str) -> Server:
        screens.append(proc := Server(*args))
        return proc

    return start


@pytest.fixture
def client(screens: list[Screen], build: str) -> Callable[..., Client]:
    def start(port: int | str, host: str = "127.0.0.1", *, build_name: str = build) -> Client:
        screens.append(proc := Client(build_name, host, port))
        return proc

    return start


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error: object) -> None:
    """pytest-xdist: the mutation table's summary, from the worker that ran the mutants."""
    if lines := getattr(node, "workeroutput", {}).get("mutation_summary"):
        node.config.stash[MUTATION_SUMMARY] = lines


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The mutation table in brief, when the mutant runs were part of the session."""
    if lines := config.stash.get(MUTATION_SUMMARY, None):
        terminalreporter.section("mutation table: each broken implementation against the suite")
        for line in lines:
            terminalreporter.write_line(line)
