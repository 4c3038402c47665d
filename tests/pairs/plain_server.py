#!/usr/bin/env python3
"""A chat server of the assignment with a wire format of its own: plain text lines.

Like some real submissions it asks its operator for a handle before it listens, and it blocks
in one thing at a time (the socket in the client's turn, the terminal in its own). On the
wire: on connect it sends its handle as a line and reads the client's; then each message is
a line `handle> text`, and `\\quit` alone on a line ends the conversation.

usage: plain_server.py PORT [--defect recv-per-message|missed-drop|quit-as-message]
(see README.md for what each defect breaks)
"""

from __future__ import annotations

import argparse
import socket
import sys

from plainlines import Lines

DEFECTS = ("recv-per-message", "missed-drop", "quit-as-message")


def converse(conn: socket.socket, handle: str, defect: str | None) -> None:
    lines = Lines(conn, defect)
    conn.sendall(f"{handle}\n".encode())
    peer = lines.next()
    if peer is None:
        print("The client left before saying who it is.")
        return
    print(f"{peer} joined.")
    while True:
        line = lines.next()
        if line is None:
            print(f"Lost the connection to {peer}.")
            return
        if line == "\\quit":
            print(f"{peer} left.")
            return
        print(line)
        while True:
            text = input(f"{handle}> ")
            if 0 < len(text) <= 500:
                break
            print("A message is 1 to 500 characters.")
        if text == "\\quit" and defect != "quit-as-message":  # DEFECT: else it goes out as a message
            conn.sendall(b"\\quit\n")
            print("You left the conversation.")
            return
        conn.sendall(f"{handle}> {text}\n".encode())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--defect", choices=DEFECTS)
    args = parser.parse_args()
    try:
        handle = input("Server operator, your handle? ").strip() or "Server"
    except EOFError:
        return 0
    with socket.create_server(("127.0.0.1", args.port)) as listener:
        print(f"Waiting for clients on port {args.port}.")
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    converse(conn, handle, args.defect)
                except EOFError:
                    return 0
                except OSError as exc:
                    if args.defect == "missed-drop":  # DEFECT: a reset is not expected either
                        raise
                    print(f"Lost the connection: {exc}.")


if __name__ == "__main__":
    sys.exit(main())
