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

r"""
nova-migration-net's ``oslo.config`` driver: how a nova service turns it on.

nova has no extension point around the libvirt driver's live migration
calls, so the plugin hooks in where every oslo service looks for extensions
while it parses its configuration: the sources listed in ``[DEFAULT]
config_source``. A nova-compute whose configuration names a group with
``driver = nova_migration_net`` activates the plugin when it loads its
libvirt driver::

    [DEFAULT]
    config_source = migration_net
    my_live_migration_ip = 172.168.1.15

    [migration_net]
    driver = nova_migration_net

Many programs parse the same ``nova.conf``, and oslo.config opens every
source at each parse: nova 34's early parse of ``[DEFAULT]
concurrency_backend`` (before it decides on eventlet monkey patching),
privsep-helper, nova-manage, nova-status, oslo-config-generator and the
other nova services. Opening the source therefore registers the plugin's
options and nothing more: it imports no nova module, no eventlet and not
even oslo.log (which imports ``oslo_context``, a module nova wants imported
only after monkey patching). Only the process's own configuration,
oslo.config's global ``cfg.CONF`` that nova's services parse, also arms
activation (:func:`nova_migration_net.activation.arm`), which waits for nova
to instantiate ``LibvirtDriver``.

A host with these lines but without the package installed gets an
oslo.config error ("could not load configuration from 'migration_net'"), and
nova 34 services that log their options at start-up (nova-compute in
threading mode, nova-api) stop on the group's unknown ``driver``: install the
package before adding the lines.

The source also gives ``[DEFAULT] my_live_migration_ip`` to hosts whose
files do not set it, from an ordered list of networks, so that every compute
host can share one configuration::

    [migration_net]
    driver = nova_migration_net
    migration_networks = 172.168.0.0/16, fd00:30::/64

oslo.config asks its sources only after the command line, the environment
and the configuration files (``ConfigOpts._do_get``), so an explicit
``my_live_migration_ip`` always wins over the networks.

.. autoclass:: MigrationNetDriver
.. autoclass:: MigrationNetSource
"""

import ipaddress
# Not oslo_log: it imports oslo_context, which must not be imported before
# nova's eventlet monkey patching. oslo.log's handlers take this logger's
# records once the service has set logging up.
import logging
import socket
import weakref

import netaddr
from oslo_config import cfg
from oslo_config import sources
from oslo_config import types
import psutil

from nova_migration_net import conf as migration_net_conf

LOG = logging.getLogger(__name__)

# The group name the documentation and the sample use. Operators may name the
# group anything; it is whatever [DEFAULT] config_source lists.
DEFAULT_GROUP = 'migration_net'

# id(ConfigOpts) -> the MigrationNetSource it opened last (ConfigOpts is a
# Mapping, so not hashable): see addresses_from_networks().
_OPENED = weakref.WeakValueDictionary()


class Network(types.ConfigType):
    """A network in CIDR notation, as a ``netaddr.IPNetwork``.

    Strict: the prefix length is required and the host bits must be zero,
    so ``172.168.1.15/16`` (an address, not a network) is refused.
    """

    def __init__(self, type_name='network value'):
        super().__init__(type_name=type_name)

    def __call__(self, value):
        if isinstance(value, netaddr.IPNetwork):
            return value
        text = str(value).strip()
        if '/' not in text:
            raise ValueError('%r is not a network in CIDR notation: give the '
                             'network address and the prefix length, for '
                             'example 172.168.0.0/16' % text)
        try:
            network = ipaddress.ip_network(text)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError('%r is not an IPv4 or IPv6 network in CIDR '
                                 'notation' % text)
            raise ValueError('%r has host bits set: the network is %s'
                             % (text, loose))
        return netaddr.IPNetwork(str(network))

    def __repr__(self):
        return 'Network'

    def __eq__(self, other):
        return self.__class__ == other.__class__

    def _formatter(self, value):
        return str(value)


