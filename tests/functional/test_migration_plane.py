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

"""Live migrations through nova's whole stack with the plugin active.

Each test boots a real server on ``src`` through the API, live-migrates it to
``dest`` and checks what nova's libvirt driver handed libvirt's
``migrateToURI3(dconnuri, params, flags)``.
"""

from nova.tests.fixtures import libvirt as fakelibvirt

from tests import fixtures as mn_fixtures
from tests.functional import cloud

IPV4 = '172.168.1.15'
IPV6 = 'fd00:30::15'


class TestMigrationPlane(cloud.LiveMigrationCloud):

    def test_ipv4_migration_ip_carries_the_stream(self):
        self.start_computes(dest_migration_ip=IPV4)
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://172.168.1.15/system', call.dconnuri)
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])

    def test_ipv6_migration_ip_is_bracketed(self):
        self.start_computes(dest_migration_ip=IPV6)
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://[fd00:30::15]/system', call.dconnuri)
        self.assertEqual('tcp://[fd00:30::15]', call.params['migrate_uri'])

    def test_ipv6_migration_ip_is_canonicalised(self):
        self.start_computes(dest_migration_ip='FD00:30:0::15')
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://[fd00:30::15]/system', call.dconnuri)

    def test_tls_scheme_applies_to_the_migration_ip(self):
        self.start_computes(dest_migration_ip=IPV4,
                            live_migration_scheme='tls')
        call = self.live_migrate_server()
        self.assertEqual('qemu+tls://172.168.1.15/system', call.dconnuri)
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])

    def test_tunnelled_migration_goes_through_libvirtd_on_the_plane(self):
        self.start_computes(dest_migration_ip=IPV4,
                            live_migration_tunnelled=True)
        call = self.live_migrate_server(block_migration=False)
        self.assertEqual('qemu+tcp://172.168.1.15/system', call.dconnuri)
        # Tunnelled: libvirtd carries the stream, QEMU gets no data URI.
        self.assertNotIn('migrate_uri', call.params)
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_TUNNELLED)

    def test_native_tls_streams_to_the_migration_ip_verifying_hostname(self):
        self.start_computes(dest_migration_ip=IPV4,
                            live_migration_with_native_tls=True)
        call = self.live_migrate_server()
        # libvirt connects to the hostname; QEMU streams to the plane and
        # verifies the certificate against the hostname.
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])
        self.assertEqual('dest', call.params['tls.destination'])
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_TLS)

    def test_source_logs_the_plane_once_per_migration(self):
        self.start_computes(dest_migration_ip=IPV4)
        self.live_migrate_server()
        lines = self.log_lines(
            'streams over the migration plane to 172.168.1.15')
        self.assertEqual(1, len(lines), lines)
        self.assertIn('INFO [nova_migration_net.hooks]', lines[0])

    def test_stock_conductor_keeps_the_plane(self):
        conductor = self.useFixture(mn_fixtures.StockConductorFixture())
        self.start_computes(dest_migration_ip=IPV4)
        call = self.live_migrate_server()
        self.assertEqual(2, conductor.hops)
        self.assertEqual('qemu+tcp://172.168.1.15/system', call.dconnuri)
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])


class TestOptionUnset(cloud.LiveMigrationCloud):

    def test_option_unset_streams_to_hostname(self):
        self.start_computes()
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        self.assertNotIn('migrate_uri', call.params)
        self.assertIn('streams over the management plane to its hostname',
                      self.stdlog.logger.output)

    def test_option_unset_hands_libvirt_what_stock_nova_does(self):
        self.start_computes()
        self.useFixture(mn_fixtures.PluginOffFixture())
        stock = self.live_migrate_server()
        self.useFixture(mn_fixtures.MigrationNetFixture())
        plugin = self.live_migrate_server()

        self.assertNotEqual(stock.instance, plugin.instance)
        self.assertEqual(cloud.comparable(stock), cloud.comparable(plugin))


class TestInboundAddr(cloud.LiveMigrationCloud):
    """nova's ``[libvirt] live_migration_inbound_addr`` on the destination."""

    def test_migration_ip_wins_over_inbound_addr(self):
        self.start_computes(dest_migration_ip=IPV4,
                            live_migration_inbound_addr='192.0.2.7')
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://172.168.1.15/system', call.dconnuri)
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])
        self.assertIn('live_migration_inbound_addr (192.0.2.7) are set',
                      self.stdlog.logger.output)

    def test_inbound_addr_alone_keeps_nova_behaviour(self):
        self.start_computes(live_migration_inbound_addr='192.0.2.7')
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://192.0.2.7/system', call.dconnuri)
        self.assertEqual('tcp://192.0.2.7', call.params['migrate_uri'])
