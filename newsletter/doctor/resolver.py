"""DNS lookups for the doctor, through dnspython: a few seconds per lookup, never past the deadline.

The ``dns_servers`` setting (``host:port`` entries separated by commas, e.g. ``127.0.0.1:5353``)
replaces the system's resolver; empty means the servers in ``/etc/resolv.conf``. When no server
has answered anything yet and a lookup times out, the machine is taken to be offline: every later
lookup says so at once instead of waiting again, so the doctor ends in seconds without a network.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT

from newsletter.doctor.report import Deadline
from newsletter.errors import ConfigError

LOOKUP_TIMEOUT = 3.0  # seconds; a lookup that takes longer is not coming back


class DNSUnavailable(Exception):
    """No DNS server answered: the records could not be checked (not that they are wrong)."""


class DNSFailure(Exception):
    """A server answered with an error (SERVFAIL, REFUSED, a malformed reply) for this name."""


def parse_dns_servers(value: str) -> list[tuple[str, int]]:
    """``"127.0.0.1:5353, [::1]:53, 192.0.2.1"`` as ``[(address, port), ...]``; port 53 by default."""
    servers = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        host, port = entry, "53"
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ConfigError(f"dns_servers: {entry!r} is not host:port")
                port = rest[1:]
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            raise ConfigError(f"dns_servers: {host!r} is not an IP address (write e.g. 127.0.0.1:5353)") from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"dns_servers: {port!r} is not a port number in {entry!r}")
        servers.append((address, int(port)))
    return servers


class Resolver:
    """TXT and MX lookups that time out after ``timeout`` seconds and never outlive ``deadline``."""

    def __init__(self, dns_servers: str, deadline: Deadline, *, timeout: float = LOOKUP_TIMEOUT) -> None:
        self.deadline = deadline
        self.timeout = timeout
        self.unavailable: str | None = None
        self._answered = False
        servers = parse_dns_servers(dns_servers)
        if servers:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
            self.where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in servers)
        else:
            self.where = "the system's DNS servers"
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                self._resolver = dns.resolver.Resolver(configure=False)
                self.unavailable = "this machine has no DNS server configured (/etc/resolv.conf); set dns_servers"
        self._resolver.cache = None  # each run asks afresh: a fix just published must show

    def txt(self, name: str) -> list[str]:
        """The TXT records at ``name``, each one's strings joined; [] when there are none."""
        answer = self._query(name, dns.rdatatype.TXT)
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer if isinstance(r, TXT)]

    def mx(self, name: str) -> list[tuple[int, str]]:
        """The MX records at ``name`` as (preference, host), lowest first; a null MX has host ""."""
        answer = self._query(name, dns.rdatatype.MX)
        return sorted(
            (r.preference, "" if r.exchange == dns.name.root else r.exchange.to_text(omit_final_dot=True))
            for r in answer
            if isinstance(r, MX)
        )

    def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[dns.rdata.Rdata]:
        if self.unavailable:
            raise DNSUnavailable(self.unavailable)
        lifetime = self.deadline.cap(self.timeout)
        if lifetime < 0.1:
            raise DNSUnavailable("the doctor ran out of time before this lookup")
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise DNSFailure(f"{name!r} is not a valid DNS name ({exc})") from None
        try:
            answer = self._resolver.resolve(qname, rdtype, lifetime=lifetime, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            self._answered = True
            return []
        except dns.resolver.LifetimeTimeout:
            reason = f"no DNS server answered within {lifetime:.2g} s ({self.where})"
            if not self._answered:
                self.unavailable = f"{reason}; is this machine offline?"
            raise DNSUnavailable(reason) from None
        except dns.resolver.NoNameservers as exc:
            errors = exc.kwargs.get("errors") or []
            if errors and all(isinstance(error[3], OSError) for error in errors):
                reason = f"no DNS server could be reached ({self.where}: {errors[0][3]})"
                if not self._answered:
                    self.unavailable = f"{reason}; is this machine offline?"
                raise DNSUnavailable(reason) from None
            self._answered = True
            raise DNSFailure(f"the DNS servers answered {name} with an error") from None
        except dns.exception.DNSException as exc:
            raise DNSFailure(f"looking up {name} failed: {exc}") from None
        self._answered = True
        return list(answer)
