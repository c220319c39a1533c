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

"""What listens on the destination, and who connects, per transport.

Measured, not assumed: while a real live migration runs, ``ss -Htanp`` in
compute-b's namespaces (:mod:`tests.cloud.sockets`) records the TCP
listeners of libvirt's, QEMU's and sshd's processes and compute-a's
connections to them. The test writes the table operators open their
firewall from to ``doc/source/listen-measured.inc``. compute-b's hostname
resolves to its management address; both computes run the plugin with
their IPv4 migration addresses. The migration is a block migration (the
hosts share no storage, so the NBD disk copy is in it), but tunnelled,
which cannot copy disks: there both hosts' instances directory is the
cloud's GlusterFS volume. ``live_migration_scheme`` is read by the source
only, so only compute-a has it (and restarts for it).

For ``qemu+ssh`` compute-a's ``known_hosts`` has compute-b's host key
under its migration IP only, and the client refuses unknown hosts
(:mod:`tests.cloud.services.sshd`): the migration succeeds only if
libvirt's ssh connects to the migration IP.
"""

import collections
import contextlib
import os
import subprocess

from tests.cloud import scenario
from tests.cloud.scenario import ipv4
from tests.cloud.services import sshd
from tests.cloud import sockets
from tests.cloud import test_live_migration
from tests.hypervisor import testbed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TABLE = os.path.join(REPO, 'doc', 'source', 'listen-measured.inc')
QEMU = 'qemu-system-x86'


def scheme(name):
    """The plugin with the IPv4 migration IP, and ``live_migration_scheme``
    ``name``.
    """
    return lambda host: ipv4(host)._replace(
        libvirt=(('live_migration_scheme', name),))


Transport = collections.namedtuple(
    'Transport', 'title source destination plane control qemu_streams')
Transport.__doc__ = """One row of the table.

``source``, ``destination``: the computes' specs, of a host;
``plane``: what the source's log says; ``control``: the one connection
besides QEMU's, as (process, address attribute of compute-b, port);
``qemu_streams``: how many connections QEMU takes at least (the memory
stream and the NBD disk copy), all to the migration IP.
"""

# In the order measured: the scheme is compute-a's alone, so the tls and
# ssh rows restart compute-a only.
TRANSPORTS = (
    Transport('``qemu+tcp``', ipv4, ipv4, test_live_migration.IPV4_PLANE,
              ('libvirtd', 'migration_ipv4', 16509), 2),
    Transport('``live_migration_scheme = tls`` (``qemu+tls``)',
              scheme('tls'), ipv4, test_live_migration.IPV4_PLANE,
              ('libvirtd', 'migration_ipv4', 16514), 2),
    Transport('``live_migration_scheme = ssh`` (``qemu+ssh``)',
              scheme('ssh'), ipv4, test_live_migration.IPV4_PLANE,
              ('sshd', 'migration_ipv4', sshd.PORT), 2),
    Transport('native TLS (``live_migration_with_native_tls``)',
              test_live_migration.native_tls, test_live_migration.native_tls,
              test_live_migration.TLS_PLANE,
              ('libvirtd', 'mgmt_ip', 16509), 2),
    Transport('tunnelled (``live_migration_tunnelled``, shared storage)',
              test_live_migration.tunnelled, test_live_migration.tunnelled,
              test_live_migration.IPV4_PLANE,
              ('libvirtd', 'migration_ipv4', 16509), 0),
)


def names(host):
    """``{address: what it is}`` of ``host`` for the table."""
    return {host.mgmt_ip: '%s (management address, the hostname)'
            % host.mgmt_ip,
            host.migration_ipv4: '%s (migration IP)' % host.migration_ipv4,
            host.migration_ipv6: '%s (migration IP)' % host.migration_ipv6,
            '0.0.0.0': 'all IPv4 addresses', '*': 'all addresses',
            '::': 'all addresses'}


def endpoint(host, local):
    address, port = local
    return '%s, port %s' % (names(host).get(address, address), port)


