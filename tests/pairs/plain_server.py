#!/usr/bin/env python3
"""A chat server of the assignment with a wire format of its own: plain text lines.

Like some real submissions it asks its operator for a handle before it listens (with --shape
ask-after-listen: after; ask-after-connect: once the first client has connected), and it
blocks in one thing at a time (the socket in the client's turn, the terminal in its own). On
the wire: on connect it sends its handle as a line and reads the client's; then each message
is a line of text, and an empty line ends the conversation (its operator types `\\quit`). It
shows a message as `handle> text` (--shape no-space: `handle>text`, colon: `handle: text`),
and its prompt the same way (bare: `> `, without the handle). It prints --connected-line when a
client connects ({address}: the client's address as Python shows the tuple) and --dropped-line
when the client has left. A line over --message-limit, or empty, is refused and asked again.
A second client waits in the listen backlog until the conversation is over.

usage: plain_server.py PORT [--shape ask-after-listen|ask-after-connect|no-space|colon|bare|port-on-input]
                            [--message-limit N] [--quit-word WORD] [--connected-line TEXT]
                            [--dropped-line TEXT]
                            [--defect recv-per-message|missed-drop|quit-as-message|handle-one-recv|
                                      decode-per-recv|switch-client|address-form|dropped-on-loss-only]
(see README.md for what each shape and defect does)
"""

from __future__ import annotations

import argparse
import select
import socket
import sys

from plainlines import Lines, assignment_options, form, prompt

SHAPES = ("ask-after-listen", "ask-after-connect", "no-space", "colon", "bare", "port-on-input")
DEFECTS = ("recv-per-message", "missed-drop", "quit-as-message", "handle-one-recv", "decode-per-recv",
           "switch-client", "address-form", "dropped-on-loss-only")


class Server:
    def __init__(self, listener: socket.socket, args: argparse.Namespace) -> None:
        self.listener, self.args = listener, args
        self.shape, self.defect = args.shape, args.defect
        self.handle: str | None = None

    def connected(self, address: tuple[str, int]) -> None:
        shown = f"{address[0]}:{address[1]}" if self.defect == "address-form" else str(address)  # DEFECT: host:port
        print(self.args.connected_line.replace("{address}", shown))

    def dropped(self, how: str) -> None:
        if self.defect == "dropped-on-loss-only" and how == "left":  # DEFECT: a client that said goodbye
            print("The client left.")
            return
        print(self.args.dropped_line)

    def switch(self, conn: socket.socket) -> tuple[socket.socket, Lines, str | None]:
        """DEFECT switch-client: a client that connects now replaces the one in the conversation."""
        new, address = self.listener.accept()
        self.connected(address)
        conn.close()
        return new, *self.greet(new)

    def greet(self, conn: socket.socket) -> tuple[Lines, str | None]:
        assert self.handle is not None
        lines = Lines(conn, self.defect)
        conn.sendall(f"{self.handle}\n".encode())
        peer = lines.first()
        if peer is not None:
            print(f"{peer} joined.")
        return lines, peer

    def converse(self, conn: socket.socket) -> None:
        assert self.handle is not None
        lines, peer = self.greet(conn)
        if peer is None:
            print("The client left before saying who it is.")
            return
        limit = self.args.message_limit
        while True:
            if self.defect == "switch-client" and not lines.buf:
                while select.select([conn, self.listener], [], [])[0] == [self.listener]:
                    conn, lines, peer = self.switch(conn)
            line = lines.next()
            if line is None:
                self.dropped("lost")
                return
            if line == "":  # the end of the conversation
                self.dropped("left")
                return
            print(form(peer or "?", self.shape) + line)
            while True:
                text = input(prompt(self.handle, self.shape))
                if 0 < len(text) <= limit:
                    break
                print(f"A message is 1 to {limit} characters.")
            if text == self.args.quit_word and self.defect != "quit-as-message":  # DEFECT: else sent
                conn.sendall(b"\n")
                print("You left the conversation.")
                return
            conn.sendall(f"{text}\n".encode())

    def serve(self) -> None:
        while True:
            conn, address = self.listener.accept()
            self.connected(address)
            if self.handle is None:  # ask-after-connect: once the first client is there
                self.handle = ask_handle()
            with conn:
                try:
                    self.converse(conn)
                except OSError as exc:
                    if self.defect == "missed-drop":  # DEFECT: a reset is not expected either
                        raise
                    print(f"Lost the connection: {exc}.")
                    self.dropped("lost")


def ask_handle() -> str:
    return input("Server operator, your handle? ").strip() or "Server"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--shape", choices=SHAPES)
    parser.add_argument("--defect", choices=DEFECTS)
    assignment_options(parser)
    parser.add_argument("--connected-line", default="Established connection with {address}...", metavar="TEXT")
    parser.add_argument("--dropped-line", default="The client has dropped the connection...", metavar="TEXT")
    args = parser.parse_args()
    try:
        if args.shape == "port-on-input":  # its argument is ignored: the port is asked for
            args.port = int(input("Port? "))
        handle = None if args.shape in ("ask-after-listen", "ask-after-connect") else ask_handle()
        with socket.create_server(("127.0.0.1", args.port)) as listener:
            print(f"Waiting for clients on port {args.port}.")
            server = Server(listener, args)
            server.handle = ask_handle() if args.shape == "ask-after-listen" else handle
            server.serve()
    except EOFError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
