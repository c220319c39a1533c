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

"""The hooks: the destination fills the migration IP, the source reads it.

Each hook wraps one method of nova's ``LibvirtDriver`` and is found through
the ``nova_migration_net.hooks`` entry point named after that method (see
setup.cfg). A hook has ``pre(call)``, run before the method, and/or
``post(call, rv)``, run after it and returning the method's result;
``call`` is the method's :class:`inspect.BoundArguments`, defaults applied.

The hooks keep no state: everything a migration needs travels in its own
``LibvirtLiveMigrateData``.
"""

import netaddr
from nova import exception
from oslo_config import cfg
from oslo_log import log as logging

from nova_migration_net import objects

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


def configured_migration_ip(conf=CONF):
    """This host's ``my_live_migration_ip``, or None.

    :raises nova.exception.InvalidConfiguration: the value is not an IP
        address; the message names the option and the value.
    """
    try:
        return conf.my_live_migration_ip
    except cfg.ConfigFileValueError as err:
        raise exception.InvalidConfiguration(
            'Invalid [DEFAULT] my_live_migration_ip: %s' % err.msg)


def _same_address(host, address):
    """Whether ``host`` (an IP or a name) is the IP ``address``."""
    try:
        return netaddr.IPAddress(host) == netaddr.IPAddress(address)
    except (netaddr.AddrFormatError, ValueError):
        return False


class InitHost:
    """Check the option when nova-compute starts, as nova checks its own."""

    def pre(self, call):
        address = configured_migration_ip()
        inbound = CONF.libvirt.live_migration_inbound_addr
        if address is None:
            LOG.info('nova-migration-net is active; my_live_migration_ip is '
                     'unset, so live migrations to this host use its '
                     'hostname as stock nova does.')
            return
        LOG.info('nova-migration-net is active; live migrations from hosts '
                 'running the plugin will stream to this host at %s.',
                 address)
        if inbound and not _same_address(inbound, address):
            LOG.warning(
                'Both [DEFAULT] my_live_migration_ip (%(ip)s) and [libvirt] '
                'live_migration_inbound_addr (%(inbound)s) are set: sources '
                'running nova-migration-net stream to %(ip)s, sources '
                'without it to %(inbound)s. Set one of them, or both to the '
                'same address.', {'ip': address, 'inbound': inbound})


class PreLiveMigration:
    """Destination: put ``my_live_migration_ip`` into the migration data."""

    def post(self, call, migrate_data):
        address = configured_migration_ip()
        if address is None:
            return migrate_data
        LOG.debug('Advertising migration IP %s to the source.', address,
                  instance=call.arguments['instance'])
        if isinstance(migrate_data, objects.LibvirtLiveMigrateData):
            migrate_data.migration_ip = address
            return migrate_data
        return objects.LibvirtLiveMigrateData.from_stock(migrate_data,
                                                         address)


class LiveMigration:
    """Source: stream to the migration IP the destination advertised.

    The address goes into ``target_connect_addr``, which nova's own
    ``_live_migration_operation`` turns into ``qemu+SCHEME://ADDR/system``
    and ``tcp://ADDR`` (IPv6 bracketed; no ``migrate_uri`` when tunnelled).
    """

    def pre(self, call):
        migrate_data = call.arguments['migrate_data']
        instance = call.arguments['instance']
        dest = call.arguments['dest']
        address = objects.migration_ip_of(migrate_data)
        if address is not None:
            migrate_data.target_connect_addr = str(address)
            LOG.info('Live migration to %(dest)s streams over the migration '
                     'plane to %(address)s, the destination\'s '
                     'my_live_migration_ip.',
                     {'dest': dest, 'address': address}, instance=instance)
        elif (migrate_data is not None and
                'target_connect_addr' in migrate_data and
                migrate_data.target_connect_addr is not None):
            LOG.info('Live migration to %(dest)s streams to %(address)s, the '
                     'destination\'s [libvirt] live_migration_inbound_addr; '
                     'it advertised no my_live_migration_ip.',
                     {'dest': dest,
                      'address': migrate_data.target_connect_addr},
                     instance=instance)
        else:
            LOG.info('Live migration to %(dest)s streams over the management '
                     'plane to its hostname: the destination advertised no '
                     'my_live_migration_ip (unset there, or '
                     'nova-migration-net not installed there).',
                     {'dest': dest}, instance=instance)
