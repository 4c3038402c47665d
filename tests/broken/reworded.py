"""The reference with every fixed text and exit status of PROTOCOL.md worded its own way.

A user's implementation may behave exactly right and still word its screens differently. Run
against these copies, `server` and `client` modes must FAIL exactly the text cases (those marked
`kind="text"`), PASS every behaviour case, and BLOCK nothing (tests/test_conformance_reworded.py).
Like the mutants (mutants.py), each copy is made at test time by exact textual replacement in a
copy of the reference sources, every `old` checked to occur exactly once.
"""

from __future__ import annotations

from pathlib import Path

from mutants import CLIENT_FILES, ROOT, SERVER_FILES, Target, build_copy

# file -> (old, new) edits. Every text of PROTOCOL.md that a program shows, and every exit status.
EDITS: dict[Target, dict[str, tuple[tuple[str, str], ...]]] = {
    "server": {
        "chatserve.py": (
            ('DROPPED = "The client has dropped the connection..."', 'DROPPED = "Client left."'),
            ('YOU_CLOSED = "You have closed the connection..."', 'YOU_CLOSED = "Conversation ended by you."'),
            ('term.line(f"Listening on port {listener.getsockname()[1]}...")',
             'term.line(f"Ready for a client on port {listener.getsockname()[1]}.")'),
            ("    return repr((host, port))\n", '    return f"{host} port {port}"\n'),
            ('self.term.line(f"Established connection with {peer.address}...")',
             'self.term.line(f"{handle} joined from {peer.address}.")'),
            ('self.term.line(f"{peer.handle}> {text}")\n                self.term.prompt(f"{self.handle}> ")',
             'self.term.line(f"[{peer.handle}] {text}")\n                self.term.prompt(f"{self.handle}: ")'),
            ('self.term.line(f"Message not sent: it {problem}.")\n            self.term.prompt(f"{self.handle}> ")',
             'self.term.line(f"Refused ({problem}).")\n            self.term.prompt(f"{self.handle}: ")'),
            ('"No client is connected; the line was not sent."', '"Nobody to send it to."'),
            ('"Not your turn; the line was not sent."', '"Wait for the reply first."'),
            ('f"The client sent ERROR {code} {error_name(code)}: {reason}"',
             'f"Client reported error {code} ({error_name(code)}): {reason}"'),
            ('self.term.line(f"Closed the connection with {peer.address}: "\n'
             '                       f"sent ERROR {exc.code} {exc.code.name} ({exc.reason})...")',
             'self.term.line(f"Sent error {exc.code} ({exc.reason}) to {peer.address}; closed.")'),
            ("        self.gate.disarm()\n        return 0\n", "        self.gate.disarm()\n        return 3\n"),
            ("    except KeyboardInterrupt:  # Ctrl-C before the loop took over signals\n        sys.exit(0)",
             "    except KeyboardInterrupt:  # Ctrl-C before the loop took over signals\n        sys.exit(3)"),
            ('print(f"chatserve: cannot listen on port {args.port}: {reason}", file=sys.stderr)\n        return 1',
             'print(f"Port {args.port} is not available ({reason}).", file=sys.stderr)\n        return 71'),
            ('self.exit(2, f"chatserve: {message} (see --help)\\n")', 'self.exit(64, f"Bad arguments: {message}\\n")'),
        ),
        "chatwire.py": (  # the T-5 phrases, shown in 'Message not sent: it PHRASE.'
            ('return "is empty"', 'return "has no text"'),
            ('return f"is longer than {longest} characters"', 'return f"has over {longest} characters"'),
            ('return "contains control characters"', 'return "has control characters"'),
            ('return "contains invisible characters"', 'return "has invisible characters"'),
            ('return "contains whitespace"', 'return "has whitespace"'),
            ('return "contains \'>\'"', 'return "has a \'>\'"'),
            ('return "contains direction overrides"', 'return "has direction overrides"'),
            ('NOT_UTF8: Final = "is not valid UTF-8"', 'NOT_UTF8: Final = "is not UTF-8"'),
        ),
    },
    "client": {
        "chatclient.c": (
            # every status its own (0 -> 10, 3 -> 13, ..., 128 + N -> 100 + N)
            ("enum { EXIT_USAGE = 2, EXIT_CONNECT = 3, EXIT_THEIR_ERROR = 4, EXIT_OUR_ERROR = 5,\n"
             "       EXIT_LOST = 6 };",
             "enum { EXIT_USAGE = 12, EXIT_CONNECT = 13, EXIT_THEIR_ERROR = 14, EXIT_OUR_ERROR = 15,\n"
             "       EXIT_LOST = 16, EXIT_DONE = 10 };"),
            ("            exit(128 + interrupted); /* nothing sent",
             "            exit(100 + interrupted); /* nothing sent"),
            ("        exit(128 + interrupted);\n", "        exit(100 + interrupted);\n"),
            ("    leave(128 + interrupted, 0);\n", "    leave(100 + interrupted, 0);\n"),
            ("    close(sock);\n    exit(EXIT_SUCCESS);\n", "    close(sock);\n    exit(EXIT_DONE);\n"),
            ("    if (is_quit(s, n))\n        leave(EXIT_SUCCESS, 1);\n",
             "    if (is_quit(s, n))\n        leave(EXIT_DONE, 1);\n"),
            ("    fflush(stdout);\n    leave(EXIT_SUCCESS, 1);\n", "    fflush(stdout);\n    leave(EXIT_DONE, 1);\n"),
            # C-2, C-5, C-6: the prompts and the shown form
            ('        outs("Enter client handle (length 10 or less): ");\n', '        outs("Your handle? ");\n'),
            ('        out(handle, handle_len);\n        outs("> ");\n',
             '        out(handle, handle_len);\n        outs(": ");\n'),
            ('    out(peer, peer_len);\n    outs("> ");\n',
             '    outs("[");\n    out(peer, peer_len);\n    outs("] ");\n'),
            # C-2, C-7: the refusals
            ('        outs("Invalid handle: it ");\n        outs(problem);\n        outs(".\\n");\n',
             '        outs("That handle ");\n        outs(problem);\n        outs("; try another.\\n");\n'),
            ('        outs("Message not sent: it ");\n        outs(problem);\n        outs(".\\n");\n',
             '        outs("(not sent: the line ");\n        outs(problem);\n        outs(")\\n");\n'),
            ('"Not your turn; the line was not sent.\\n"', '"Wait for HostA to answer first.\\n"'),
            ('errline("chatclient: invalid handle: it %s", problem);', 'errline("bad handle: %s", problem);'),
            # C-11, C-14, C-3, C-12, C-13: how a conversation ends
            ('    outs("The server has closed the connection...\\n");\n',
             '    out(peer, peer_len);\n    outs(" has quit.\\n");\n'),
            ('errline("chatclient: the connection to the server was lost");', 'errline("Connection lost.");'),
            ('errline("chatclient: cannot resolve %s: %s", host,', 'errline("No such host %s (%s)", host,'),
            ('errline("chatclient: cannot connect to %s port %s: %s", host, port, strerror(err));',
             'errline("Could not reach %s:%s (%s)", host, port, strerror(err));'),
            ('    errline("chatclient: server sent ERROR %u %s (%s): %s", code, wire_code_name(code),\n'
             '            code >= WIRE_BUSY && code <= WIRE_TIMEOUT ? what[code] : "unknown error code",\n'
             '            reason);\n',
             '    errline("Server refused: %s (code %u: \'%s\', %s)", wire_code_name(code), code, reason,\n'
             '            code >= WIRE_BUSY && code <= WIRE_TIMEOUT ? what[code] : "unknown error code");\n'),
            ('errline("chatclient: protocol error: sent ERROR %u %s (%s)", code, wire_code_name(code),',
             'errline("The server broke the protocol; told it ERROR %u %s (%s)", code, wire_code_name(code),'),
            ('snprintf(why, sizeof why, "no HELLO within %g s", hello_timeout_ms() / 1000.0);',
             'snprintf(why, sizeof why, "timed out after %g s", hello_timeout_ms() / 1000.0);'),
            ('#define USAGE "usage: chatclient HOST PORT"', '#define USAGE "Usage: chatclient <host> <port>"'),
            ('fprintf(stderr, "chatclient: invalid port \'%s\': %s\\n", shown, problem);',
             'fprintf(stderr, "Bad port %s (%s)\\n", shown, problem);'),
            # T-5, for a line too long to keep
            ('? "is not valid UTF-8"', '? "isn\'t UTF-8"'),
            ('? "is longer than 10 characters"', '? "has more than 10 characters"'),
            (': "is longer than 500 characters"', ': "has more than 500 characters"'),
        ),
        "chatwire.c": (  # T-5: the phrases
            ('return "is not valid UTF-8";', 'return "isn\'t UTF-8";'),
            ('return "is empty";', 'return "has nothing in it";'),
            ('"is longer than 10 characters"', '"has more than 10 characters"'),
            ('"is longer than 500 characters"', '"has more than 500 characters"'),
            ('return "contains control characters";', 'return "has control characters";'),
            ('return "contains invisible characters";', 'return "has invisible characters";'),
            ('return "contains whitespace";', 'return "has a space";'),
            ('return "contains \'>\'";', 'return "has a \'>\'";'),
            ('return "contains direction overrides";', 'return "has direction overrides";'),
        ),
    },
}


def build(target: Target, workdir: Path) -> list[str]:
    """Make the reworded copy in `workdir`; the suite's command template for it."""
    files = SERVER_FILES if target == "server" else CLIENT_FILES
    return build_copy(target, workdir, {name: (ROOT / name).read_text(encoding="utf-8") for name in files},
                      EDITS[target])
