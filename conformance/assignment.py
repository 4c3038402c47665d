"""What a course fixes about the assignment, as the cases hold a program to it.

The defaults are the assignment this project was written for (PROTOCOL.md section 7a). A
course's profile (conformance/profile.py) may change any of them; every pair case reads its
limits and texts from here, never from a literal of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    handle_limit: int = 10  # characters a handle may have
    message_limit: int = 500  # characters a message may have
    quit_word: str = "\\quit"  # typed on either side, it ends the conversation
    prompt: str = "{handle}> "  # the form of a prompt and of a shown message's prefix
    connected_line: str = "Established connection with {address}..."  # the server's, once a client is in
    dropped_line: str = "The client has dropped the connection..."  # the server's, once it has gone
    split_long_lines: bool = False  # whether a line over the limit may go as several messages

    def prefix(self, handle: str) -> str:
        """`Chris> ` for the default form: what comes before a message shown from `handle`."""
        return self.prompt.replace("{handle}", handle)


DEFAULT = Assignment()
