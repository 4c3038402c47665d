#!/usr/bin/env python3
"""The chat client for plain_server.py: plain text lines on the wire, a prompt of its own words.

On connect it sends its handle as a line and, without waiting, asks for the first message
(with --shape auto-first it sends a first message of its own instead, and waits for the
server's reply); the server's handle line is read with its first reply. Each message is a line
of text, shown as `handle> text` (--shape no-space: `handle>text`, colon: `handle: text`), the
prompt the same way (bare: `> `, without the handle); an empty line ends the conversation (the
user types `\\quit`, or --quit-word). A handle over --handle-limit is refused and asked again;
an empty line, or one over --message-limit, is refused (with --split-long, a line over the limit
is sent as several messages of at most the limit, each in a turn of its own).

usage: plain_client.py HOST PORT [--shape auto-first|no-space|colon|bare] [--handle-limit N]
                                 [--message-limit N] [--quit-word WORD] [--split-long]
                                 [--defect recv-per-message|handle-8|handle-fgets|handle-cut|cut-long|
                                           empty-sends]
(see README.md for what each shape and defect does)
"""

from __future__ import annotations

import argparse
import socket
import sys

from plainlines import Lines, assignment_options, form, prompt

SHAPES = ("auto-first", "no-space", "colon", "bare")
DEFECTS = ("recv-per-message", "handle-8", "handle-fgets", "handle-cut", "cut-long", "empty-sends")


def ask_handle(limit: int, defect: str | None) -> tuple[str, str | None]:
    """The handle, and (with the defect handle-fgets) what is left of the line for the next read."""
    while True:
        handle, left = input(f"Pick a handle (up to {limit} characters): "), None
        if defect == "handle-fgets" and len(handle) > limit - 1:
            # DEFECT: fgets(buf, 10, stdin) reads 9 characters; the rest waits for the next read
            handle, left = handle[:limit - 1], handle[limit - 1:]
        if defect == "handle-cut":  # DEFECT: a handle over the limit is cut to it without a word
            handle = handle[:limit]
        if 0 < len(handle) <= limit and not any(c.isspace() or c == ">" for c in handle):
            return handle, left
        print(f"1 to {limit} characters, no spaces and no '>'.")


class Conversation:
    def __init__(self, sock: socket.socket, shape: str | None, defect: str | None) -> None:
        self.sock, self.shape = sock, shape
        self.lines = Lines(sock, defect)
        self.server_handle: str | None = None

    def exchange(self, text: str) -> bool:
        """Send `text`, then show the server's reply; False once the conversation is over."""
        try:
            self.sock.sendall(f"{text}\n".encode())
            if self.server_handle is None:
                self.server_handle = self.lines.next()
            line = self.lines.next()
        except OSError:
            line = None
        if line is None or self.server_handle is None:
            print("Lost the connection to the server.")
            sys.exit(1)
        if line == "":  # the end of the conversation
            print(f"{self.server_handle} left the conversation.")
            return False
        print(form(self.server_handle, self.shape) + line)
        return True


def pieces(text: str, args: argparse.Namespace) -> list[str] | None:
    """The messages a typed line goes as: itself; several (--split-long); None if refused."""
    limit = args.message_limit
    if text == "" and args.defect == "empty-sends":  # DEFECT: sent, though it ends the conversation here
        return [text]
    if len(text) > limit and args.defect == "cut-long":  # DEFECT: cut to the limit, the rest lost
        return [text[:limit]]
    if len(text) > limit and args.split_long:
        return [text[i:i + limit] for i in range(0, len(text), limit)]
    if not 0 < len(text) <= limit:
        print(f"A message is 1 to {limit} characters.")
        return None
    return [text]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--shape", choices=SHAPES)
    parser.add_argument("--defect", choices=DEFECTS)
    parser.add_argument("--handle-limit", type=int, default=10, metavar="N")
    parser.add_argument("--split-long", action="store_true")
    assignment_options(parser)
    args = parser.parse_args()
    try:
        handle, typed_ahead = ask_handle(args.handle_limit, args.defect)
    except EOFError:
        return 0
    if args.defect == "handle-8":  # DEFECT: the handle is cut to 8 characters without a word
        handle = handle[:8]
    sock = socket.create_connection((args.host, args.port))
    sock.sendall(f"{handle}\n".encode())
    talk = Conversation(sock, args.shape, args.defect)
    if args.shape == "auto-first" and not talk.exchange(f"Hi, I am {handle}"):
        return 0
    while True:
        if typed_ahead is not None:  # the rest of the handle's line, read as the first message
            print(prompt(handle, args.shape), end="", flush=True)
            text, typed_ahead = typed_ahead, None
        else:
            try:
                text = input(prompt(handle, args.shape))
            except EOFError:
                text = args.quit_word
        if text == args.quit_word:
            sock.sendall(b"\n")
            sock.close()
            return 0
        for piece in pieces(text, args) or ():
            if not talk.exchange(piece):
                return 0


if __name__ == "__main__":
    sys.exit(main())
