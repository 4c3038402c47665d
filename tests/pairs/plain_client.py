#!/usr/bin/env python3
"""The chat client for plain_server.py: plain text lines on the wire, a prompt of its own words.

On connect it sends its handle as a line and, without waiting, asks for the first message;
the server's handle line is read with its first reply. Each message is a line `handle> text`;
`\\quit` alone on a line ends the conversation.

usage: plain_client.py HOST PORT [--defect recv-per-message|handle-8]
(see README.md for what each defect breaks)
"""

from __future__ import annotations

import argparse
import socket
import sys

from plainlines import Lines

DEFECTS = ("recv-per-message", "handle-8")


def ask_handle() -> str:
    while True:
        handle = input("Pick a handle (up to 10 characters): ")
        if 0 < len(handle) <= 10 and not any(c.isspace() or c == ">" for c in handle):
            return handle
        print("1 to 10 characters, no spaces and no '>'.")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--defect", choices=DEFECTS)
    args = parser.parse_args()
    try:
        handle = ask_handle()
    except EOFError:
        return 0
    if args.defect == "handle-8":  # DEFECT: the handle is cut to 8 characters without a word
        handle = handle[:8]
    sock = socket.create_connection((args.host, args.port))
    lines = Lines(sock, args.defect)
    sock.sendall(f"{handle}\n".encode())
    server_handle = None
    while True:
        try:
            text = input(f"{handle}> ")
        except EOFError:
            text = "\\quit"
        if not 0 < len(text) <= 500:
            print("A message is 1 to 500 characters.")
            continue
        if text == "\\quit":
            sock.sendall(b"\\quit\n")
            sock.close()
            return 0
        try:
            sock.sendall(f"{handle}> {text}\n".encode())
            if server_handle is None:
                server_handle = lines.next()
            line = lines.next()
        except OSError:
            line = None
        if line is None or server_handle is None:
            print("Lost the connection to the server.")
            return 1
        if line == "\\quit":
            print(f"{server_handle} left the conversation.")
            return 0
        print(line)


if __name__ == "__main__":
    sys.exit(main())
