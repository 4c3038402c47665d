"""Fixtures of the conformance cases, made of the controllers (conformance/controllers.py): the
implementation under test and the scripted peer, and the hooks that stop a run in the wrong mode.

A case that only reads (sends frames, checks answers, ends its own connection) shares one
server process with the others; a case that could leave the server in a bad state asks for
`fresh_server`. A shared server that died or misbehaved is replaced before the next case, so
one crash never turns the rest into noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from conformance.checks import ProgramDied
from conformance.controllers import LEFT_AS_FOUND, Context, ModeCheck, ScriptedServer, ServerPool, ServerUnderTest
from conformance.peer import PlainText
from conformance.plugin import VERDICT_KEY, Options, case_id
from conformance.programs import Program, substitute


@pytest.fixture(scope="session")
def opts(request: pytest.FixtureRequest) -> Options:
    return request.config.conformance_options  # type: ignore[attr-defined]


@pytest.fixture
def ctx(request: pytest.FixtureRequest, opts: Options) -> Context:
    return Context(request.node, opts)


# --- the wrong mode ----------------------------------------------------------------------------


MODE_CHECK_KEY = pytest.StashKey[ModeCheck]()


@pytest.fixture(scope="session")
def mode_check(request: pytest.FixtureRequest, opts: Options) -> ModeCheck:
    return request.config.stash.setdefault(MODE_CHECK_KEY, ModeCheck(opts))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Once the program spoke plain text, every later case is SKIPped with that one reason (before
    the plugin looks at what a case needs: it is not BLOCKED, the mode is wrong)."""
    check = item.config.stash.get(MODE_CHECK_KEY, None)
    if check and check.plain_text:
        pytest.skip(check.plain_text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    check = item.config.stash.get(MODE_CHECK_KEY, None)
    if check and call.excinfo and isinstance(call.excinfo.value, PlainText) and not check.plain_text:
        check.plain_text = f"the {check.opts.mode} speaks plain text, not PROTOCOL.md (found by {case_id(item)}). " \
                           + check.hint()
    return report


# --- server mode ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_pool(opts: Options, mode_check: ModeCheck) -> Iterator[ServerPool]:
    pool = ServerPool(opts, mode_check)
    yield pool
    pool.stop()


def _check_alive(srv: ServerUnderTest, ctx: Context) -> None:
    if srv.program and not srv.program.alive():
        raise ProgramDied("", f"the server {srv.program.exit_description()} during {ctx.case_id}")


@pytest.fixture
def server(server_pool: ServerPool, ctx: Context) -> Iterator[ServerUnderTest]:
    srv = server_pool.get()
    if srv.program:
        srv.program.pump()  # what an earlier case left on the screen is not this case's
        srv.program.forget_unread()  # nor what its waits read but did not match
        srv.program.mark()
        ctx.watch(srv.program)
    yield srv
    srv.close_peers()
    # A case that failed may have left the server mid-conversation: the next case gets a new one,
    # unless the case judged only once the conversation was over (a text case, say).
    failed = ctx.item.stash.get(VERDICT_KEY, "PASS") not in ("PASS", "WARN")
    if failed and not ctx.item.stash.get(LEFT_AS_FOUND, False):
        server_pool.dirty = True
    if srv.program and not srv.program.alive():
        server_pool.dirty = True
    _check_alive(srv, ctx)


@pytest.fixture
def fresh_server(opts: Options, ctx: Context, server_pool: ServerPool) -> Iterator[ServerUnderTest]:
    if opts.attach:
        pytest.skip("not applicable with --attach: this case needs a server process of its own")
    srv = server_pool.start()
    assert srv.program is not None
    ctx.watch(srv.program)
    yield srv
    srv.stop()


# --- client mode ----------------------------------------------------------------------------


@pytest.fixture
def scripted_server(opts: Options, mode_check: ModeCheck) -> Iterator[ScriptedServer]:
    srv = ScriptedServer(opts, mode_check)
    yield srv
    srv.close()


@pytest.fixture
def start_client(opts: Options, ctx: Context, scripted_server: ScriptedServer) -> Iterator[Callable[..., Program]]:
    started: list[Program] = []

    def start(port: int | None = None) -> Program:
        argv = substitute(opts.command, host=opts.host, port=port or scripted_server.port,
                          handshake_timeout=opts.handshake_timeout)
        # C-4 SHOULD: a client that honours CHAT_HELLO_TIMEOUT makes the TIMEOUT case quick.
        program = Program("client", argv, opts.step, env={"CHAT_HELLO_TIMEOUT": str(opts.handshake_timeout)})
        started.append(program)
        scripted_server.clients.append(program)
        ctx.watch(program)
        return program

    yield start
    # Our side of each connection ends first: a client that says goodbye when it is stopped
    # (QUIT, then a drain until the peer closes, W-7) then exits at once instead of after its drain.
    for peer in scripted_server.peers:
        peer.close()
    for program in started:
        program.stop()
