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

"""Which link real QEMU migrations cross, with what nova hands libvirt.

Each test first live-migrates a server through nova's in-process cloud
(fake libvirt, the plugin active) between computes named after the testbed
hosts, and records the call nova's driver makes to
``nova.virt.libvirt.guest.Guest.migrate``: the guest object (with the
plugin's wrapping, if any) and every argument. It then makes that same call
again, nova's own ``Guest.migrate`` on the same guest object, with the
guest's fake domain swapped for a real domain on the testbed's source host
and libvirt-python under nova's guest module. Two arguments are translated,
not changed: the flags, bit by bit from fake libvirt's constants to
libvirt's by name, and ``destination_xml``, which nova derived from the
fake domain's XML and is here the real domain's own migratable XML.

The kernel's byte counters on the source's links then say which link
carried the migration, and the guest, running on the destination, says
whether its memory arrived intact.
"""

import copy
import json
import os
import time
import unittest

import fixtures
import netaddr
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt.libvirt import guest as libvirt_guest

from tests import fixtures as mn_fixtures
from tests.functional import cloud
from tests.hypervisor import testbed

try:
    import libvirt
except ImportError:
    libvirt = None

# At least this share of the bytes a migration moved must cross the
# expected link.
MIN_SHARE = 0.95

NOVA_GUEST_MIGRATE = libvirt_guest.Guest.migrate

# One result per test, for tools/hypervisor_report.py; in the testbed's
# work directory, which each run starts afresh.
RESULTS = os.path.join(testbed.WORK_DIR, 'planes.json')


# Fake libvirt's migration flags: {bit: 'VIR_MIGRATE_<NAME>'}.
FAKE_MIGRATE_FLAGS = {value: name for name, value in vars(fakelibvirt).items()
                      if name.startswith('VIR_MIGRATE_')
                      and isinstance(value, int)}


def libvirt_flags(fake_flags):
    """``fake_flags`` (fake libvirt's VIR_MIGRATE_*) as libvirt's flags."""
    flags = 0
    for bit in range(fake_flags.bit_length()):
        if fake_flags & (1 << bit):
            flags |= getattr(libvirt, FAKE_MIGRATE_FLAGS[1 << bit])
    return flags


def flag_names(fake_flags):
    return sorted(name[len('VIR_MIGRATE_'):]
                  for value, name in FAKE_MIGRATE_FLAGS.items()
                  if fake_flags & value)


def share(moved, ifname):
    """The part of the bytes in ``moved`` ({link: bytes}) on ``ifname``."""
    return moved[ifname] / (sum(moved.values()) or 1)


def bytes_cell(moved, ifname):
    """``moved[ifname]`` with its share, for a Markdown table."""
    return '%s B (%.2f%%)' % (format(moved[ifname], ','),
                              100 * share(moved, ifname))


def append_result(path, result):
    """Add ``result`` to the JSON list of results in ``path``."""
    results = []
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    results.append(result)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)


def test_names(test_class):
    """``test_class``'s tests, in the order they are written."""
    return [name for name in vars(test_class) if name.startswith('test_')]


def read_results(path, cases):
    """The results in ``path`` in the order of ``cases`` (test names), and
    the names in ``cases`` that have none.
    """
    try:
        with open(path) as f:
            results = json.load(f)
    except FileNotFoundError:
        results = []
    missing = set(cases) - {r['case'] for r in results}
    return sorted(results, key=lambda r: cases.index(r['case'])), missing


def case_title(result):
    """A recorded result's test name, as words."""
    return result['case'][len('test_'):].replace('_', ' ')


def guest_on(guest, domain):
    """A copy of the recorded ``guest`` whose innermost domain is ``domain``.

    nova's ``Guest`` may hold the plugin's wrapping (``_PlaneGuest`` over
    ``_TLSDestinationDomain``, with native TLS) around the fake domain.
    Every link of that chain is copied, so the recorded one is untouched
    and each copy can migrate its own domain.
    """
    top = holder = copy.copy(guest)
    while not isinstance(holder._domain, fakelibvirt.Domain):
        holder._domain = copy.copy(holder._domain)
        holder = holder._domain
    holder._domain = domain
    return top


def psutil_interfaces(ip_addr_json):
    """``ip -j addr`` output as ``psutil.net_if_addrs()`` has it."""
    table = {}
    for link in ip_addr_json:
        table[link['ifname']] = [
            mn_fixtures.interface(
                4 if a['family'] == 'inet' else 6, a['local'],
                str(netaddr.IPNetwork('%s/%d' % (a['local'],
                                                 a['prefixlen'])).netmask))
            for a in link.get('addr_info', ())]
    return table


