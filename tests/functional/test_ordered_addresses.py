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

"""A destination with two migration addresses: the source tries them in order.

The destination takes its addresses from ``[migration_net]
migration_networks`` (172.168.0.0/16 on eth1, then 172.31.0.0/24 on eth2 or
fd00:30::/64). nova's fake libvirt fails ``migrateToURI3`` as libvirt does
when an address is unreachable (``cloud.raise_if_unreachable``); every
other part of the migration is nova's own.
"""

from nova.tests.fixtures import libvirt as fakelibvirt

from tests import fixtures as mn_fixtures
from tests.functional import cloud
from tests.functional import test_failure_semantics
from tests.functional import test_faults

FIRST = '172.168.1.15'
SECOND = '172.31.0.15'
TWO_NETWORKS = ['172.168.0.0/16', '172.31.0.0/24']


class OrderedAddressesCloud(cloud.LiveMigrationCloud):

    def start_computes(self, networks=TWO_NETWORKS, **libvirt_flags):
        """``dest`` advertises the first address of each of ``networks``."""
        self.interfaces.interfaces = dict(
            mn_fixtures.MIGRATION_HOST_INTERFACES,
            eth2=[mn_fixtures.interface(4, SECOND, '255.255.255.0')])
        self.useFixture(mn_fixtures.MigrationNetworksFixture(networks))
        super().start_computes(**libvirt_flags)

    def migrate(self, block_migration='auto'):
        """The ``migrateToURI3`` calls of one successful live migration."""
        return self.live_migrate_server_calls(block_migration)


class TestOrderedAddresses(OrderedAddressesCloud):

    def test_first_address_carries_the_stream_when_it_connects(self):
        self.start_computes()
        [call] = self.migrate()
        self.assertEqual('qemu+tcp://%s/system' % FIRST, call.dconnuri)
        self.assertEqual('tcp://%s' % FIRST, call.params['migrate_uri'])
        self.assertEqual([], self.log_lines('[nova_migration_net.hooks]',
                                            'could not connect'))
        [line] = self.log_lines('streams over the migration plane to %s'
                                % FIRST)
        self.assertIn('the next addresses are tried in order: %s.' % SECOND,
                      line)

    def test_unreachable_first_address_moves_to_the_second(self):
        self.start_computes()
        self.unreachable.add(FIRST)
        first, second = self.migrate()
        self.assertEqual('qemu+tcp://%s/system' % FIRST, first.dconnuri)
        self.assertEqual('qemu+tcp://%s/system' % SECOND, second.dconnuri)
        self.assertEqual('tcp://%s' % SECOND, second.params['migrate_uri'])
        # Everything else is what nova handed the first attempt.
        self.assertEqual(
            {k: v for k, v in first.params.items() if k != 'migrate_uri'},
            {k: v for k, v in second.params.items() if k != 'migrate_uri'})
        self.assertEqual(first.flags, second.flags)
        [line] = self.log_lines('WARNING [nova_migration_net.hooks]',
                                'could not connect to %s' % FIRST,
                                'nothing was sent, trying %s' % SECOND)
        self.assertIn('migration address 1 of 2', line)

    def test_second_address_may_be_ipv6(self):
        self.start_computes(networks=['172.168.0.0/16', 'fd00:30::/64'])
        self.unreachable.add(FIRST)
        _, second = self.migrate()
        self.assertEqual('qemu+tcp://[fd00:30::15]/system', second.dconnuri)
        self.assertEqual('tcp://[fd00:30::15]', second.params['migrate_uri'])

    def test_tunnelled_migration_moves_the_connection(self):
        self.start_computes(live_migration_tunnelled=True)
        self.unreachable.add(FIRST)
        _, second = self.migrate(block_migration=False)
        self.assertEqual('qemu+tcp://%s/system' % SECOND, second.dconnuri)
        self.assertNotIn('migrate_uri', second.params)
        self.assertTrue(second.flags & fakelibvirt.VIR_MIGRATE_TUNNELLED)

    def test_ssh_scheme_moves_the_connection(self):
        self.start_computes(live_migration_scheme='ssh')
        self.unreachable.add(FIRST)
        _, second = self.migrate()
        self.assertEqual('qemu+ssh://%s/system' % SECOND, second.dconnuri)
        self.assertEqual('tcp://%s' % SECOND, second.params['migrate_uri'])

    def test_native_tls_moves_the_stream_and_verifies_the_hostname(self):
        self.start_computes(live_migration_with_native_tls=True)
        self.unreachable.add(FIRST)
        first, second = self.migrate()
        for call in (first, second):
            self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
            self.assertEqual('dest', call.params['tls.destination'])
            self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_TLS)
        self.assertEqual('tcp://%s' % SECOND, second.params['migrate_uri'])

    def test_block_migration_moves_the_stream_with_its_disks(self):
        self.use_non_shared_storage()
        self.start_computes()
        self.unreachable.add(FIRST)
        first, second = self.migrate()
        self.assertEqual('tcp://%s' % SECOND, second.params['migrate_uri'])
        self.assertTrue(second.flags & fakelibvirt.VIR_MIGRATE_NON_SHARED_INC)
        self.assertEqual(first.params['migrate_disks'],
                         second.params['migrate_disks'])

    def test_multifd_moves_the_stream_with_its_connections(self):
        self.start_computes(live_migration_parallel_connections=4)
        self.unreachable.add(FIRST)
        _, second = self.migrate()
        self.assertEqual('tcp://%s' % SECOND, second.params['migrate_uri'])
        self.assertTrue(second.flags & fakelibvirt.VIR_MIGRATE_PARALLEL)
        self.assertEqual(4, second.params['parallel.connections'])


@test_faults.REQUIRES_NOVA_34_MONITOR
class TestNoAddressWorks(OrderedAddressesCloud, test_faults.FaultCloud):

    def test_every_address_unreachable_rolls_back_with_one_error_line(self):
        self.start_computes()
        self.unreachable.update((FIRST, SECOND))
        server = self._create_server(host='src', networks='none')
        self.start_live_migration(server)
        self.assert_still_on_src(server, 'failed')
        self.assertEqual(2, len(self.migrate_calls))
        lines = self.log_lines('ERROR [nova_migration_net.hooks]')
        self.assertEqual(1, len(lines), lines)
        self.assertIn('could not connect to %s, %s, each of' % (FIRST, SECOND),
                      lines[0])
        self.assertIn("%s: unable to connect to server at '%s:16509'"
                      % (FIRST, FIRST), lines[0])
        self.assertIn("%s: unable to connect to server at '%s:16509'"
                      % (SECOND, SECOND), lines[0])
        self.assertIn('No memory of the instance was sent', lines[0])


class TestSentMemoryIsNeverRetried(
        OrderedAddressesCloud, test_failure_semantics.RunningMigrationCloud):

    def test_stream_cut_on_the_first_address_keeps_nova_handling(self):
        self.start_computes()
        server = self.boot()
        self.start_live_migration(server)
        self.fail_job(server, test_failure_semantics.CONNECTION_RESET)
        outcome = self.outcome(server, ['failed', 'error'])
        # nova's own outcome of a cut stream, as with one address.
        self.assertEqual(('ERROR', 'src', 'error'), (
            outcome['status'], outcome['host'], outcome['migration']))
        [call] = self.migrate_calls
        self.assertEqual('qemu+tcp://%s/system' % FIRST, call.dconnuri)
        self.assertEqual([], self.log_lines('[nova_migration_net.hooks]',
                                            'trying %s' % SECOND))
