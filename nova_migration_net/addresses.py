# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""What the plugin accepts as a migration address.

One rule for the option and for the value a peer sends in the live
migration data: the text form of one IPv4 or IPv6 address that another host
can connect to. A source puts the address into libvirt URIs, so anything
else (a host name, a port, brackets, a zone index, URI syntax, whitespace) is
refused before any URI is built.

This module cannot tell whether the address belongs to the host that
advertises it, nor whether it is reachable: see
:func:`interface_problem` for the start-up check of the local interfaces.
"""

import ipaddress
import re
import socket

import netaddr

# The longest text form of an IP address: an IPv6 address with an embedded
# IPv4 part, 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255'.
MAX_LENGTH = 45
_CHARACTERS = frozenset('0123456789abcdefABCDEF:.')
# Mistakes worth a precise message: '172.168.1.15/16', 'fe80::1%eth0'.
_CIDR = re.compile(r'[0-9a-fA-F:.]+/[0-9]{1,3}')
_ZONE = re.compile(r'[0-9a-fA-F:.]+%[0-9A-Za-z_.-]+')
# How much of a refused value an error message quotes.
_QUOTE_LENGTH = 80


class InvalidAddress(ValueError):
    """A value that is not a usable migration address.

    The message quotes the value with :func:`quote`, so a hostile value
    cannot forge log lines or flood a log.
    """

    def __init__(self, value, reason, name=None):
        self.value = value
        self.reason = reason
        subject = quote(value) if name is None else '%s %s' % (name,
                                                               quote(value))
        super().__init__('%s is not a usable migration address: %s'
                         % (subject, reason))


def quote(value):
    """``value`` for a log line: repr'd (escaped), at most 80 characters."""
    text = repr(value)
    if len(text) > _QUOTE_LENGTH:
        text = '%s...(%d characters)' % (text[:_QUOTE_LENGTH], len(text))
    return text


def _syntax_problem(value):
    if not isinstance(value, str):
        return 'an IP address must be a string, not %s' % type(value).__name__
    if not value:
        return 'it is empty'
    if len(value) > MAX_LENGTH:
        return ('it is %d characters long, longer than any IP address'
                % len(value))
    if _CIDR.fullmatch(value):
        return ('it is a network in CIDR notation; give the address alone, '
                'without a prefix length')
    if _ZONE.fullmatch(value):
        return ('it has an IPv6 zone index, which a peer cannot use; give '
                'an address of global or unique local scope')
    if not _CHARACTERS.issuperset(value):
        return ('it is not an IPv4 or IPv6 address (host names, ports, '
                'brackets and URIs are not accepted)')
    return None


def _scope_problem(ip):
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return _scope_problem(ip.ipv4_mapped)
    if ip.is_unspecified:
        return 'it is the unspecified address, which no peer can connect to'
    if ip.is_loopback:
        return ('it is a loopback address: a source would connect to '
                'itself')
    if ip.is_multicast:
        return 'it is a multicast address, which no peer can connect to'
    if ip.version == 4 and ip == ipaddress.IPv4Address('255.255.255.255'):
        return 'it is the broadcast address, which no peer can connect to'
    if ip.version == 6 and ip.is_link_local:
        return ('it is an IPv6 link-local address, which a peer can only '
                'reach with a zone index that a URI cannot carry')
    return None


def parse(value, name=None):
    """``value`` as a ``netaddr.IPAddress`` if it is a usable address.

    :param value: what the configuration or a peer provided
    :param name: the option or field the value came from, for the message
    :raises InvalidAddress: (a ``ValueError``) anything else; the message
        names ``name`` and the quoted value
    """
    reason = _syntax_problem(value)
    if reason is None:
        try:
            # The stdlib parser is strict (no leading zeros, no short or
            # numeric IPv4 forms) whatever the installed netaddr does.
            ip = ipaddress.ip_address(value)
        except ValueError:
            reason = 'it is not an IPv4 or IPv6 address'
        else:
            reason = _scope_problem(ip)
    if reason is not None:
        raise InvalidAddress(value, reason, name=name)
    return netaddr.IPAddress(value)


def same_address(host, address):
    """Whether ``host`` (an IP, or a name which never matches) is ``address``.

    Compares addresses, not text: ``FD00:30:0::15`` is ``fd00:30::15``.
    """
    try:
        return netaddr.IPAddress(host) == netaddr.IPAddress(address)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return False


def interface_problem(address, interfaces):
    """Why ``address`` is wrong for this host, from its interface table.

    :param address: a ``netaddr.IPAddress`` that :func:`parse` accepted
    :param interfaces: ``psutil.net_if_addrs()``: interface name -> list of
        ``(family, address, netmask, broadcast, ptp)``
    :returns: ``(refuse, reason)``, or ``None`` when ``address`` is
        assigned to an interface. ``refuse`` is True for the broadcast
        address of a local network; an address on no interface is only
        worth a warning, since interfaces may come up after nova-compute.
    """
    families = {socket.AF_INET: 4, socket.AF_INET6: 6}
    for name, addrs in sorted(interfaces.items()):
        for addr in addrs:
            if families.get(addr.family) != address.version:
                continue
            # psutil gives IPv6 link-local addresses with their zone:
            # 'fe80::1%eth0'.
            if same_address(addr.address.split('%', 1)[0], address):
                return None
            if addr.broadcast and same_address(addr.broadcast, address):
                return (True, 'it is the broadcast address of interface %s'
                        % name)
    return (False, 'it is not assigned to any interface of this host')
