"""Packet loss: ICMP echo where the OS lets this process ping, else the kernel's TCP counters.

ICMP comes first through an unprivileged "ping" socket (allowed when the process's group is
in net.ipv4.ping_group_range), then a raw socket (root or CAP_NET_RAW). A host that answers
no echo at all while its TCP probes succeed filters ICMP; it says nothing about loss and is
left out. Without ICMP the figure is the share of TCP segments the kernel retransmitted
since boot (/proc/net/snmp RetransSegs / OutSegs, every connection of this host), raised to
the share of probes that got no answer if that is higher. The check names its method.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path


class NoIcmp(Exception):
    """Why this process cannot send ICMP echoes (one line)."""


@dataclass(frozen=True, slots=True)
class Echoes:
    sent: int
    answered: int
    method: str
    silent: tuple[str, ...]  # hosts that answered none


_ECHO = {socket.AF_INET: (8, 0), socket.AF_INET6: (128, 129)}  # request, reply types
_ICMP_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _open(family: int) -> tuple[socket.socket, str]:
    try:
        return socket.socket(family, socket.SOCK_DGRAM, _ICMP_PROTO[family]), "ICMP echo, unprivileged socket"
    except PermissionError:
        pass
    try:
        return socket.socket(family, socket.SOCK_RAW, _ICMP_PROTO[family]), "ICMP echo, raw socket"
    except PermissionError:
        raise NoIcmp(
            "ICMP not permitted: this group is outside net.ipv4.ping_group_range "
            "and the process lacks CAP_NET_RAW"
        ) from None


def ping(hosts: list[str], count: int, interval_s: float = 0.02, wait_s: float = 1.0) -> Echoes:
    """Send `count` echoes to each host (IP addresses) and count the answers."""
    ident = os.getpid() & 0xFFFF
    families = {host: socket.AF_INET6 if ":" in host else socket.AF_INET for host in hosts}
    sockets: dict[int, tuple[socket.socket, str]] = {}
    try:
        for family in set(families.values()):
            sockets[family] = _open(family)
        answered: set[tuple[str, int]] = set()
        for seq in range(count):
            for host, family in families.items():
                sock, _method = sockets[family]
                kind, _reply = _ECHO[family]
                header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
                payload = struct.pack("!d", time.time())
                packet = struct.pack("!BBHHH", kind, 0, _checksum(header + payload), ident, seq) + payload
                with contextlib.suppress(OSError):  # no route: counted as lost
                    sock.sendto(packet, (host, 0))
            _collect(sockets, answered, ident, time.monotonic() + interval_s)
            if len(answered) == count * len(hosts):
                break
        _collect(sockets, answered, ident, time.monotonic() + wait_s, until_all=count * len(hosts))
    finally:
        for sock, _method in sockets.values():
            sock.close()
    per_host = {host: sum(1 for h, _ in answered if h == host) for host in hosts}
    silent = tuple(host for host, got in per_host.items() if got == 0)
    heard = [host for host in hosts if host not in silent]
    method = sockets[families[hosts[0]]][1] if hosts else "ICMP echo"
    return Echoes(count * len(heard), sum(per_host[h] for h in heard), method, silent)


def _collect(
    sockets: dict[int, tuple[socket.socket, str]],
    answered: set[tuple[str, int]],
    ident: int,
    until: float,
    until_all: int | None = None,
) -> None:
    by_fd = {sock.fileno(): (family, sock, method) for family, (sock, method) in sockets.items()}
    while (left := until - time.monotonic()) > 0 and (until_all is None or len(answered) < until_all):
        ready, _, _ = select.select(list(by_fd), [], [], left)
        for fd in ready:
            family, sock, method = by_fd[fd]
            data, (host, *_rest) = sock.recvfrom(2048)
            raw = "raw" in method
            if raw and family == socket.AF_INET:
                data = data[(data[0] & 0x0F) * 4 :]  # a raw IPv4 socket keeps the IP header
            if len(data) < 8:
                continue
            kind, _code, _sum, reply_ident, seq = struct.unpack("!BBHHH", data[:8])
            # An unprivileged socket's kernel already matched the identifier (it rewrites it).
            if kind == _ECHO[family][1] and (not raw or reply_ident == ident):
                answered.add((host, seq))


@dataclass(frozen=True, slots=True)
class Retransmissions:
    retransmitted: int
    sent: int

    @property
    def percent(self) -> float:
        return 100 * self.retransmitted / self.sent if self.sent else 0.0


def retransmissions(snmp: Path) -> Retransmissions:
    """Since boot, from the kernel's TCP counters (OSError if they cannot be read)."""
    lines = [line.split() for line in snmp.read_text().splitlines() if line.startswith("Tcp:")]
    if len(lines) < 2:
        raise OSError(f"{snmp}: no Tcp counters")
    counters = dict(zip(lines[0][1:], lines[1][1:], strict=True))
    return Retransmissions(int(counters["RetransSegs"]), int(counters["OutSegs"]))
