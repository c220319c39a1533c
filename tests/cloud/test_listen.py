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
listeners of libvirt's and QEMU's processes and compute-a's connections
to them. The test writes the table operators open their firewall from to
``doc/source/listen-measured.inc``. compute-b's hostname resolves to its
management address; both computes run the plugin with their IPv4
migration addresses; the migration is a block migration (the hosts share
no storage), so the NBD disk copy is in it.
"""

import os

from tests.cloud import scenario
from tests.cloud.scenario import ipv4
from tests.cloud import sockets
from tests.cloud import test_live_migration
from tests.hypervisor import testbed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TABLE = os.path.join(REPO, 'doc', 'source', 'listen-measured.inc')
TRANSPORTS = (
    ('``qemu+tcp``', lambda host: ipv4(host),
     test_live_migration.IPV4_PLANE),
    ('native TLS (``live_migration_with_native_tls``)',
     test_live_migration.native_tls, test_live_migration.TLS_PLANE),
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

    def measure(self, spec):
        """Migrate a server compute-a -> compute-b with both on ``spec``;
        the sampler that watched compute-b during the migration.
        """
        spec_factory, plane_line = spec
        with self.logs_on_failure():
            self.computes(spec_factory(self.a), spec_factory(self.b))
            server, checksum = self.boot(self.a)
            with sockets.sampling(self.cloud.nsenter(self.b)) as sampler:
                server, moved, _ = self.live_migrate(server, self.b)
            self.assertMigrated(server, self.b, checksum, moved,
                                testbed.MIGR_IF, plane_line)
        return sampler

    def inbound(self, sampler):
        """``{(process, local endpoint)}`` compute-a connected to."""
        sources = {self.a.mgmt_ip, self.a.migration_ipv4,
                   self.a.migration_ipv6}
        return {(process, local) for peer, local, process in sampler.inbound
                if peer in sources}

    def test_listeners_and_connections_per_transport(self):
        rows = []
        for title, *spec in TRANSPORTS:
            sampler = self.measure(spec)
            inbound = self.inbound(sampler)
            by_process = {}
            for process, local in inbound:
                by_process.setdefault(process, set()).add(local)
            rows.append((title, sampler, by_process))
            libvirt = {local for process, local in inbound
                       if process != 'qemu-system-x86'}
            qemu = by_process.get('qemu-system-x86', set())
            # QEMU's stream and its NBD disk copy: the migration IP, on
            # two ports of libvirt's migration range.
            self.assertEqual({self.b.migration_ipv4},
                             {address for address, _ in qemu}, inbound)
            self.assertGreaterEqual(len({port for _, port in qemu}), 2,
                                    inbound)
            expected = (self.b.mgmt_ip if 'native TLS' in title
                        else self.b.migration_ipv4)
            self.assertEqual({(expected, 16509)}, libvirt, inbound)
        self.write(rows)

    def write(self, rows):
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
        for title, sampler, by_process in rows:
            listening = sorted('%s: %s' % (process, endpoint(self.b, local))
                               for process, local in sampler.listening)
            inbound = sorted('%s: %s' % (process, endpoint(self.b, local))
                             for process, locals_ in by_process.items()
                             for local in locals_)
            lines.append('   * - %s' % title)
            for cell in (listening, inbound):
                cell = cell or ['(none)']
                lines.append('     - | ' + cell[0])
                lines.extend('       | ' + text for text in cell[1:])
        with open(TABLE, 'w') as f:
            f.write('\n'.join(lines) + '\n')
