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
setup.cfg). A hook has any of ``pre(call)``, run before the method,
``post(call, rv)``, run after it returned and returning the method's result,
and ``error(call, exc)``, run when the method raised ``exc``: it returns True
to end the call as if the method had returned None, anything else lets
``exc`` propagate unchanged (``post`` does not run then). ``call`` is the
method's :class:`inspect.BoundArguments`, defaults applied.

The hooks keep no state: everything a migration needs travels in its own
``LibvirtLiveMigrateData``.
"""

import netaddr
from nova import exception
from oslo_config import cfg
from oslo_log import log as logging
import psutil

from nova_migration_net import addresses
from nova_migration_net import objects

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


def configured_migration_ip(conf=CONF):
    """This host's ``my_live_migration_ip``, or None.

    :raises nova.exception.InvalidConfiguration: the value is not a usable
        migration address; the one-line message names the option, the
        value (quoted) and why.
    """
    try:
        return conf.my_live_migration_ip
    except cfg.ConfigSourceValueError as err:
        # oslo.config raises this while handling the type's ValueError.
        cause = err.__context__
        while cause is not None and not isinstance(cause,
                                                   addresses.InvalidAddress):
            cause = cause.__context__
        if cause is None:
            detail = ': %s' % ' '.join(err.msg.split())
        else:
            detail = ' %s: %s' % (addresses.quote(cause.value), cause.reason)
        raise exception.InvalidConfiguration(
            'Invalid [DEFAULT] my_live_migration_ip%s' % detail)


def _same_address(host, address):
    """Whether ``host`` (an IP or a name) is the IP ``address``."""
    try:
        return netaddr.IPAddress(host) == netaddr.IPAddress(address)
    except (netaddr.AddrFormatError, ValueError):
        return False


def _check_interfaces(address):
    """Refuse or warn when ``address`` is not one of this host's own.

    Reads the interface table only (``psutil.net_if_addrs()``); it cannot
    tell whether a source can reach the address.
    """
    try:
        interfaces = psutil.net_if_addrs()
    except OSError as err:
        LOG.warning('Cannot list the interfaces of this host to check '
                    '[DEFAULT] my_live_migration_ip %(address)s: %(err)s',
                    {'address': address, 'err': err})
        return
    problem = addresses.interface_problem(netaddr.IPAddress(address),
                                          interfaces)
    if problem is None:
        return
    refuse, reason = problem
    if refuse:
        raise exception.InvalidConfiguration(
            'Invalid [DEFAULT] my_live_migration_ip %s: %s'
            % (addresses.quote(address), reason))
    LOG.warning('[DEFAULT] my_live_migration_ip %(address)s: %(reason)s. '
                'Sources running nova-migration-net will connect to it, and '
                'live migrations to this host fail (and are rolled back) '
                'until an interface has it.',
                {'address': address, 'reason': reason})


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
        _check_interfaces(address)
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

    When libvirt fails such a migration, nova's monitor has already rolled
    it back (the guest runs here, the migration record is ``failed``), but
    ``LibvirtDriver._live_migration`` re-raises libvirt's error and the
    compute manager would then put the instance into ERROR. :meth:`error`
    ends the call there instead, leaving nova's rollback as the outcome.
    Failures of migrations that did not use the migration plane, and any
    failure nova did not roll back, keep nova's own handling.
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

    def error(self, call, exc):
        migrate_data = call.arguments['migrate_data']
        address = objects.migration_ip_of(migrate_data)
        if address is None or not _is_libvirt_error(exc):
            return False
        migration = (migrate_data.migration
                     if migrate_data.obj_attr_is_set('migration') else None)
        # _rollback_live_migration sets 'failed' as its last step; any other
        # status means nova did not finish rolling back.
        if migration is None or migration.status != 'failed':
            return False
        LOG.error('Live migration to %(dest)s over the migration plane '
                  'failed: libvirt could not migrate to %(address)s, the '
                  'destination\'s my_live_migration_ip (%(error)s). The '
                  'migration was rolled back; the instance keeps running on '
                  'this host. Check that %(address)s is assigned to an '
                  'interface of %(dest)s, that this host can reach it '
                  '(routes, firewall), and that libvirtd and the QEMU '
                  'migration ports on %(dest)s accept connections on it.',
                  {'dest': call.arguments['dest'], 'address': address,
                   'error': exc}, instance=call.arguments['instance'])
        return True


def _is_libvirt_error(exc):
    # The driver module's libvirt: the real one, or nova's fake in tests.
    from nova.virt.libvirt import driver as libvirt_driver
    libvirt = libvirt_driver.libvirt
    return libvirt is not None and isinstance(exc, libvirt.libvirtError)
