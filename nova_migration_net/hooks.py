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

import netaddr
from nova import exception
from nova.virt.libvirt import guest as libvirt_guest
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

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

# libvirt's VIR_MIGRATE_PARAM_TLS_DESTINATION, new in libvirt 6.0.0: the
# host name QEMU verifies the destination's certificate against, whatever
# address the migration stream goes to.
TLS_DESTINATION = 'tls.destination'
MIN_LIBVIRT_TLS_DESTINATION = (6, 0, 0)

# How the source steers a migration to the destination's migration IP; see
# plane_mode().
PLANE_CONNECT_ADDR = 'connect-addr'
PLANE_TLS_DESTINATION = 'tls-destination'
PLANE_STOCK_TLS = 'stock-tls'


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
    """Source: stream to the migration IP the destination advertised.

    Without ``[libvirt] live_migration_with_native_tls`` the address goes
    into ``target_connect_addr``, which nova's own
    ``_live_migration_operation`` turns into ``qemu+SCHEME://ADDR/system``
    and ``tcp://ADDR`` (IPv6 bracketed; no ``migrate_uri`` when tunnelled).
    With native TLS the libvirt connection stays on the destination's
    hostname and :class:`LiveMigrationOperation` sends the data to the
    address (see :func:`plane_mode`).

    When libvirt cannot connect to the migration IP at all, nova's monitor
    has already rolled the migration back (the guest runs here, whole, and
    the migration record is ``failed``), but ``LibvirtDriver._live_migration``
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
        mode = plane_mode(call.arguments['self'], address)
        plane, reason = records.PLANE_MIGRATION, None
        if mode == PLANE_TLS_DESTINATION:
            # The connection stays on the hostname, so the certificate
            # libvirt and QEMU verify is the one the hostname has;
            # LiveMigrationOperation sends the data to the migration IP.
            # The migration IP wins over live_migration_inbound_addr here
            # as it does without native TLS.
            if ('target_connect_addr' in migrate_data and
                    migrate_data.target_connect_addr is not None):
                migrate_data.target_connect_addr = None
            LOG.info('Live migration to %(dest)s streams over the migration '
                     'plane to %(address)s, the destination\'s '
                     'my_live_migration_ip; native TLS verifies the '
                     'destination\'s certificate against its hostname '
                     '%(dest)s (libvirt connection on %(dest)s, '
                     'tls.destination %(dest)s).%(others)s',
                     {'dest': dest, 'address': address,
                      'others': _others(migrate_data)}, instance=instance)
        elif mode == PLANE_STOCK_TLS:
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
                             MIN_LIBVIRT_TLS_DESTINATION),
                         'found': versionutils.convert_version_to_str(
                             call.arguments['self']._host.get_connection()
                             .getLibVersion())},
                        instance=instance)
        elif mode == PLANE_CONNECT_ADDR:
            migrate_data.target_connect_addr = str(address)
            LOG.info('Live migration to %(dest)s streams over the migration '
                     'plane to %(address)s, the destination\'s '
                     'my_live_migration_ip.%(others)s',
                     {'dest': dest, 'address': address,
                      'others': _others(migrate_data)}, instance=instance)
        elif (migrate_data is not None and
                'target_connect_addr' in migrate_data and
                migrate_data.target_connect_addr is not None):
            plane, reason = (records.PLANE_INBOUND_ADDR,
                             records.REASON_NOT_ADVERTISED)
            address = migrate_data.target_connect_addr
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
        records.source(call.arguments['context'], instance, dest,
                       migrate_data, plane,
                       dest if plane == records.PLANE_MANAGEMENT
                       else str(address), reason)

    def error(self, call, exc):
        migrate_data = call.arguments['migrate_data']
        mode = plane_mode(call.arguments['self'],
                          objects.migration_ip_of(migrate_data))
        if mode not in (PLANE_CONNECT_ADDR, PLANE_TLS_DESTINATION):
            return False
        # The address the last attempt went to: the error is about it.
        failed = attempts_of(migrate_data)
        address = (failed[-1][0] if failed
                   else objects.migration_ip_of(migrate_data))
        records.failure(call.arguments['context'], call.arguments['instance'],
                        call.arguments['dest'], migrate_data, str(address),
                        exc)
        libvirt = _libvirt()
        if libvirt is None or not isinstance(exc, libvirt.libvirtError):
            return False
        kind = failures.classify(
            exc, address, libvirt,
            connection_to_address=mode == PLANE_CONNECT_ADDR)
        if kind is None:
            return False
        dest, instance = call.arguments['dest'], call.arguments['instance']
        values = {'dest': dest, 'address': address, 'error': exc,
                  'check': _CHECK % {'dest': dest, 'address': address}}
        values['which'] = 'the destination\'s my_live_migration_ip'
        if kind == failures.CONNECT and len(failed) > 1:
            # One line for the whole migration: every address, and why.
            values['address'] = ', '.join(str(a) for a, _ in failed)
            values['which'] = ('each of the destination\'s migration '
                               'addresses, in turn')
            values['error'] = '; '.join('%s: %s' % (a, e) for a, e in failed)
            values['check'] = _CHECK % {'dest': dest,
                                        'address': values['address']}
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


def plane_mode(driver, address):
    """How the source ``driver`` migrates to the migration IP ``address``.

    - None: no migration IP; nova as stock.
    - :data:`PLANE_CONNECT_ADDR`: no native TLS. The address goes into
      ``target_connect_addr``: libvirt connection and data to the address.
    - :data:`PLANE_TLS_DESTINATION`: native TLS, and libvirt has
      ``tls.destination``. The libvirt connection stays on the hostname,
      only ``migrate_uri`` (QEMU's stream, and the NBD disk copy that
      follows its host) goes to the address, and ``tls.destination`` makes
      QEMU verify the hostname. Certificates need not carry the address.
    - :data:`PLANE_STOCK_TLS`: native TLS, but this host's libvirt is too
      old for ``tls.destination``; the migration runs as stock nova.

    Depends on this host's configuration and libvirt only, so the hooks of
    one migration, asking in turn, get the same answer.
    """
    if address is None:
        return None
    if not CONF.libvirt.live_migration_with_native_tls:
        return PLANE_CONNECT_ADDR
    if driver._host.has_min_version(lv_ver=MIN_LIBVIRT_TLS_DESTINATION):
        return PLANE_TLS_DESTINATION
    return PLANE_STOCK_TLS


class _TLSDestinationDomain:
    """A libvirt domain whose ``migrateToURI3`` adds ``tls.destination``.

    Everything else is the wrapped domain's.
    """

    def __init__(self, domain, tls_destination):
        self._domain = domain
        self._tls_destination = tls_destination

    def __getattr__(self, name):
        if name == '_domain':
            # Not set yet: a copy or an unpickled object under construction.
            raise AttributeError(name)
        return getattr(self._domain, name)

    def migrateToURI3(self, dconnuri, params, flags):
        params = dict(params)
        params[TLS_DESTINATION] = self._tls_destination
        return self._domain.migrateToURI3(dconnuri, params=params,
                                          flags=flags)


class _PlaneGuest(libvirt_guest.Guest):
    """The migrating guest as ``_live_migration_operation`` gets it.

    nova's own ``Guest``, on the same domain, whose ``migrate`` tries the
    destination's migration addresses in order: it moves to the next one
    only when libvirt could not connect to one at all (a
    :data:`failures.CONNECT` error: libvirt makes its connections before
    the migration job starts, so nothing of the instance was sent). nova
    still builds every other parameter and the flags; the URIs of each
    attempt are built by nova's own ``_live_migration_uri`` and
    ``_migrate_uri``. Every attempt's address and error is kept on the
    migration data for :meth:`LiveMigration.error`.
    """

    def __init__(self, guest, driver, dest, migrate_data, mode):
        domain = guest._domain
        if mode == PLANE_TLS_DESTINATION:
            domain = _TLSDestinationDomain(domain, dest)
        super().__init__(domain)
        self._driver = driver
        self._dest = dest
        self._migrate_data = migrate_data
        self._mode = mode

    def _uris(self, address, destination, migrate_uri):
        """libvirt's connection URI and ``migrate_uri`` to ``address``."""
        if self._mode == PLANE_TLS_DESTINATION:
            # The connection stays on the hostname; only the data moves.
            return destination, self._driver._migrate_uri(str(address))
        return (self._driver._live_migration_uri(str(address)),
                # None when tunnelled: the data follows the connection.
                None if migrate_uri is None
                else self._driver._migrate_uri(str(address)))

    def migrate(self, destination, migrate_uri=None, **kwargs):
        libvirt = _libvirt()
        addresses = objects.migration_addresses_of(self._migrate_data)
        failed = attempts_of(self._migrate_data)
        for number, address in enumerate(addresses):
            dconnuri, uri = self._uris(address, destination, migrate_uri)
            try:
                result = super().migrate(dconnuri, migrate_uri=uri, **kwargs)
            except libvirt.libvirtError as exc:
                failed.append((address, exc))
                last = number == len(addresses) - 1
                if last or failures.classify(
                        exc, address, libvirt,
                        connection_to_address=self._mode ==
                        PLANE_CONNECT_ADDR) != failures.CONNECT:
                    raise
                LOG.warning('Live migration to %(dest)s: libvirt could not '
                            'connect to %(address)s, the destination\'s '
                            'migration address %(number)d of %(count)d '
                            '(%(error)s); nothing was sent, trying '
                            '%(next)s.',
                            {'dest': self._dest, 'address': address,
                             'number': number + 1, 'count': len(addresses),
                             'error': exc, 'next': addresses[number + 1]})
                continue
            if number and self._mode == PLANE_CONNECT_ADDR:
                self._migrate_data.target_connect_addr = str(address)
            return result


