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

"""The hooks: the destination fills its migration addresses, the source
reads them.

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

import collections

import netaddr
from nova import exception
from nova.virt.libvirt import utils as libvirt_utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import versionutils
import psutil

from nova_migration_net import addresses
from nova_migration_net import config_source
from nova_migration_net import failures
from nova_migration_net import objects
from nova_migration_net import records
from nova_migration_net import steering

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


def advertised_addresses(conf=CONF):
    """The addresses this host advertises as a destination, in order.

    ``my_live_migration_ip`` first; when ``[migration_net]
    migration_networks`` gave it, then this host's first address in each
    later network that holds one. Empty when the option is unset.

    :raises nova.exception.InvalidConfiguration: as
        :func:`configured_migration_ip`
    """
    first = configured_migration_ip(conf)
    if first is None:
        return []
    chosen = config_source.addresses_from_networks(conf)
    if chosen and addresses.same_address(chosen[0], first):
        return chosen
    return [first]


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
        advertised = advertised_addresses()
        address = advertised[0] if advertised else None
        inbound = CONF.libvirt.live_migration_inbound_addr
        if address is None:
            LOG.info('nova-migration-net is active; my_live_migration_ip is '
                     'unset, so live migrations to this host use its '
                     'hostname as stock nova does.')
            return
        _check_interfaces(address)
        LOG.info('nova-migration-net is active; live migrations from hosts '
                 'running the plugin will stream to this host at %s.',
                 ', or else '.join(advertised))
        if inbound and not addresses.same_address(inbound, address):
            LOG.warning(
                'Both [DEFAULT] my_live_migration_ip (%(ip)s) and [libvirt] '
                'live_migration_inbound_addr (%(inbound)s) are set: sources '
                'running nova-migration-net stream to %(ip)s, sources '
                'without it to %(inbound)s. Set one of them, or both to the '
                'same address.', {'ip': address, 'inbound': inbound})
        carry_cold_migrations(address)


# Where a value the operator chose comes from.
_OPERATOR = (cfg.Locations.user, cfg.Locations.command_line,
             cfg.Locations.environment)


def inbound_addr_is_nova_default(conf=CONF):
    """Whether ``[libvirt] migration_inbound_addr`` is not the operator's:
    set in no file, command line or environment.
    """
    if 'migration_inbound_addr' not in conf.libvirt:
        return False  # A nova without the option.
    location = conf.get_location('migration_inbound_addr', 'libvirt')
    return location is not None and location.location not in _OPERATOR


def carry_cold_migrations(address, conf=CONF):
    """Make ``address`` this host's ``[libvirt] migration_inbound_addr``.

    nova 34 copies the disks of a cold migration, resize or evacuation to
    the destination's ``migration_inbound_addr`` (``get_host_ip_addr``;
    ``$my_ip``, the management address, by default), which the
    destination's resource tracker puts into the migration record. Unless
    the operator set that option, the migration address takes its place, so
    that one setting moves every migration's data. A value the operator
    set is left alone.

    :returns: True if the default was changed
    """
    if not inbound_addr_is_nova_default(conf):
        return False
    conf.set_default('migration_inbound_addr', str(address), group='libvirt')
    LOG.info('Cold migrations, resizes and evacuations to this host copy '
             'their disks to %s, its migration address: [libvirt] '
             'migration_inbound_addr is not set here, and the source hosts '
             'reach this host there over nova\'s ssh.', address)
    return True


class PreLiveMigration:
    """Destination: put this host's migration addresses into the data."""

    def post(self, call, migrate_data):
        advertised = advertised_addresses()
        if not advertised:
            records.destination(call.arguments['context'],
                                call.arguments['instance'], migrate_data)
            return migrate_data
        LOG.debug('Advertising migration addresses %s to the source.',
                  ', '.join(advertised), instance=call.arguments['instance'])
        if isinstance(migrate_data, objects.LibvirtLiveMigrateData):
            migrate_data.advertise(advertised)
            return migrate_data
        return objects.LibvirtLiveMigrateData.from_stock(migrate_data,
                                                         advertised)


