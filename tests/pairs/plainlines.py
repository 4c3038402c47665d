"""Lines from a socket, how a handle is shown, and the options of the assignment, shared by
plain_server.py and plain_client.py (a test pair)."""

from __future__ import annotations

import argparse
import socket

# --shape names of the forms a handle is shown in (both programs of a pair take the same one)
FORMS = {"no-space": "{}>", "colon": "{}: "}
PROMPTS = {"bare": "> "}  # a prompt without the handle (messages still show it)


def form(handle: str, shape: str | None) -> str:
    """`handle` as this pair shows it before a peer's messages."""
    return FORMS.get(shape or "", "{}> ").format(handle)


def prompt(handle: str, shape: str | None) -> str:
    """The prompt of the side whose handle is `handle`."""
    return PROMPTS.get(shape or "") or form(handle, shape)


def assignment_options(parser: argparse.ArgumentParser) -> None:
    """What a course's profile may change ([assignment] of conformance/profiles/default.toml):
    a pair written to another profile is started with these."""
    parser.add_argument("--message-limit", type=int, default=500, metavar="N")
    parser.add_argument("--quit-word", default="\\quit", metavar="WORD")


class Lines:
    """Lines from a socket, however the bytes are segmented (unless a defect says otherwise)."""

    def __init__(self, sock: socket.socket, defect: str | None) -> None:
        self.sock, self.defect, self.buf = sock, defect, b""
        self.text = ""  # the defect decode-per-recv: what was read, decoded one recv() at a time

    def next(self) -> str | None:
        """The next line, or None when the connection ended."""
        if self.defect == "recv-per-message":  # DEFECT: one recv() is taken to be one line
            data = self.sock.recv(4096)
            return data.decode(errors="replace").rstrip("\n") if data else None
        if self.defect == "decode-per-recv":
            return self.next_decoded()
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                if self.defect == "missed-drop":  # DEFECT: an ended connection is read again, forever
                    continue
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def next_decoded(self) -> str | None:
        """DEFECT decode-per-recv: each recv() is decoded on its own, so that a character whose
        bytes come in two segments turns into replacement characters (lines are found properly)."""
        while "\n" not in self.text:
            data = self.sock.recv(4096)
            if not data:
                return None
            self.text += data.decode(errors="replace")
        line, self.text = self.text.split("\n", 1)
        return line

    def first(self) -> str | None:
        """The peer's handle: its first line, or with the defect handle-one-recv whatever one
        recv() brought (a single byte, when the stream is cut into bytes)."""
        if self.defect != "handle-one-recv":
            return self.next()
        data = self.sock.recv(64)  # DEFECT: one recv() is taken to be the whole handle
        return data.decode(errors="replace").rstrip("\n") if data else None