# Where a migration's failed attempts are kept: an attribute of its own
# LibvirtLiveMigrateData, never serialized (not a field).
_ATTEMPTS = '_migration_net_failed_attempts'


def attempts_of(migrate_data):
    """``[(address, libvirtError)]`` of the migration's failed attempts."""
    failed = getattr(migrate_data, _ATTEMPTS, None)
    if failed is None:
        failed = []
        setattr(migrate_data, _ATTEMPTS, failed)
    return failed


def _others(migrate_data):
    """The log's words for the addresses after the first, if any."""
    later = objects.migration_addresses_of(migrate_data)[1:]
    if not later:
        return ''
    return (' If libvirt cannot connect to it, the next addresses are '
            'tried in order: %s.' % ', '.join(str(a) for a in later))


class LiveMigrationOperation:
    """Source: the data to the migration addresses, in order.

    Only when the destination advertised a migration address and this host
    streams to it (:data:`PLANE_CONNECT_ADDR` or
    :data:`PLANE_TLS_DESTINATION`); otherwise nova runs unchanged. With
    native TLS nova connects libvirt to the destination's hostname
    (``dest``) as stock; the guest nova migrates is given ``migrate_uri`` =
    ``tcp://<migration IP>`` (built by nova's own ``_migrate_uri``, IPv6
    bracketed) and ``tls.destination`` = ``dest``.
    """

    def pre(self, call):
        driver = call.arguments['self']
        migrate_data = call.arguments['migrate_data']
        addresses = objects.migration_addresses_of(migrate_data)
        mode = plane_mode(driver, addresses[0] if addresses else None)
        if mode == PLANE_CONNECT_ADDR and len(addresses) < 2:
            return
        if mode not in (PLANE_CONNECT_ADDR, PLANE_TLS_DESTINATION):
            return
        LOG.debug('Migrating to %(addresses)s in turn%(tls)s.',
                  {'addresses': ', '.join(str(a) for a in addresses),
                   'tls': ', with %s %s' % (TLS_DESTINATION,
                                            call.arguments['dest'])
                   if mode == PLANE_TLS_DESTINATION else ''},
                  instance=call.arguments['instance'])
        call.arguments['guest'] = _PlaneGuest(
            call.arguments['guest'], driver, call.arguments['dest'],
            migrate_data, mode)


def _libvirt():
    """The driver module's libvirt: the real one, or nova's fake in tests."""
    from nova.virt.libvirt import driver as libvirt_driver
    return libvirt_driver.libvirt