source_opts = [
    cfg.ListOpt('migration_networks',
                item_type=Network(),
                default=[],
                help="""
The networks planned for live migrations, in order of preference.

Lets every compute host share one configuration: a host whose configuration
files do not set ``[DEFAULT] my_live_migration_ip`` uses, as that option,
the first of its own addresses in the first of these networks that holds
one (interfaces and their addresses in the order ``psutil.net_if_addrs()``
lists them). An explicit ``my_live_migration_ip`` always wins.

Such a host advertises to sources, in the list's order, its first address in
each of these networks that holds one; a source running nova-migration-net
tries them in that order. A host with an explicit ``my_live_migration_ip``
advertises that one address.

The networks are IPv4 or IPv6 networks in CIDR notation, host bits zero, for
example ``172.168.0.0/16`` or ``fd00:30::/64``. The address chosen is held to
the same rules as an explicit ``my_live_migration_ip``.

nova-compute refuses to start when none of the host's addresses is in any of
the networks, or when the chosen address is not usable (a loopback address,
for instance): a host that should stream migrations on the migration plane
does not silently fall back to the management network. Hosts that should not
use the migration plane must not list this option, or must set their own
``my_live_migration_ip``.

This option is read from the group named in ``[DEFAULT] config_source``
whose ``driver`` is ``nova_migration_net``, usually ``[migration_net]``.

Related options:

* ``[DEFAULT] my_live_migration_ip``: the per-host address; set, it wins.
* ``[DEFAULT] config_source``: must name this group.
* ``fallback_to_management``: what a source does when none of the
  addresses can be used.
"""),
    cfg.BoolOpt('fallback_to_management',
                default=False,
                help="""
Migrate over the management network when no migration address works.

A source host reads this option. When the destination advertises migration
addresses and the source can use none of them (each gave no answer within
1.5 s on the port libvirt connects to, or libvirt could not connect to it:
nothing of the instance was sent), the source by default fails the migration
and nova rolls it back: the instance keeps running on the source, and one
ERROR line lists each address and why it failed. With this option set, the
source then migrates to the destination's hostname (or its ``[libvirt]
live_migration_inbound_addr``) as stock nova would, logs a WARNING, and the
instance action event and notification say it fell back and why.

What it costs: that migration streams over the management network, the
traffic this plugin exists to keep off it; a wave of migrations during a
migration network outage then loads RPC and API traffic as stock nova does.
With ``[libvirt] live_migration_with_native_tls`` unset the stream is as
unencrypted there as on the migration network. A migration that failed
after memory was sent is never retried, with or without this option.

Related options:

* ``migration_networks``, ``[DEFAULT] my_live_migration_ip``: the addresses
  destinations advertise.
"""),
]


def list_opts():
    """The source's options for ``oslo-config-generator``.

    Listed under the group name the documentation uses; the group of a host
    is whichever ``[DEFAULT] config_source`` names.
    """
    return [(DEFAULT_GROUP, source_opts)]


class MigrationNetDriver(sources.ConfigurationSourceDriver):
    """Registers the plugin's options; arms activation in a nova service.

    Its group also holds ``migration_networks``: the networks from which a
    host without its own ``[DEFAULT] my_live_migration_ip`` takes that
    address.
    """

    def list_options_for_discovery(self) -> list:
        return source_opts

    def open_source_from_opt_group(self, conf, group_name: str):
        conf.register_opts(source_opts, group=group_name)
        migration_net_conf.register_opts(conf)
        if conf is cfg.CONF:
            # Imported on open, not on load: oslo.config loads every
            # installed driver in every service, nova or not.
            from nova_migration_net import activation
            activation.arm()
        return MigrationNetSource(conf, group_name)


