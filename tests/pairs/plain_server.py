#!/usr/bin/env python3
"""A chat server of the assignment with a wire format of its own: plain text lines.

Like some real submissions it asks its operator for a handle before it listens (with --shape
ask-after-listen: after; ask-after-connect: once the first client has connected), and it
blocks in one thing at a time (the socket in the client's turn, the terminal in its own). On
the wire: on connect it sends its handle as a line and reads the client's; then each message
is a line of text, and an empty line ends the conversation (its operator types `\\quit`). It
shows a message as `handle> text` (--shape no-space: `handle>text`, colon: `handle: text`),
and its prompt the same way (bare: `> `, without the handle).

usage: plain_server.py PORT [--shape ask-after-listen|ask-after-connect|no-space|colon|bare]
                            [--defect recv-per-message|missed-drop|quit-as-message|handle-one-recv]
(see README.md for what each shape and defect does)
"""

from __future__ import annotations

import argparse
import socket
import sys

from plainlines import Lines, form, prompt

SHAPES = ("ask-after-listen", "ask-after-connect", "no-space", "colon", "bare")
DEFECTS = ("recv-per-message", "missed-drop", "quit-as-message", "handle-one-recv")


def converse(conn: socket.socket, handle: str, shape: str | None, defect: str | None) -> None:
    lines = Lines(conn, defect)
    conn.sendall(f"{handle}\n".encode())
    peer = lines.first()
    if peer is None:
        print("The client left before saying who it is.")
        return
    print(f"{peer} joined.")
    while True:
        line = lines.next()
        if line is None:
            print(f"Lost the connection to {peer}.")
            return
        if line == "":  # the end of the conversation
            print(f"{peer} left.")
            return
        print(form(peer, shape) + line)
        while True:
            text = input(prompt(handle, shape))
            if 0 < len(text) <= 500:
                break
            print("A message is 1 to 500 characters.")
        if text == "\\quit" and defect != "quit-as-message":  # DEFECT: else it goes out as a message
            conn.sendall(b"\n")
            print("You left the conversation.")
            return
        conn.sendall(f"{text}\n".encode())


def ask_handle() -> str:
    return input("Server operator, your handle? ").strip() or "Server"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--shape", choices=SHAPES)
    parser.add_argument("--defect", choices=DEFECTS)
    args = parser.parse_args()
    try:
        handle = None if args.shape in ("ask-after-listen", "ask-after-connect") else ask_handle()
        with socket.create_server(("127.0.0.1", args.port)) as listener:
            print(f"Waiting for clients on port {args.port}.")
            if args.shape == "ask-after-listen":
                handle = ask_handle()
            while True:
                conn, _ = listener.accept()
                if handle is None:  # ask-after-connect: once the first client is there
                    print("A client connected.")
                    handle = ask_handle()
                with conn:
                    try:
                        converse(conn, handle, args.shape, args.defect)
                    except OSError as exc:
                        if args.defect == "missed-drop":  # DEFECT: a reset is not expected either
                            raise
                        print(f"Lost the connection: {exc}.")
    except EOFError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