class LiveMigration:
    """Source: stream to the migration addresses the destination advertised.

    Decides the plane and logs it; :class:`LiveMigrationOperation` then
    hands nova a guest that carries it out and records it
    (:mod:`nova_migration_net.steering`). Without ``[libvirt]
    live_migration_with_native_tls`` the first address goes into
    ``target_connect_addr``, which nova's own ``_live_migration_operation``
    turns into ``qemu+SCHEME://ADDR/system`` and ``tcp://ADDR`` (IPv6
    bracketed; no ``migrate_uri`` when tunnelled). With native TLS the
    libvirt connection stays on the destination's hostname and only the
    data goes to the address (see :func:`steering.plane_mode`).

    When libvirt could not connect to any address, nova's monitor has
    already rolled the migration back (the guest runs here, whole, and the
    migration record is ``failed``), but ``LibvirtDriver._live_migration``
    re-raises libvirt's error and the compute manager would then put the
    instance into ERROR. :meth:`error` ends the call there instead, leaving
    nova's rollback as the outcome. Every other failure keeps nova's own
    handling, ERROR included (see :mod:`nova_migration_net.failures`): one
    after memory was sent, in post-copy, after an abort or a timeout action,
    or not about the connection; the log names the migration IP only when
    the plane may be the cause.
    """

    def pre(self, call):
        migrate_data = call.arguments['migrate_data']
        instance = call.arguments['instance']
        dest = call.arguments['dest']
        address = objects.migration_ip_of(migrate_data)
        mode = steering.plane_mode(call.arguments['self'], address)
        stock_target = None
        if (migrate_data is not None and
                'target_connect_addr' in migrate_data):
            stock_target = migrate_data.target_connect_addr
        plane, reason = records.PLANE_MIGRATION, None
        if mode == steering.PLANE_TLS_DESTINATION:
            # The connection stays on the hostname, so the certificate
            # libvirt and QEMU verify is the one the hostname has;
            # LiveMigrationOperation sends the data to the migration IP.
            # The migration IP wins over live_migration_inbound_addr here
            # as it does without native TLS.
            if stock_target is not None:
                migrate_data.target_connect_addr = None
            LOG.info('Live migration to %(dest)s streams over the migration '
                     'plane to %(address)s, the destination\'s '
                     'my_live_migration_ip; native TLS verifies the '
                     'destination\'s certificate against its hostname '
                     '%(dest)s (libvirt connection on %(dest)s, '
                     'tls.destination %(dest)s).%(others)s',
                     {'dest': dest, 'address': address,
                      'others': _others(migrate_data)}, instance=instance)
        elif mode == steering.PLANE_STOCK_TLS:
            plane, reason = records.PLANE_MANAGEMENT, records.REASON_STOCK_TLS
            LOG.warning('Live migration to %(dest)s streams to its hostname '
                        'as stock nova does, not to %(address)s, the '
                        'destination\'s my_live_migration_ip: with [libvirt] '
                        'live_migration_with_native_tls, sending the stream '
                        'to the migration IP while TLS verifies the '
                        'hostname needs libvirt %(needed)s or later on this '
                        'host (tls.destination); it has %(found)s.',
                        {'dest': dest, 'address': address,
                         'needed': libvirt_utils.version_to_string(
                             steering.MIN_LIBVIRT_TLS_DESTINATION),
                         'found': versionutils.convert_version_to_str(
                             call.arguments['self']._host.get_connection()
                             .getLibVersion())},
                        instance=instance)
        elif mode == steering.PLANE_CONNECT_ADDR:
            migrate_data.target_connect_addr = str(address)
            LOG.info('Live migration to %(dest)s streams over the migration '
                     'plane to %(address)s, the destination\'s '
                     'my_live_migration_ip.%(others)s',
                     {'dest': dest, 'address': address,
                      'others': _others(migrate_data)}, instance=instance)
        elif stock_target is not None:
            plane, reason = (records.PLANE_INBOUND_ADDR,
                             records.REASON_NOT_ADVERTISED)
            address = stock_target
            LOG.info('Live migration to %(dest)s streams to %(address)s, the '
                     'destination\'s [libvirt] live_migration_inbound_addr; '
                     'it advertised no my_live_migration_ip.',
                     {'dest': dest, 'address': address}, instance=instance)
        else:
            plane, reason = (records.PLANE_MANAGEMENT,
                             records.REASON_NOT_ADVERTISED)
            LOG.info('Live migration to %(dest)s streams over the management '
                     'plane to its hostname: the destination advertised no '
                     'my_live_migration_ip (unset there, or '
                     'nova-migration-net not installed there).',
                     {'dest': dest}, instance=instance)
        if migrate_data is not None:
            setattr(migrate_data, _PLAN, Plan(
                mode, plane, dest if plane == records.PLANE_MANAGEMENT
                else str(address), reason, stock_target))

    def error(self, call, exc):
        migrate_data = call.arguments['migrate_data']
        # None when nova raised before the migration (an invalid hostname).
        plan = getattr(migrate_data, _PLAN, None)
        if plan is None or plan.mode not in (
                steering.PLANE_CONNECT_ADDR, steering.PLANE_TLS_DESTINATION):
            return False
        attempts = steering.attempts_of(migrate_data)
        if not attempts:
            return False
        libvirt = steering._libvirt()
        if libvirt is None or not isinstance(exc, libvirt.libvirtError):
            return False
        # The last attempt is the one the error is about.
        address = attempts[-1].address
        fell_back = steering.fell_back(migrate_data)
        kind = failures.classify(
            exc, address, libvirt,
            connection_to_address=(fell_back or
                                   plan.mode == steering.PLANE_CONNECT_ADDR))
        if kind is None:
            return False
        dest, instance = call.arguments['dest'], call.arguments['instance']
        values = {'dest': dest, 'address': address, 'error': exc,
                  'check': _CHECK % {'dest': dest, 'address': address}}
        values['which'] = ('the destination\'s hostname, after its migration '
                           'addresses' if fell_back else
                           'the destination\'s my_live_migration_ip')
        if kind == failures.CONNECT and len(attempts) > 1:
            # One line for the whole migration: every address, and why.
            tried = [a.address for a in attempts]
            values['address'] = ', '.join(tried)
            values['which'] = ('each of the destination\'s migration '
                               'addresses, in turn' +
                               (', then its hostname' if fell_back else ''))
            values['error'] = records.attempts_text(attempts)
            values['check'] = _CHECK % {
                'dest': dest, 'address': 'each of ' + values['address']}
        if kind == failures.TRANSPORT:
            LOG.error('Live migration to %(dest)s over the migration plane '
                      'failed on its connection to %(address)s, '
                      '%(which)s (%(error)s); '
                      'unless the migration was aborted, the migration plane '
                      'may be the cause. Part of the '
                      'instance may have been sent, so nova handles the '
                      'failure as it does without nova-migration-net. '
                      '%(check)s', values, instance=instance)
            return False
        migration = (migrate_data.migration
                     if migrate_data.obj_attr_is_set('migration') else None)
        if not _rolled_back_untouched(migration):
            LOG.error('Live migration to %(dest)s over the migration plane '
                      'failed: libvirt could not connect to %(address)s, '
                      '%(which)s (%(error)s). '
                      'nova did not report the migration rolled back before '
                      'any memory was sent, so it handles the failure as it '
                      'does without nova-migration-net. %(check)s', values,
                      instance=instance)
            return False
        LOG.error('Live migration to %(dest)s over the migration plane '
                  'failed: libvirt could not connect to %(address)s, '
                  '%(which)s (%(error)s). No '
                  'memory of the instance was sent and the migration was '
                  'rolled back; the instance keeps running on this host. '
                  '%(check)s', values, instance=instance)
        return True


