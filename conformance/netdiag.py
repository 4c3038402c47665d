"""How many bytes the far end of a loopback TCP connection has received but not yet read.

One exact sock_diag request over netlink (linux/inet_diag.h): it finds the far end's socket by its
4-tuple, without walking every socket of the system as reading /proc/net/tcp does (milliseconds
each time on a machine with large hash tables). Used to know that a program has read the first
part of a split frame before the rest is sent.
"""

from __future__ import annotations

import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NO_COOKIE = 0xFFFFFFFF

NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
SOCKID = 48  # inet_diag_sockid: ports (big-endian), two 16-byte addresses, interface, cookie
RQUEUE_AT = 4 + SOCKID + 4  # in inet_diag_msg: family, state, timer, retrans; sockid; expires


def _packed(family: int, host: str) -> bytes:
    return socket.inet_pton(family, host).ljust(16, b"\0")


def _query(family: int, local: tuple[str, int], remote: tuple[str, int]) -> tuple[int, int] | None:
    """(rqueue, wqueue) of the socket whose local end is `local` and remote end `remote`, or None."""
    body = (struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)  # any state
            + struct.pack(">HH", local[1], remote[1]) + _packed(family, local[0]) + _packed(family, remote[0])
            + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE))
    message = NLMSG.pack(NLMSG.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(message)
        reply = nl.recv(65536)
    _, kind, _, _, _ = NLMSG.unpack_from(reply)
    if kind == NLMSG_ERROR or len(reply) < NLMSG.size + RQUEUE_AT + 4:
        return None
    return struct.unpack_from("=II", reply, NLMSG.size + RQUEUE_AT)


def unread_by_peer(sock: socket.socket) -> int | None:
    """Bytes the other end of `sock` has received and not read yet; None when it cannot be told."""
    queues = far_end_queues(sock)
    return None if queues is None else queues[0]


def far_end_queues(sock: socket.socket) -> tuple[int, int] | None:
    """(received and not read, written and not yet delivered) at the other end of `sock`; None
    when it cannot be told (no netlink, or the far end's socket was not found). The far end of an
    IPv4 connection may be an IPv6 socket with a mapped address (a dual-stack server), so both
    are asked."""
    mine, theirs = sock.getsockname()[:2], sock.getpeername()[:2]
    candidates = [(sock.family, theirs, mine)]
    if sock.family == socket.AF_INET:
        candidates.append((socket.AF_INET6, (f"::ffff:{theirs[0]}", theirs[1]), (f"::ffff:{mine[0]}", mine[1])))
    for family, local, remote in candidates:
        try:
            found = _query(family, local, remote)
        except OSError:
            return None
        if found is not None:
            return found
    return None