class MigrationNetSource(sources.ConfigurationSource):
    """Gives ``[DEFAULT] my_live_migration_ip`` from ``migration_networks``.

    The address is chosen once, on the first lookup, and kept for the life
    of the process, as a value read from a file would be. When no address
    can be chosen, every lookup raises ``cfg.ConfigSourceValueError`` with
    one line saying why, which nova-compute's start-up check turns into
    ``nova.exception.InvalidConfiguration``. The source cannot tell whether
    the chosen address is reachable from other hosts.
    """

    def __init__(self, conf, group_name, interfaces=None):
        """:param conf: the ``ConfigOpts`` holding ``migration_networks``
        :param group_name: the group of this source
        :param interfaces: a function returning the host's interface table
            as ``psutil.net_if_addrs()`` does (the default)
        """
        self._conf = conf
        self._group = group_name
        self._interfaces = interfaces
        self._chosen = None
        self._advertised = []
        _OPENED[id(conf)] = self

    def get(self, group_name, option_name, opt):
        if (group_name not in (None, 'DEFAULT') or
                option_name != 'my_live_migration_ip'):
            return (sources._NoValue, None)
        if self._chosen is None:
            self._chosen = self._choose(opt)
        value, location, error = self._chosen
        if error is not None:
            raise cfg.ConfigSourceValueError(error)
        return (value, location)

    def _choose(self, opt):
        """``(value, location, error)`` for ``my_live_migration_ip``."""
        option = '[%s] migration_networks' % self._group
        # Every message names the option: nova-compute may fail on it while
        # logging its configuration, before its own start-up check.
        cannot = ('cannot choose [DEFAULT] my_live_migration_ip from %s'
                  % option)
        try:
            networks = self._conf[self._group].migration_networks
        except ValueError as err:
            return (None, None,
                    '%s: %s' % (cannot, ' '.join(str(err).split())))
        if not networks:
            return (sources._NoValue, None, None)
        listed = ', '.join(str(n) for n in networks)
        try:
            table = (psutil.net_if_addrs() if self._interfaces is None
                     else self._interfaces())
        except OSError as err:
            return (None, None, '%s (%s): cannot list the interfaces of this '
                    'host: %s' % (cannot, listed, err))
        matches = choose_addresses(networks, table)
        if not matches:
            local = ', '.join(str(a) for _, a in local_addresses(table))
            return (None, None,
                    '%s (%s): none of the addresses of this host (%s) is in '
                    'these networks; add the migration network of this host '
                    'to the list, or set my_live_migration_ip on this host'
                    % (cannot, listed, local or 'none'))
        address, network, interface = matches[0]
        problem = _problem(opt, address)
        if problem is not None:
            return (None, None, '%s (%s): the first address in %s is %s, of '
                    'interface %s, and %s' % (cannot, listed, network,
                                              address, interface, problem))
        detail = '%s %s, interface %s' % (option, network, interface)
        LOG.info('[DEFAULT] my_live_migration_ip is %(address)s, of interface '
                 '%(interface)s: the first address of this host in '
                 '%(network)s, from %(option)s.',
                 {'address': address, 'interface': interface,
                  'network': network, 'option': option})
        self._advertised = [str(address)]
        for address, network, interface in matches[1:]:
            problem = _problem(opt, address)
            if problem is not None:
                LOG.warning('%(option)s: this host does not advertise '
                            '%(address)s, of interface %(interface)s, its '
                            'first address in %(network)s: %(problem)s.',
                            {'option': option, 'address': address,
                             'interface': interface, 'network': network,
                             'problem': problem})
                continue
            self._advertised.append(str(address))
        if len(self._advertised) > 1:
            LOG.info('Live migrations to this host are offered, in this '
                     'order, %(addresses)s, from %(option)s.',
                     {'addresses': ', '.join(self._advertised),
                      'option': option})
        return (self._advertised[0],
                cfg.LocationInfo(cfg.Locations.user, detail), None)


def _problem(opt, address):
    """Why ``address`` cannot be ``opt``'s value, or None."""
    try:
        opt.type(str(address))
    except ValueError as err:
        return getattr(err, 'reason', None) or str(err)
    return None


def addresses_from_networks(conf):
    """The addresses ``conf``'s source chose from ``migration_networks``.

    In the list's order, the first being ``[DEFAULT] my_live_migration_ip``;
    empty when no source of ``conf`` gave that option (unset, or set in a
    file, which wins over the networks).
    """
    source = _OPENED.get(id(conf))
    if source is None or source._conf is not conf:
        return []
    return list(source._advertised)


def option(conf, name, default):
    """Option ``name`` of the group ``conf``'s plugin source was opened for.

    ``default`` when no source of the plugin was opened on ``conf``.
    """
    source = _OPENED.get(id(conf))
    if source is None or source._conf is not conf:
        return default
    return conf[source._group][name]


def local_addresses(table):
    """``(interface, netaddr.IPAddress)`` of an interface table, in order.

    :param table: ``psutil.net_if_addrs()``; IPv6 zone indexes are dropped.
    """
    for name, addrs in table.items():
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                yield name, netaddr.IPAddress(addr.address.split('%', 1)[0])
            except (netaddr.AddrFormatError, ValueError):
                continue


def choose_addresses(networks, table):
    """The first local address in each network that holds one, in order.

    :param networks: ``netaddr.IPNetwork`` objects, in order of preference
    :param table: the interface table, as ``psutil.net_if_addrs()`` returns
    :returns: ``(address, network, interface)`` tuples, an address at most
        once (networks may overlap); empty when no local address is in any
        of the networks
    """
    local = list(local_addresses(table))
    chosen = []
    for network in networks:
        for name, address in local:
            if address.version == network.version and address in network:
                if address not in [a for a, _, _ in chosen]:
                    chosen.append((address, network, name))
                break
    return chosen
