"""A real DNS server for tests: dnslib's ``DNSServer`` with a ``ZoneResolver``, UDP and TCP on one
free port of 127.0.0.1, serving zone data the test writes.

    with dns_server(zone("news.harvest.example. TXT \"v=spf1 -all\"")) as servers:
        settings = clinic_settings(project, dns_servers=servers)   # "127.0.0.1:PORT"

``silent_dns_server()`` binds the port and never answers, as a network without DNS would;
``failing_dns_server()`` answers every query with SERVFAIL, as a broken DNS host does.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from dnslib import RCODE, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer
from dnslib.zoneresolver import ZoneResolver

HOST = "127.0.0.1"


def txt(name: str, value: str) -> str:
    """A zone line for a TXT record; values over 255 octets are split into several strings."""
    chunks = [value[i : i + 200] for i in range(0, len(value), 200)] or [""]
    return f"{name} 300 IN TXT " + " ".join(f'"{chunk}"' for chunk in chunks)


def zone(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _free_port_for_both() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same free port (they are separate port spaces)."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((HOST, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((HOST, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        return udp, tcp
    raise RuntimeError("no port free for both UDP and TCP")


class _ServerFailure(BaseResolver):  # type: ignore[misc]
    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return reply


class _Hanging(BaseResolver):  # type: ignore[misc]
    """Answers from a zone, except for names under ``hang``: those get no answer until the server stops."""

    def __init__(self, zone: ZoneResolver, hang: tuple[str, ...], stopped: threading.Event) -> None:
        self.zone, self.hang, self.stopped = zone, hang, stopped

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        name = str(request.q.qname).rstrip(".")
        if any(name == h or name.endswith("." + h) for h in self.hang):
            self.stopped.wait()  # the asker has long given up by the time this answers
            return _ServerFailure().resolve(request, handler)
        return self.zone.resolve(request, handler)


@contextmanager
def dns_server(zone_text: str, *, hang: tuple[str, ...] = ()) -> Iterator[str]:
    """Serve ``zone_text`` over UDP and TCP; yields the ``dns_servers`` value ("127.0.0.1:PORT").

    Names under a domain in ``hang`` are never answered, like a zone whose servers are down.
    """
    stopped = threading.Event()
    with _serving(_Hanging(ZoneResolver(zone_text), hang, stopped)) as servers:
        try:
            yield servers
        finally:
            stopped.set()


@contextmanager
def failing_dns_server() -> Iterator[str]:
    with _serving(_ServerFailure()) as servers:
        yield servers


@contextmanager
def _serving(resolver: BaseResolver) -> Iterator[str]:
    quiet = DNSLogger(logf=lambda _: None)
    udp, tcp = _free_port_for_both()
    port = udp.getsockname()[1]
    udp.close()
    tcp.close()  # the servers below bind the same port again (SO_REUSEADDR for TCP)
    with ExitStack() as stack:
        for over_tcp in (False, True):
            server = DNSServer(resolver, address=HOST, port=port, tcp=over_tcp, logger=quiet)
            server.start_thread()
            stack.callback(server.server.server_close)
            stack.callback(server.stop)
        yield f"{HOST}:{port}"


@contextmanager
def silent_dns_server() -> Iterator[str]:
    """A DNS "server" that receives every query and never answers (UDP and TCP)."""
    udp, tcp = _free_port_for_both()
    tcp.listen()
    with udp, tcp:
        yield f"{HOST}:{udp.getsockname()[1]}"