# What LiveMigration decided, for LiveMigrationOperation and the error: an
# attribute of the migration's own data, never serialized (not a field).
_PLAN = '_migration_net_plan'
Plan = collections.namedtuple('Plan',
                              'mode plane address reason stock_target')

_CHECK = ('Check that %(address)s is assigned to an interface of %(dest)s, '
          'that this host can reach it (routes, firewall), and that '
          'libvirtd and the QEMU migration ports on %(dest)s accept '
          'connections on it.')


def _rolled_back_untouched(migration):
    """Whether nova rolled ``migration`` back before any memory was sent.

    ``_rollback_live_migration`` sets ``failed`` as its last step (any
    other status means it did not finish), and nova's monitor records the
    memory libvirt reported processed. An aborted migration's rollback
    ends in ``failed`` too, as libvirt reports no job once it is over: the
    error's kind, not this status, leaves aborts to nova.
    """
    if migration is None or migration.status != 'failed':
        return False
    return not (migration.obj_attr_is_set('memory_processed') and
                migration.memory_processed)


def _others(migrate_data):
    """The log's words for the addresses after the first, if any."""
    later = objects.migration_addresses_of(migrate_data)[1:]
    words = ''
    if later:
        words = (' If it cannot be reached, the next addresses are tried '
                 'in order: %s.' % ', '.join(str(a) for a in later))
    if steering.fallback_allowed():
        words += (' If no migration address can be used, the stream falls '
                  'back to the management network (fallback_to_management).')
    return words


class LiveMigrationOperation:
    """Source: nova's guest, given a migration to carry out and record.

    When the destination advertised migration addresses and this host
    streams to them (:data:`steering.PLANE_CONNECT_ADDR` or
    :data:`steering.PLANE_TLS_DESTINATION`), a
    :class:`steering.PlaneGuest` tries them in turn; otherwise a
    :class:`steering.RecordingGuest` migrates exactly as nova asked. With
    native TLS nova connects libvirt to the destination's hostname
    (``dest``) as stock; the guest sends ``migrate_uri`` =
    ``tcp://<migration IP>`` (built by nova's own ``_migrate_uri``, IPv6
    bracketed) and ``tls.destination`` = ``dest``.
    """

    def pre(self, call):
        migrate_data = call.arguments['migrate_data']
        plan = getattr(migrate_data, _PLAN, None)
        if plan is None or call.arguments['guest'] is None:
            return
        args = (call.arguments['guest'], call.arguments['context'],
                call.arguments['instance'], call.arguments['dest'],
                migrate_data)
        if plan.mode in (steering.PLANE_CONNECT_ADDR,
                         steering.PLANE_TLS_DESTINATION):
            call.arguments['guest'] = steering.PlaneGuest(
                *args, driver=call.arguments['self'], mode=plan.mode,
                addresses=objects.migration_addresses_of(migrate_data),
                stock_target=plan.stock_target)
        else:
            call.arguments['guest'] = steering.RecordingGuest(
                *args, plan=(plan.plane, plan.address, plan.reason))