class TestMigrationPlanes(cloud.LiveMigrationCloud):
    """A live migration per case, on real libvirt and QEMU."""

    SOURCE = testbed.HOSTS[0].name
    DESTINATION = testbed.HOSTS[1].name

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        reason = testbed.why_unavailable()
        if reason:
            raise unittest.SkipTest(reason)
        if libvirt is None:
            raise unittest.SkipTest('libvirt-python is not installed; run '
                                    '"python -m tests.hypervisor.testbed '
                                    'prepare"')
        # libvirt-python prints every error, even those the tests expect.
        libvirt.registerErrorHandler(lambda ctx, error: None, None)
        cls.testbed = testbed.Testbed()
        cls.testbed.setUp()
        cls.addClassCleanup(cls.testbed.cleanUp)

    def setUp(self):
        super().setUp()
        self.source, self.destination = self.testbed.hosts
        # The destination's start-up checks see its real interfaces.
        self.useFixture(mn_fixtures.InterfacesFixture(
            psutil_interfaces(self.testbed.addresses(self.destination))))
        self.guest_calls = []
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.guest.Guest.migrate', self._record_migrate))
        self.conns = {h.name: libvirt.open(self.testbed.uri(h))
                      for h in self.testbed.hosts}
        for conn in self.conns.values():
            self.addCleanup(conn.close)

    def _record_migrate(self, guest, *args, **kwargs):
        self.guest_calls.append((guest, args, kwargs))
        return NOVA_GUEST_MIGRATE(guest, *args, **kwargs)

    def start_guest(self, disk=False):
        """A running guest on the source; its first checksum."""
        name = self.id().rsplit('.', 1)[1].replace('test_', '')
        self.addCleanup(self.testbed.remove_guest, name)
        if disk:
            self.testbed.make_disk(name)
        domain = self.conns[self.source.name].defineXML(
            self.testbed.guest_xml(name, disk=disk))
        domain.create()
        sums = self.testbed.wait_for_checksums(self.source, name)
        return domain, sums[0]

    def migrate_with_nova(self, block=False, **start_computes_kwargs):
        """Live-migrate a server through the cloud; nova's calls to
        libvirt (``MigrateCall``) and to ``Guest.migrate``.
        """
        if block:
            self.use_non_shared_storage()
        self.start_computes(**start_computes_kwargs)
        call = self.live_migrate_server()
        self.assertEqual(1, len(self.guest_calls))
        return call, self.guest_calls[0]

    def replay(self, guest_call, domain):
        """nova's ``Guest.migrate`` call again, on the real ``domain``.

        :returns: seconds taken and bytes per link on the source
        """
        guest, args, kwargs = guest_call
        guest = guest_on(guest, domain)
        kwargs = dict(kwargs, flags=libvirt_flags(kwargs['flags']))
        kwargs['destination_xml'] = domain.XMLDesc(
            libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        with fixtures.MonkeyPatch('nova.virt.libvirt.guest.libvirt',
                                  libvirt):
            with self.testbed.bytes_moved(self.source) as moved:
                start = time.monotonic()
                NOVA_GUEST_MIGRATE(guest, *args, **kwargs)
                seconds = time.monotonic() - start
        return seconds, moved

    def assertCarriedBy(self, ifname, moved):
        on_link = share(moved, ifname)
        self.assertGreaterEqual(
            on_link, MIN_SHARE, '%.1f%% of %d bytes on %s: %s'
            % (100 * on_link, sum(moved.values()), ifname, moved))
        # The guest's memory alone is over 100 MiB.
        self.assertGreater(moved[ifname], 100 * 1024 * 1024)

    def assertRunsIntactOnDestination(self, name, checksum):
        domain = self.conns[self.destination.name].lookupByName(name)
        self.assertTrue(domain.isActive())
        self.assertTrue(domain.isPersistent())
        self.assertEqual(
            [], [d.name() for d in
                 self.conns[self.source.name].listAllDomains()])
        # A checksum the guest computed wholly on the destination.
        sums = self.testbed.wait_for_checksums(self.destination, name, 2)
        self.assertEqual({checksum}, set(sums))

    def record(self, call, seconds, moved, expected, outcome='migrated'):
        result = {
            'case': self.id().rsplit('.', 1)[1],
            'outcome': outcome,
            'uri': call.dconnuri,
            'migrate_uri': call.params.get('migrate_uri'),
            'tls.destination': call.params.get('tls.destination'),
            'flags': flag_names(call.flags),
            'seconds': round(seconds, 2),
            'expected': expected,
            'bytes': moved,
        }
        append_result(RESULTS, result)

    def check_plane(self, expected_link, block=False,
                    **start_computes_kwargs):
        """Migrate with nova's call; assert the link and the guest."""
        domain, checksum = self.start_guest(disk=block)
        call, guest_call = self.migrate_with_nova(
            block=block, **start_computes_kwargs)
        seconds, moved = self.replay(guest_call, domain)
        self.assertCarriedBy(expected_link, moved)
        self.assertRunsIntactOnDestination(domain.name(), checksum)
        if block:
            same, message = self.testbed.same_disk(domain.name())
            self.assertTrue(same, message)
        self.record(call, seconds, moved, expected_link)
        return call

    def test_ipv4_migration_ip_streams_over_the_migration_link(self):
        call = self.check_plane(
            testbed.MIGR_IF,
            dest_migration_ip=self.destination.migration_ipv4)
        self.assertEqual('qemu+tcp://172.30.0.2/system', call.dconnuri)
        self.assertEqual('tcp://172.30.0.2', call.params['migrate_uri'])

    def test_ipv6_migration_ip_streams_over_the_migration_link(self):
        call = self.check_plane(
            testbed.MIGR_IF,
            dest_migration_ip=self.destination.migration_ipv6)
        self.assertEqual('tcp://[fd00:30::2]', call.params['migrate_uri'])

    def test_option_unset_streams_over_the_management_link(self):
        call = self.check_plane(testbed.MGMT_IF)
        self.assertEqual('qemu+tcp://compute-b/system', call.dconnuri)
        self.assertNotIn('migrate_uri', call.params)

    def test_block_migration_copies_the_disk_over_the_migration_link(self):
        call = self.check_plane(
            testbed.MIGR_IF, block=True,
            dest_migration_ip=self.destination.migration_ipv4)
        self.assertEqual(['vda'], call.params['migrate_disks'])
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_NON_SHARED_INC)

    def test_tunnelled_migration_tunnels_over_the_migration_link(self):
        call = self.check_plane(
            testbed.MIGR_IF,
            dest_migration_ip=self.destination.migration_ipv4,
            live_migration_tunnelled=True)
        self.assertEqual('qemu+tcp://172.30.0.2/system', call.dconnuri)
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_TUNNELLED)

    def assertHostnameOnlyCertificates(self):
        """The destination's QEMU certificate names no address at all."""
        san = self.testbed.certificate_names(self.destination)
        self.assertEqual('DNS:compute-b', san)

    def test_native_tls_streams_over_the_migration_link(self):
        self.assertHostnameOnlyCertificates()
        call = self.check_plane(
            testbed.MIGR_IF,
            dest_migration_ip=self.destination.migration_ipv4,
            live_migration_with_native_tls=True)
        self.assertEqual('qemu+tcp://compute-b/system', call.dconnuri)
        self.assertEqual('tcp://172.30.0.2', call.params['migrate_uri'])
        self.assertEqual('compute-b', call.params['tls.destination'])
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_TLS)

    def test_native_tls_block_migration_over_the_migration_link(self):
        self.assertHostnameOnlyCertificates()
        call = self.check_plane(
            testbed.MIGR_IF, block=True,
            dest_migration_ip=self.destination.migration_ipv6,
            live_migration_with_native_tls=True)
        self.assertEqual('tcp://[fd00:30::2]', call.params['migrate_uri'])
        self.assertEqual('compute-b', call.params['tls.destination'])
        self.assertEqual(['vda'], call.params['migrate_disks'])

    def test_stock_native_tls_to_an_address_fails_on_these_certificates(self):
        """Why the plugin keeps the host name for TLS.

        Stock nova with ``live_migration_inbound_addr`` sends connection
        and stream to the address, and QEMU checks the certificate against
        it: the migration fails and the guest stays on the source.
        """
        self.assertHostnameOnlyCertificates()
        domain, checksum = self.start_guest()
        call, guest_call = self.migrate_with_nova(
            live_migration_inbound_addr=self.destination.migration_ipv4,
            live_migration_with_native_tls=True)
        self.assertEqual('tcp://172.30.0.2', call.params['migrate_uri'])
        self.assertNotIn('tls.destination', call.params)
        with self.testbed.bytes_moved(self.source) as moved:
            self.assertRaises(libvirt.libvirtError, self.replay, guest_call,
                              domain)
        # The source's QEMU says why; libvirt raises the destination's
        # view of the aborted stream.
        self.assertIn('Certificate does not match the hostname 172.30.0.2',
                      self.testbed.qemu_log(self.source, domain.name()))
        self.assertTrue(domain.isActive())
        sums = self.testbed.checksums(self.source, domain.name())
        self.assertEqual({checksum}, set(sums))
        self.record(call, 0, moved, testbed.MIGR_IF,
                    outcome='failed: certificate does not match 172.30.0.2')
