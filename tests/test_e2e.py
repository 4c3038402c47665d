"""End to end: the real chatserve.py and the real ./chatclient, each in a pseudo-terminal,
over real TCP on loopback (PROTOCOL.md sections 5, 6 and 8)."""

from __future__ import annotations

import signal

import pytest

from procs import DROPPED, LOST, SERVER_CLOSED, YOU_CLOSED, Client, Server

EMOJI_MIX = ("é€😀" * 167)[:500]  # 500 code points of 2-, 3- and 4-byte UTF-8


def converse(srv: Server, cli: Client, handle: str = "Chris") -> tuple[str, int]:
    """Handle, handshake, and one message each way; returns the address the server showed."""
    cli.enter_handle(handle)
    address = srv.expect_established()
    cli.expect_text(f"{handle}> ")
    cli.type("test")
    srv.expect_line(f"{handle}> test")
    srv.expect_text("HostA> ")
    srv.type("hello")
    cli.expect_line("HostA> hello")
    cli.expect_text(f"{handle}> ")
    return address


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_the_example_session_verbatim(server, client, host: str) -> None:
    srv = server()
    cli = client(srv.port, host)
    shown_host, shown_port = converse(srv, cli)
    cli.type("\\quit")
    assert cli.wait_exit() == 0
    srv.expect_line(DROPPED)

    assert shown_host in ("127.0.0.1", "::1")  # never ::ffff:127.0.0.1 (S-4)
    assert srv.transcript == (
        f"Listening on port {srv.port}...\n"
        f"Established connection with ('{shown_host}', {shown_port})...\n"
        "Chris> test\n"
        "HostA> hello\n"
        f"{DROPPED}\n"
    )
    assert cli.transcript == (
        "Enter client handle (length 10 or less): Chris\n"
        "Chris> test\n"
        "HostA> hello\n"
        "Chris> \\quit\n"
    )


