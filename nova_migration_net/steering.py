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

"""How the source steers one live migration's stream, attempt by attempt.

nova's ``_live_migration_operation`` builds every parameter of the migration
and hands them to ``Guest.migrate``; :class:`PlaneGuest` is the guest it
gets when the destination advertised migration addresses. It tries them in
order and moves to the next address only when nothing of the instance was
sent:

- before an attempt that has a next one (another address, or the management
  network with ``fallback_to_management``), a TCP connection to the port
  libvirt connects to on that address (:func:`probe`), given
  :data:`PROBE_TIMEOUT`. An address that drops packets silently would
  otherwise hold libvirt in the kernel's connect timeout for about two
  minutes. An answer, a refusal included, lets libvirt try the address;
- an attempt whose libvirt error is :data:`failures.CONNECT`: libvirt makes
  its connections before the migration job starts.

Any other error ends the migration as nova ends it. :class:`RecordingGuest`,
its base, writes the record of every migration the plugin sees, on the
plane or not, once libvirt returned or raised (:mod:`records`).
"""

import collections
import socket
import time
import urllib.parse

from nova.virt.libvirt import guest as libvirt_guest
from oslo_config import cfg
from oslo_log import log as logging

from nova_migration_net import config_source
from nova_migration_net import failures
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

# Seconds the probe of an address waits for an answer. A SYN lost once is
# sent again after 1 s (the kernel's initial RTO), so one loss still passes;
# with libvirt's own attempt failing fast on a refusal, no address costs
# much more than this before the next one is tried.
PROBE_TIMEOUT = 1.5

# libvirtd's ports by the transport of a connection URI (libvirt's
# remote driver: "qemu://host/system" is TLS).
_LIBVIRT_PORTS = {'': 16514, 'tls': 16514, 'tcp': 16509, 'ssh': 22,
                  'libssh': 22, 'libssh2': 22}


def _connect(address, timeout):
    """How the probe connects; a fake in the functional tests, whose
    addresses must never be connected to. Looked up at each call: green
    once eventlet patched ``socket``, whenever this module was imported.
    """
    return socket.create_connection(address, timeout=timeout)


# The outcome of the attempt that carried the migration.
USED = 'used'

Attempt = collections.namedtuple('Attempt', 'address outcome')


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


def libvirt_port(uri):
    """The TCP port libvirt connects to for connection ``uri``, or None."""
    parts = urllib.parse.urlsplit(uri)
    if parts.port:
        return parts.port
    transport = parts.scheme.partition('+')[2]
    return _LIBVIRT_PORTS.get(transport)


