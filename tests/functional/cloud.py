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

"""nova's in-process cloud with two libvirt computes, for live migrations.

API, conductor, scheduler, placement and two nova-compute services run on
nova's fake libvirt. The fake ``virDomain.migrateToURI3`` records exactly
what nova's libvirt driver hands libvirt, then completes the migration the
way nova's own functional tests do, or fails it as libvirt does when the
address it streams to is unreachable.
"""

import collections
import contextlib
import importlib.metadata
import os
import re
import urllib.parse

import fixtures
from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional import integrated_helpers
from nova.tests.functional.libvirt import base as libvirt_base
from oslo_config import cfg
from oslo_utils import versionutils

from tests import fixtures as mn_fixtures

CONF = cfg.CONF

# One call of virDomain.migrateToURI3(dconnuri, params, flags).
MigrateCall = collections.namedtuple('MigrateCall',
                                     'instance dconnuri params flags')


def comparable(call):
    """``call`` with what differs between two servers (UUID, name) masked.

    Two migrations of different servers compare equal when nova handed
    libvirt the same URIs, parameters and flags.
    """
    params = dict(call.params)
    for key in ('destination_xml', 'persistent_xml'):
        params[key] = re.sub(r'instance-[0-9a-f]{8}', 'NAME',
                             params[key].replace(call.instance, 'UUID'))
    return call.dconnuri, params, call.flags


def nova_api_paste_ini():
    """nova's api-paste.ini from the installed wheel (<prefix>/etc/nova)."""
    for path in importlib.metadata.files('nova'):
        if str(path).endswith(os.path.join('etc', 'nova', 'api-paste.ini')):
            return str(path.locate())
    raise RuntimeError('api-paste.ini not found in the installed nova')


def stream_address(dconnuri, params):
    """``(host, port)`` the migration stream of a ``migrateToURI3`` goes to.

    QEMU streams to ``migrate_uri`` when there is one (libvirt's first
    migration port, 49152), else the stream follows the libvirt connection
    (libvirtd's TCP port, 16509).
    """
    if 'migrate_uri' in params:
        return urllib.parse.urlsplit(params['migrate_uri']).hostname, 49152
    return urllib.parse.urlsplit(dconnuri).hostname, 16509


def raise_if_unreachable(dconnuri, params, unreachable):
    """Fail as libvirt 9 and QEMU 7.2 fail when a peer is in
    ``unreachable``: libvirt connects to the destination's libvirtd first
    (an RPC error), then QEMU opens its migration stream (a QEMU error,
    libvirt's "job 'migration out' failed"), both before the job starts.
    """
    libvirtd = urllib.parse.urlsplit(dconnuri).hostname
    if libvirtd in unreachable:
        raise fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError,
            "unable to connect to server at '%s:16509': No route to host"
            % libvirtd,
            error_code=fakelibvirt.VIR_ERR_SYSTEM_ERROR,
            error_domain=fakelibvirt.VIR_FROM_RPC)
    stream = stream_address(dconnuri, params)
    if stream[0] in unreachable:
        raise qemu_migration_error(
            "Failed to connect to '%s:%d': No route to host" % stream)


def qemu_migration_error(reason):
    """libvirt's error when QEMU's outgoing migration job failed."""
    return fakelibvirt.make_libvirtError(
        fakelibvirt.libvirtError,
        "operation failed: job 'migration out' failed: %s" % reason,
        error_code=fakelibvirt.VIR_ERR_OPERATION_FAILED,
        error_domain=fakelibvirt.VIR_FROM_QEMU)


