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

"""The plugin's one option, ``[DEFAULT] my_live_migration_ip``."""

from oslo_config import cfg
from oslo_config import types

from nova_migration_net import addresses


class MigrationAddress(types.IPAddress):
    """oslo.config's IP address type, held to :func:`addresses.parse`.

    Refuses, besides what is not an IP address, the addresses no peer can
    connect to. The error names the value quoted, so a multi-line value in a
    config file still makes a one-line message.
    """

    def __call__(self, value):
        value = str(value)
        addresses.parse(value)
        return value


migration_net_opts = [
    cfg.Opt('my_live_migration_ip',
            type=MigrationAddress(),
            default=None,
            sample_default='<migration plane IP of this host>',
            help="""
The IP address on which this host receives live migrations.

Set it on a compute host that has an interface on a network planned for live
migrations only. When this host is the destination of a live migration, it
hands this address to the source in the live migration data, and the source
connects to it for the libvirt connection and the QEMU migration stream
instead of this host's hostname. The migration traffic then stays off the
management network, so RPC, API and other tenants' traffic are not slowed
down by many concurrent migrations.

The address is only used when the source host runs nova-migration-net too;
a source without the plugin migrates to the hostname as nova always did.
Leaving the option unset keeps nova's own behaviour for migrations to this
host.

Possible values:

* None (default): migrations to this host use its hostname, or
  ``[libvirt] live_migration_inbound_addr`` when that is set.
* An IPv4 or IPv6 address assigned to an interface of this host, for example
  ``172.168.1.15`` or ``fd00:30::15``. IPv6 addresses are bracketed in the
  URIs by nova.

nova-compute refuses to start when the value is not an IP address (a host
name, a network in CIDR notation, an IPv6 address with a zone index, an empty
value), or when it is an address no source can connect to: the unspecified
address (``0.0.0.0``, ``::``), a loopback, multicast or broadcast address
(``255.255.255.255`` or the broadcast address of a local network), or an IPv6
link-local address, which needs a zone index a URI cannot carry. It warns,
and starts, when the address is not assigned to any interface of this host:
the interface may come up later, but until it does, migrations to this host
fail and are rolled back.

Related options:

* ``[libvirt] live_migration_inbound_addr``: nova's own per-host migration
  address. When both are set, sources running this plugin use
  ``my_live_migration_ip`` and sources without it use
  ``live_migration_inbound_addr``; the compute service logs a warning at
  start-up when the two differ.
* ``[libvirt] live_migration_scheme``, ``live_migration_with_native_tls`` and
  ``live_migration_tunnelled``: applied to the migration address exactly as
  nova applies them to the hostname.
* ``[DEFAULT] config_source``: this option only takes effect on a host whose
  ``config_source`` names a group with ``driver = nova_migration_net``.
"""),
]


def register_opts(conf):
    conf.register_opts(migration_net_opts)


def list_opts():
    """The options for ``oslo-config-generator`` (``oslo.config.opts``)."""
    return [('DEFAULT', migration_net_opts)]