def probe(address, port, timeout=PROBE_TIMEOUT):
    """Why ``address`` gave no answer on TCP ``port``; None if it answered.

    A refused connection is an answer: the address is reachable, and
    libvirt's own attempt tells the rest. Green under eventlet, as nova's
    own sockets are.
    """
    try:
        with _connect((str(address), port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return None
    except TimeoutError:
        return 'no answer on port %d within %.1f s' % (port, timeout)
    except OSError as err:
        return '%s (port %d)' % (err.strerror or err, port)


# Where a migration's attempts are kept: an attribute of its own live
# migration data, never serialized (not a field).
_ATTEMPTS = '_migration_net_attempts'
_FELL_BACK = '_migration_net_fell_back'


def attempts_of(migrate_data):
    """The migration's :class:`Attempt` list, in order; kept on the data."""
    attempts = getattr(migrate_data, _ATTEMPTS, None)
    if attempts is None:
        attempts = []
        setattr(migrate_data, _ATTEMPTS, attempts)
    return attempts


def fell_back(migrate_data):
    """Whether the migration went on to the management network."""
    return getattr(migrate_data, _FELL_BACK, False)


def fallback_allowed():
    """``fallback_to_management`` of this process's plugin group."""
    return config_source.option(CONF, 'fallback_to_management', False)


class TLSDestinationDomain:
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


class RecordingGuest(libvirt_guest.Guest):
    """nova's ``Guest`` on the same domain, recording its migration.

    ``plan`` is ``(plane, address, reason)`` as the source decided it
    before the migration (see ``hooks.LiveMigration``). One record per
    migration, written when libvirt returned or raised: the attempts, the
    plane used and the transport libvirt was asked for.
    """

    def __init__(self, guest, context, instance, dest, migrate_data, plan):
        super().__init__(guest._domain)
        self._context = context
        self._instance = instance
        self._dest = dest
        self._migrate_data = migrate_data
        self._plan = plan
        self._transport = None

    def migrate(self, destination, migrate_uri=None, **kwargs):
        self._carry(destination, migrate_uri, kwargs, *self._plan)

    def _carry(self, dconnuri, migrate_uri, kwargs, plane, address, reason,
               domain=None):
        """The last attempt: :meth:`_call`, then the migration's record."""
        try:
            self._call(dconnuri, migrate_uri, kwargs, address, domain=domain)
        except Exception as exc:
            self._record(plane, address, reason, exc)
            raise
        self._record(plane, address, reason)

    def _call(self, dconnuri, migrate_uri, kwargs, address, domain=None):
        """One ``migrateToURI3``, its :class:`Attempt` kept; raises its
        error.
        """
        self._transport = records.Transport.of(
            dconnuri, kwargs.get('flags', 0), kwargs.get('parallel', 0),
            self._tls_name(dconnuri, domain), _libvirt())
        # nova's own Guest.migrate, looked up as nova's call would.
        guest = super() if domain is None else libvirt_guest.Guest(domain)
        attempts = attempts_of(self._migrate_data)
        try:
            guest.migrate(dconnuri, migrate_uri=migrate_uri, **kwargs)
        except Exception as exc:
            attempts.append(Attempt(str(address), str(exc)))
            raise
        attempts.append(Attempt(str(address), USED))

    def _record(self, plane, address, reason, error=None):
        records.source(self._context, self._instance, self._dest,
                       self._migrate_data, plane, str(address), reason,
                       transport=self._transport,
                       attempts=attempts_of(self._migrate_data), error=error)

    def _tls_name(self, dconnuri, domain):
        """The name native TLS verifies: the connection URI's host."""
        return urllib.parse.urlsplit(dconnuri).hostname


class PlaneGuest(RecordingGuest):
    """The guest of a migration to the destination's migration addresses.

    Tries them in order (see the module's documentation); nova still builds
    every other parameter and the flags, and each attempt's URIs are built
    by nova's own ``_live_migration_uri`` and ``_migrate_uri``. With
    ``mode`` :data:`PLANE_TLS_DESTINATION` the domain adds
    ``tls.destination``; the fallback to the management network uses the
    plain domain, as stock nova would.
    """

    def __init__(self, guest, context, instance, dest, migrate_data, driver,
                 mode, addresses, stock_target):
        """:param stock_target: where stock nova would have migrated: the
            destination's ``live_migration_inbound_addr``, or None for its
            hostname
        """
        super().__init__(guest, context, instance, dest, migrate_data, None)
        self._stock_domain = guest._domain
        if mode == PLANE_TLS_DESTINATION:
            self._domain = TLSDestinationDomain(guest._domain, dest)
        self._driver = driver
        self._mode = mode
        self._addresses = addresses
        self._stock_target = stock_target

    def _tls_name(self, dconnuri, domain):
        if domain is None and self._mode == PLANE_TLS_DESTINATION:
            return self._dest
        return super()._tls_name(dconnuri, domain)

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
        attempts = attempts_of(self._migrate_data)
        fallback = fallback_allowed()
        count = len(self._addresses)
        for number, address in enumerate(self._addresses):
            dconnuri, uri = self._uris(address, destination, migrate_uri)
            last = number == count - 1 and not fallback
            # Only an attempt that has a next one is probed.
            port = None if last else libvirt_port(
                self._driver._live_migration_uri(str(address)))
            silent = None
            if port is not None:
                start = time.monotonic()
                silent = probe(address, port)
                # What the probe costs a migration whose address works.
                LOG.debug('Probed %(address)s on port %(port)d in %(ms).2f '
                          'ms: %(result)s.',
                          {'address': address, 'port': port,
                           'ms': 1000 * (time.monotonic() - start),
                           'result': silent or 'it answered'},
                          instance=self._instance)
            if silent is not None:
                attempts.append(Attempt(str(address), silent))
                self._warn_next(address, number, silent)
                continue
            LOG.debug('Migrating to %(address)s: connection %(dconnuri)s, '
                      'migrate_uri %(uri)s%(tls)s.',
                      {'address': address, 'dconnuri': dconnuri, 'uri': uri,
                       'tls': ' and %s %s' % (TLS_DESTINATION, self._dest)
                       if self._mode == PLANE_TLS_DESTINATION else ''},
                      instance=self._instance)
            try:
                self._call(dconnuri, uri, kwargs, address)
            except Exception as exc:
                if (not last and isinstance(exc, libvirt.libvirtError) and
                        failures.classify(
                            exc, address, libvirt,
                            connection_to_address=self._mode ==
                            PLANE_CONNECT_ADDR) == failures.CONNECT):
                    self._warn_next(address, number,
                                    'libvirt could not connect (%s)' % exc)
                    continue
                self._record(records.PLANE_MIGRATION, address, None, exc)
                raise
            if number and self._mode == PLANE_CONNECT_ADDR:
                self._migrate_data.target_connect_addr = str(address)
            self._record(records.PLANE_MIGRATION, address, None)
            return
        self._fall_back(migrate_uri, kwargs)

    def _warn_next(self, address, number, why):
        following = (self._addresses[number + 1:] or
                     ['the management network'])
        LOG.warning('Live migration to %(dest)s: %(address)s, the '
                    'destination\'s migration address %(number)d of '
                    '%(count)d: %(why)s; nothing was sent, trying '
                    '%(next)s.',
                    {'dest': self._dest, 'address': address,
                     'number': number + 1, 'count': len(self._addresses),
                     'why': why, 'next': following[0]},
                    instance=self._instance)

    def _fall_back(self, migrate_uri, kwargs):
        """Migrate as stock nova would, once no migration address worked."""
        setattr(self._migrate_data, _FELL_BACK, True)
        target = self._stock_target or self._dest
        tunnelled = kwargs.get('flags', 0) & _libvirt().VIR_MIGRATE_TUNNELLED
        uri = (self._driver._migrate_uri(target)
               if self._stock_target and not tunnelled else None)
        if self._mode == PLANE_CONNECT_ADDR:
            self._migrate_data.target_connect_addr = self._stock_target
        plane = (records.PLANE_INBOUND_ADDR if self._stock_target
                 else records.PLANE_MANAGEMENT)
        LOG.warning('Live migration to %(dest)s falls back to %(target)s, '
                    'as stock nova migrates, because fallback_to_management '
                    'is set: no migration address of the destination could '
                    'be used (%(attempts)s). This stream shares the '
                    'management network.',
                    {'dest': self._dest, 'target': target,
                     'attempts': records.attempts_text(
                         attempts_of(self._migrate_data))},
                    instance=self._instance)
        self._carry(self._driver._live_migration_uri(target), uri, kwargs,
                    plane, target, records.REASON_FALLBACK,
                    domain=self._stock_domain)


def _libvirt():
    """The driver module's libvirt: the real one, or nova's fake in tests."""
    from nova.virt.libvirt import driver as libvirt_driver
    return libvirt_driver.libvirt