def test_500_code_point_multibyte_messages_both_ways(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.type(EMOJI_MIX)
    srv.expect_line(f"Chris> {EMOJI_MIX}")
    srv.expect_text("HostA> ")
    srv.type(EMOJI_MIX[::-1])
    cli.expect_line(f"HostA> {EMOJI_MIX[::-1]}")
    cli.expect_text("Chris> ")


def test_lines_that_cannot_be_sent_are_refused_with_a_reason(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    for line, why in [
        ("", "it is empty"),
        ("x" * 501, "it is longer than 500 characters"),
        ("bell\x07", "it contains control characters"),
    ]:
        cli.type(line)
        cli.expect_line(f"Message not sent: {why}.")
        cli.expect_text("Chris> ")
    cli.type("x" * 500)
    srv.expect_line("Chris> " + "x" * 500)
    srv.expect_text("HostA> ")
    for line, why in [("", "it is empty"), ("é" * 501, "it is longer than 500 characters")]:
        srv.type(line)
        srv.expect_line(f"Message not sent: {why}.")
        srv.expect_text("HostA> ")
    srv.type("ok")
    cli.expect_line("HostA> ok")
    assert "bell" not in srv.transcript and "x" * 501 not in srv.transcript


def test_invalid_handles_are_asked_again(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    for handle, why in [
        ("", "it is empty"),
        ("abcdefghijk", "it is longer than 10 characters"),
        ("a b", "it contains whitespace"),
        ("a>b", "it contains '>'"),
    ]:
        cli.enter_handle(handle)
        cli.expect_line(f"Invalid handle: {why}.")
    cli.enter_handle("abcdefghij")
    srv.expect_established()
    cli.expect_text("abcdefghij> ")


def test_lines_typed_out_of_turn_are_not_sent(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.type("one")
    srv.expect_line("Chris> one")
    srv.expect_text("HostA> ")
    cli.type("two")  # the server's turn now
    cli.expect_line("Not your turn; the line was not sent.")
    srv.type("three")
    cli.expect_line("HostA> three")
    srv.type("four")
    srv.expect_line("Not your turn; the line was not sent.")
    assert "Chris> two" not in srv.transcript


def test_quit_from_the_server_then_the_next_client_is_served(server, client) -> None:
    srv = server()
    first = client(srv.port)
    converse(srv, first)
    first.type("again")
    srv.expect_text("HostA> ")
    srv.type("\\quit")
    srv.expect_line(YOU_CLOSED)
    first.expect_line(SERVER_CLOSED)
    assert first.wait_exit() == 0

    second = client(srv.port)
    converse(srv, second, handle="Dana")
    second.type("\\quit")
    assert second.wait_exit() == 0
    srv.expect_line(DROPPED)


def test_a_second_client_is_busy_and_the_conversation_goes_on(server, client) -> None:
    srv = server()
    first = client(srv.port)
    converse(srv, first)
    second = client(srv.port)
    second.enter_handle("Eve")
    line = second.expect_re(r"chatclient: server sent ERROR 1 BUSY [^\r\n]*\r\n").group(0)
    assert "busy" in line
    assert second.wait_exit() == 4
    first.type("still here")
    srv.expect_line("Chris> still here")
    assert "Eve" not in srv.transcript


def test_ctrl_d_on_the_client_quits(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.end_input()
    assert cli.wait_exit() == 0
    srv.expect_line(DROPPED)


def test_ctrl_c_on_the_client_sends_quit(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.interrupt()
    assert cli.wait_exit() == 130
    srv.expect_line(DROPPED)


def test_ctrl_c_on_the_server_sends_quit_and_exits_0(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.type("bye?")
    srv.expect_text("HostA> ")
    srv.interrupt()
    srv.expect_line(YOU_CLOSED)
    assert srv.wait_exit() == 0
    cli.expect_line(SERVER_CLOSED)
    assert cli.wait_exit() == 0
    assert "Traceback" not in srv.transcript


def test_ctrl_d_on_the_server_quits_the_conversation_and_a_second_one_exits(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.type("bye?")
    srv.expect_text("HostA> ")
    srv.end_input()
    srv.expect_line(YOU_CLOSED)
    cli.expect_line(SERVER_CLOSED)
    assert cli.wait_exit() == 0
    srv.end_input()  # no conversation now: end of input stops the server
    assert srv.wait_exit() == 0


def test_a_client_that_vanishes_is_noticed_while_the_operator_types(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.type("one")
    srv.expect_text("HostA> ")
    srv.send("half a line")  # typed, no Enter yet
    srv.expect_text("half a line")
    cli.kill(signal.SIGKILL)
    srv.expect_line("\r\n" + DROPPED)  # on a fresh line, not glued to the typing (S-7)

    nxt = client(srv.port)
    converse(srv, nxt)


def test_a_server_that_vanishes_is_noticed_while_the_user_types(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.send("half a line")
    cli.expect_text("half a line")
    srv.kill(signal.SIGKILL)
    cli.expect_text("\r\n" + LOST + "\r\n")
    assert cli.wait_exit() == 6


def test_quit_out_of_turn_is_noticed_while_the_other_side_types(server, client) -> None:
    srv = server()
    cli = client(srv.port)
    converse(srv, cli)
    cli.send("half a line")
    cli.expect_text("half a line")
    srv.type("\\quit")  # F-3: QUIT is allowed out of turn
    srv.expect_line(YOU_CLOSED)
    cli.expect_text("\r\n" + SERVER_CLOSED + "\r\n")
    assert cli.wait_exit() == 0


FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # one emoji, joined by zero-width joiners


def test_text_that_could_disguise_itself_is_refused_at_both_terminals(server, client) -> None:
    """T-6: no invisible characters in handles, no direction overrides in messages; the
    zero-width joiners of an emoji sequence are fine."""
    srv = server()
    cli = client(srv.port)
    cli.enter_handle("Host\u200bA")
    cli.expect_line("Invalid handle: it contains invisible characters.")
    cli.enter_handle("Chris")
    srv.expect_established()
    cli.expect_text("Chris> ")
    cli.type("abc\u202edef")
    cli.expect_line("Message not sent: it contains direction overrides.")
    cli.expect_text("Chris> ")
    cli.type(f"family {FAMILY}")
    srv.expect_line(f"Chris> family {FAMILY}")
    srv.expect_text("HostA> ")
    srv.type("x\u2066y")
    srv.expect_line("Message not sent: it contains direction overrides.")
    srv.expect_text("HostA> ")
    srv.type("ok")
    cli.expect_line("HostA> ok")
    assert "\u202e" not in srv.transcript and "\u2066" not in cli.transcript
