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
            ("        self.term.end_line()\n        return 0\n", "        self.term.end_line()\n        return 3\n"),
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
    "client": {},  # filled by the client work: chatclient.c (and chatwire.c for the T-5 phrases)
}


def build(target: Target, workdir: Path) -> list[str]:
    """Make the reworded copy in `workdir`; the suite's command template for it."""
    files = SERVER_FILES if target == "server" else CLIENT_FILES
    return build_copy(target, workdir, {name: (ROOT / name).read_text(encoding="utf-8") for name in files},
                      EDITS[target])
