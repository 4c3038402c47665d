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
    "server": {},  # filled by the server work: chatserve.py (and chatwire.py for the T-5 phrases)
    "client": {},  # filled by the client work: chatclient.c (and chatwire.c for the T-5 phrases)
}


def build(target: Target, workdir: Path) -> list[str]:
    """Make the reworded copy in `workdir`; the suite's command template for it."""
    files = SERVER_FILES if target == "server" else CLIENT_FILES
    return build_copy(target, workdir, {name: (ROOT / name).read_text(encoding="utf-8") for name in files},
                      EDITS[target])