class LiveMigrationCloud(libvirt_base.ServersTestBase,
                         integrated_helpers.InstanceHelperMixin):
    """Two computes, ``src`` and ``dest`` (``SOURCE``, ``DESTINATION``);
    the plugin active in the cloud.

    ``self.migrate_calls`` lists every ``migrateToURI3`` call in order.
    A migration whose stream goes to a host or address in
    ``self.unreachable`` fails in ``migrateToURI3`` with libvirt's error for
    an unreachable peer, and the guest stays running on ``src``.
    """

    # 2.74 boots a server on a given host.
    microversion = '2.74'
    ADMIN_API = True
    # Set to False to run the cloud without the plugin.
    ACTIVATE_PLUGIN = True
    # The computes' host names (nova's CONF.host, hence the destination
    # name in libvirt's connection URI).
    SOURCE = 'src'
    DESTINATION = 'dest'

    def _setup_services(self):
        # nova's ConfFixture expects api-paste.ini in a source tree.
        self.flags(api_paste_config=nova_api_paste_ini(), group='wsgi')
        super()._setup_services()

    def setUp(self):
        super().setUp()
        if self.ACTIVATE_PLUGIN:
            self.useFixture(mn_fixtures.MigrationNetFixture())
        # The migration addresses the tests use are assigned on eth1.
        self.interfaces = self.useFixture(mn_fixtures.InterfacesFixture())
        self.migrate_calls = []
        self.unreachable = set()
        self.useFixture(self._fake_migration())
        # The source's reachability probe, (address, port) in order; an
        # address in self.silent drops it, as a link that is down does.
        self.probes = []
        self.silent = set()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_migration_net.steering._connect', self._probe_connect))

    def _fake_migration(self):
        return fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.migrateToURI3',
            self._migrate_to_uri3)

    def _migrate_to_uri3(self, domain, dconnuri, params, flags):
        uuid = etree.fromstring(params['destination_xml']).find('./uuid').text
        self.migrate_calls.append(MigrateCall(uuid, dconnuri, params, flags))
        raise_if_unreachable(dconnuri, params, self.unreachable)
        self.dest.driver._host.get_connection().createXML(
            params['destination_xml'],
            'fake-createXML-doesnt-care-about-flags')
        conn = self.src.driver._host.get_connection()
        conn.lookupByUUIDString(uuid).complete_job()

    def _probe_connect(self, address, timeout):
        self.probes.append(address)
        if address[0] in self.silent:
            raise TimeoutError('timed out')
        if address[0] in self.unreachable:
            # A host that answers, but not libvirtd: libvirt then fails.
            raise ConnectionRefusedError(111, 'Connection refused')
        return contextlib.nullcontext()

    def use_non_shared_storage(self):
        """Give ``dest`` instance storage of its own, so nova block-migrates.

        Both computes share this process's ``instances_path``, and nova's
        fake libvirt has no disk files. As nova's own ``NonShared``
        functional tests do, the storage checks are made to answer as on
        hosts with local disks: the source does not see the destination's
        test file (so ``block_migration='auto'`` is a block migration), the
        destination creates the instance directory in a directory of its
        own, and the source reports no disk files to pre-create. The
        source's disk selection and migration call stay nova's own: the
        guest's writable disks become ``migrate_disks``.
        """
        dest_storage = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver.'
            '_check_shared_storage_test_file', return_value=False))
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver.'
            '_get_instance_disk_info_from_config', return_value=[]))
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.utils.get_instance_path_at_destination',
            side_effect=lambda instance, migrate_data=None: os.path.join(
                dest_storage, instance.uuid)))

    def set_source_libvirt_version(self, version):
        """Make ``src``'s libvirt report ``version`` from now on.

        nova refuses to start on a libvirt older than its minimum, so the
        version is lowered after ``src`` started; nova's own
        ``Host.has_min_version`` then sees it.
        """
        conn = self.src.driver._host.get_connection()
        conn.fakeLibVersion = versionutils.convert_version_to_int(version)

    def log_lines(self, *fragments):
        """The captured log lines that contain every one of ``fragments``."""
        return [line for line in self.stdlog.logger.output.splitlines()
                if all(f in line for f in fragments)]

    def start_computes(self, dest_migration_ip=None, **libvirt_flags):
        """Start ``src`` and ``dest``; ``dest`` may set the option.

        The services share one configuration in this process; only the
        destination's hook reads ``my_live_migration_ip``, so setting it
        here is setting it on ``dest``.
        """
        if libvirt_flags:
            self.flags(group='libvirt', **libvirt_flags)
        self.src = self.computes[self.start_compute(hostname=self.SOURCE)]
        if dest_migration_ip is not None:
            self.flags(my_live_migration_ip=dest_migration_ip)
        self.dest = self.computes[
            self.start_compute(hostname=self.DESTINATION)]

    def live_migrate_server(self, block_migration='auto'):
        """Boot a server on ``src`` and live-migrate it to ``dest``.

        :returns: the ``MigrateCall`` nova made to libvirt for it
        """
        calls = self.live_migrate_server_calls(block_migration)
        self.assertEqual(1, len(calls))
        return calls[0]

    def live_migrate_server_calls(self, block_migration='auto'):
        """As :meth:`live_migrate_server`; every ``MigrateCall`` made for
        the server, in order.
        """
        self.server = self._create_server(host=self.SOURCE,
                                          networks='none')
        self.api.post_server_action(
            self.server['id'],
            {'os-migrateLive': {'host': self.DESTINATION,
                                'block_migration': block_migration}})
        self._wait_for_migration_status(self.server, ['completed'])
        self._wait_for_state_change(self.server, 'ACTIVE')
        server = self.api.get_server(self.server['id'])
        self.assertEqual(self.DESTINATION, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        return [c for c in self.migrate_calls
                if c.instance == self.server['id']]