class TestListen(scenario.CloudTestCase):
    """One transport per test (a migration with its restarts takes up to
    100 s on a busy machine), named so that unittest's order is
    :data:`TRANSPORTS`'s; the table is written once all have passed.
    """

    rows = {}

    @classmethod
    def tearDownClass(cls):
        if len(cls.rows) == len(TRANSPORTS):
            write(cls.b, [cls.rows[t.title] for t in TRANSPORTS])
        super().tearDownClass()

    def measure(self, transport, clients=()):
        """Migrate a server compute-a -> compute-b as ``transport`` says,
        check the connections compute-b took and keep its row; with
        ``clients``, the sampler of compute-a that saw the connections of
        the processes so named.
        """
        with self.logs_on_failure():
            self.computes(transport.source(self.a),
                          transport.destination(self.b))
            server, checksum = self.boot(self.a)
            watch_source = (
                sockets.sampling(self.cloud.nsenter(self.a), clients)
                if clients else contextlib.nullcontext())
            with sockets.sampling(self.cloud.nsenter(self.b)) as sampler, \
                    watch_source as source:
                server, moved, _ = self.live_migrate(server, self.b)
            self.assertMigrated(server, self.b, checksum, moved,
                                testbed.MIGR_IF, transport.plane)
        inbound = self.inbound(sampler)
        by_process = {}
        for process, local in inbound:
            by_process.setdefault(process, set()).add(local)
        process, attribute, port = transport.control
        self.assertEqual({(process, (getattr(self.b, attribute), port))},
                         {(p, local) for p, local in inbound if p != QEMU},
                         inbound)
        # QEMU's stream and its NBD disk copy, on ports of libvirt's
        # migration range: the migration IP; none when tunnelled.
        qemu = by_process.get(QEMU, set())
        self.assertEqual(
            {self.b.migration_ipv4} if transport.qemu_streams else set(),
            {address for address, _ in qemu}, inbound)
        self.assertGreaterEqual(len(qemu), transport.qemu_streams, inbound)
        self.rows[transport.title] = (transport.title, sampler.listening,
                                      by_process)
        return source

    def inbound(self, sampler):
        """``{(process, local endpoint)}`` compute-a connected to."""
        sources = {self.a.mgmt_ip, self.a.migration_ipv4,
                   self.a.migration_ipv6}
        return {(process, local) for peer, local, process in sampler.inbound
                if peer in sources}

    def test_libvirtd_tcp_and_qemu_to_the_migration_ip(self):
        self.measure(TRANSPORTS[0])

    def test_libvirtd_tls_and_qemu_to_the_migration_ip(self):
        """libvirtd's certificate names the migration IP (the testbed's
        PKI), as it must: libvirt verifies the address it connects to,
        and refuses compute-b's management address, which it lacks.
        """
        self.measure(TRANSPORTS[1])
        refused = subprocess.run(
            self.cloud.nsenter(self.a) + [
                'virsh', '-c', 'qemu+tls://%s/system' % self.b.mgmt_ip,
                'uri'], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(0, refused.returncode, refused.stdout)
        self.assertIn('owner does not match the hostname %s'
                      % self.b.mgmt_ip, refused.stderr)

    def test_libvirtd_via_ssh_and_qemu_to_the_migration_ip(self):
        """The ssh client is the source libvirtd's child (nova migrates
        peer to peer), so the key and ``known_hosts`` it needs are those
        of libvirtd's user, root here; compute-b's host key is known under
        its migration IP only.
        """
        self.cloud.sshd.start([self.b.migration_ipv4])
        # Stopped at once, so that no other row lists it.
        self.addCleanup(self.cloud.sshd.stop)
        source = self.measure(TRANSPORTS[2], clients=('ssh',))
        self.assertEqual(
            {('ssh', 'libvirtd', (self.b.migration_ipv4, sshd.PORT))},
            source.outbound)

    def test_native_tls_libvirtd_to_the_hostname_qemu_to_the_ip(self):
        self.measure(TRANSPORTS[3])

    def test_tunnelled_only_libvirtd_to_the_migration_ip(self):
        self.measure(TRANSPORTS[4])


def write(host, rows):
    """The table of ``rows`` (title, listeners, connections by process)
    of the destination ``host``, to :data:`TABLE`.
    """
    lines = [
        '.. Written by tests/cloud/test_listen.py; do not edit.',
        '',
        '.. list-table::',
        '   :header-rows: 1',
        '',
        '   * - transport',
        '     - listening on compute-b (process: address, port)',
        '     - connections from compute-a during the migration',
    ]
    for title, listening, by_process in rows:
        listening = sorted('%s: %s' % (process, endpoint(host, local))
                           for process, local in listening)
        inbound = sorted('%s: %s' % (process, endpoint(host, local))
                         for process, locals_ in by_process.items()
                         for local in locals_)
        lines.append('   * - %s' % title)
        for cell in (listening, inbound):
            cell = cell or ['(none)']
            lines.append('     - | ' + cell[0])
            lines.extend('       | ' + text for text in cell[1:])
    with open(TABLE, 'w') as f:
        f.write('\n'.join(lines) + '\n')
