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
from tests.functional import test_records

FIRST = '172.168.1.15'
SECOND = '172.31.0.15'
TWO_NETWORKS = ['172.168.0.0/16', '172.31.0.0/24']
SOURCE_EVENT = test_records.SOURCE_EVENT


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
        [line] = self.log_lines('WARNING [nova_migration_net.steering]',
                                '%s, the destination\'s migration address '
                                '1 of 2: libvirt could not connect' % FIRST,
                                'nothing was sent, trying %s' % SECOND)
        # The probe found the address answering: libvirt had to try it.
        self.assertEqual([(FIRST, 16509)], self.probes)

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
class TestNoAddressWorks(OrderedAddressesCloud, test_faults.FaultCloud,
                         test_records.RecordsCloud):

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
        event = self.events(server)[SOURCE_EVENT]
        self.assertEqual('Error', event['result'])
        self.assertIn("attempts: %s: unable to connect to server at "
                      "'%s:16509': No route to host; %s: unable to connect"
                      % (FIRST, FIRST, SECOND), event['details'])
        self.assertIn("%s: unable to connect to server at '%s:16509'"
                      % (SECOND, SECOND), lines[0])
        self.assertIn('No memory of the instance was sent', lines[0])


class TestSentMemoryIsNeverRetried(
        OrderedAddressesCloud, test_failure_semantics.RunningMigrationCloud):
    """A stream cut after memory was sent is nova's to handle: never a
    second address, nor the management network.
    """

    def cut_on_the_first_address(self):
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
        self.assertEqual([], self.log_lines(
            'WARNING [nova_migration_net.steering]'))

    def test_stream_cut_on_the_first_address_keeps_nova_handling(self):
        self.cut_on_the_first_address()

    def test_stream_cut_is_not_retried_with_fallback_either(self):
        self.flags(fallback_to_management=True, group='migration_net')
        self.cut_on_the_first_address()


class TestProbe(OrderedAddressesCloud, test_records.RecordsCloud):
    """An address that drops packets costs the probe's bound, not libvirt's
    two-minute connect timeout; libvirt never tries it.
    """

    def test_silent_first_address_is_skipped_before_libvirt_tries_it(self):
        self.start_computes()
        self.silent.add(FIRST)
        [call] = self.migrate()
        self.assertEqual('qemu+tcp://%s/system' % SECOND, call.dconnuri)
        self.assertEqual('tcp://%s' % SECOND, call.params['migrate_uri'])
        # The last address is not probed: libvirt's error says more.
        self.assertEqual([(FIRST, 16509)], self.probes)
        [line] = self.log_lines('WARNING [nova_migration_net.steering]',
                                'migration address 1 of 2: no answer on '
                                'port 16509 within 1.5 s',
                                'nothing was sent, trying %s' % SECOND)
        event = self.events(self.server)[SOURCE_EVENT]
        self.assertEqual(
            "migration plane: streams to %s, the destination's "
            "my_live_migration_ip; transport qemu+tcp, memory stream not "
            "encrypted; attempts: %s: no answer on port 16509 within 1.5 s; "
            "%s: used" % (SECOND, FIRST, SECOND), event['details'])
        [payload] = self.payloads('migration_net.live_migration')
        self.assertEqual(
            ['%s: no answer on port 16509 within 1.5 s' % FIRST,
             '%s: used' % SECOND], payload['attempts'])

    def test_one_address_and_no_fallback_is_never_probed(self):
        self.start_computes(networks=['172.168.0.0/16'])
        self.migrate()
        self.assertEqual([], self.probes)

    def test_working_first_address_costs_one_probe(self):
        self.start_computes()
        [call] = self.migrate()
        self.assertEqual('qemu+tcp://%s/system' % FIRST, call.dconnuri)
        self.assertEqual([(FIRST, 16509)], self.probes)

    def test_probe_goes_to_libvirtd_tls_port_with_qemu_tls(self):
        self.start_computes(live_migration_scheme='tls')
        self.migrate()
        self.assertEqual([(FIRST, 16514)], self.probes)

    def test_probe_goes_to_sshd_with_qemu_ssh(self):
        self.start_computes(live_migration_scheme='ssh')
        self.migrate()
        self.assertEqual([(FIRST, 22)], self.probes)

    def test_native_tls_probes_libvirtd_on_the_address(self):
        self.start_computes(live_migration_with_native_tls=True)
        self.silent.add(FIRST)
        [call] = self.migrate()
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        self.assertEqual('tcp://%s' % SECOND, call.params['migrate_uri'])
        self.assertEqual([(FIRST, 16509)], self.probes)


class TestFallback(OrderedAddressesCloud, test_records.RecordsCloud):
    """``fallback_to_management``: stock nova's migration, said so."""

    def setUp(self):
        super().setUp()
        self.flags(fallback_to_management=True, group='migration_net')

    def test_no_address_connects_migrates_to_the_hostname_as_stock(self):
        self.start_computes()
        self.unreachable.update((FIRST, SECOND))
        first, second, stock = self.migrate()
        self.assertEqual(['qemu+tcp://%s/system' % a for a in (FIRST, SECOND)]
                         + ['qemu+tcp://dest/system'],
                         [c.dconnuri for c in (first, second, stock)])
        # Stock nova hands libvirt no migrate_uri without an inbound addr.
        self.assertNotIn('migrate_uri', stock.params)
        self.assertEqual(
            {k: v for k, v in first.params.items() if k != 'migrate_uri'},
            stock.params)
        self.assertEqual(first.flags, stock.flags)
        [line] = self.log_lines('WARNING [nova_migration_net.steering]',
                                'falls back to dest, as stock nova migrates')
        self.assertIn('%s: unable to connect to server' % FIRST, line)
        event = self.events(self.server)[SOURCE_EVENT]
        self.assertEqual('Success', event['result'])
        self.assertTrue(event['details'].startswith(
            "management plane: streams to dest, the destination's hostname; "
            "no migration address of the destination could be used, and "
            "fallback_to_management is set on this host; transport "
            "qemu+tcp, memory stream not encrypted; attempts: %s: unable "
            "to connect" % FIRST), event['details'])
        self.assertTrue(event['details'].endswith('; dest: used'),
                        event['details'])
        [payload] = self.payloads('migration_net.live_migration')
        self.assertEqual(('management', 'fallback', 'dest', 3),
                         (payload['plane'], payload['reason'],
                          payload['address'], len(payload['attempts'])))

    def test_silent_addresses_cost_only_their_probes(self):
        self.start_computes()
        self.silent.update((FIRST, SECOND))
        [stock] = self.migrate()
        self.assertEqual('qemu+tcp://dest/system', stock.dconnuri)
        self.assertEqual([(FIRST, 16509), (SECOND, 16509)], self.probes)

    def test_fallback_goes_to_the_inbound_addr_as_stock_nova_would(self):
        self.start_computes(live_migration_inbound_addr='192.0.2.7')
        self.silent.update((FIRST, SECOND))
        [stock] = self.migrate()
        self.assertEqual('qemu+tcp://192.0.2.7/system', stock.dconnuri)
        self.assertEqual('tcp://192.0.2.7', stock.params['migrate_uri'])

    def test_native_tls_fallback_verifies_the_hostname_as_stock(self):
        self.start_computes(live_migration_with_native_tls=True)
        self.silent.update((FIRST, SECOND))
        [stock] = self.migrate()
        self.assertEqual('qemu+tcp://dest/system', stock.dconnuri)
        self.assertNotIn('migrate_uri', stock.params)
        self.assertNotIn('tls.destination', stock.params)
        [payload] = self.payloads('migration_net.live_migration')
        self.assertEqual(('native TLS', True, 'dest'),
                         (payload['transport'], payload['encrypted'],
                          payload['tls_name']))

    def test_tunnelled_fallback_follows_the_connection(self):
        self.start_computes(live_migration_tunnelled=True)
        self.silent.update((FIRST, SECOND))
        [stock] = self.migrate(block_migration=False)
        self.assertEqual('qemu+tcp://dest/system', stock.dconnuri)
        self.assertNotIn('migrate_uri', stock.params)
