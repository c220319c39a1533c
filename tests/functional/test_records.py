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

"""What an operator reads through the API, and a monitoring system on the
notification bus, about the plane each live migration used.

The events are read as an admin reads them (``GET
/servers/{id}/os-instance-actions/{request_id}``, microversion 2.84, which
shows ``details``); the notifications are nova's versioned notifications
as its notification fixture captures them.
"""

import types

from oslo_messaging import exceptions as messaging_exceptions

from tests import fixtures as mn_fixtures
from tests.functional import cloud
from tests.functional import test_faults

IPV4 = '172.168.1.15'
SOURCE_EVENT = 'migration_net_live_migration'
DESTINATION_EVENT = 'migration_net_pre_live_migration'


class RecordsCloud(cloud.LiveMigrationCloud):

    def events(self, server):
        """``{event name: event}`` of the server's live-migration action."""
        self.api.microversion = '2.84'
        try:
            [action] = [a for a in self.api.get_instance_actions(server['id'])
                        if a['action'] == 'live-migration']
            action = self.api.get_instance_action_details(
                server['id'], action['request_id'])
        finally:
            self.api.microversion = self.microversion
        return {e['event']: e for e in action['events']}

    def plane_notifications(self):
        return [n for n in self.notifier.versioned_notifications
                if n['event_type'].startswith('migration_net.')]

    def payloads(self, event_type):
        return [n['payload']['nova_object.data']
                for n in self.plane_notifications()
                if n['event_type'] == event_type]


class TestPlaneRecords(RecordsCloud):

    def test_migration_plane_is_recorded_with_its_address(self):
        self.start_computes(dest_migration_ip=IPV4)
        self.live_migrate_server()
        event = self.events(self.server)[SOURCE_EVENT]
        self.assertEqual(('Success', 'src'), (event['result'], event['host']))
        self.assertEqual("migration plane: streams to 172.168.1.15, the "
                         "destination's my_live_migration_ip; transport "
                         "qemu+tcp, memory stream not encrypted",
                         event['details'])
        self.assertNotIn(DESTINATION_EVENT, self.events(self.server))
        [notification] = self.plane_notifications()
        self.assertEqual(('INFO', 'migration_net.live_migration',
                          'nova-compute:src'),
                         (notification['priority'],
                          notification['event_type'],
                          notification['publisher_id']))
        payload = notification['payload']
        self.assertEqual(('MigrationPlanePayload', '1.1'),
                         (payload['nova_object.name'],
                          payload['nova_object.version']))
        data = payload['nova_object.data']
        self.assertEqual(
            {'instance_uuid': self.server['id'], 'host': 'src',
             'source_host': 'src', 'destination_host': 'dest',
             'plane': 'migration', 'address': IPV4, 'reason': None,
             'error': None, 'attempts': ['172.168.1.15: used'],
             'transport': 'qemu+tcp', 'encrypted': False, 'tls_name': None},
            {k: data[k] for k in ('instance_uuid', 'host', 'source_host',
                                  'destination_host', 'plane', 'address',
                                  'reason', 'error', 'attempts', 'transport',
                                  'encrypted', 'tls_name')})
        migration = self._wait_for_migration_status(
            self.server, ['completed'])
        self.assertEqual(migration['uuid'], data['migration_uuid'])

    def test_option_unset_is_recorded_by_both_hosts(self):
        self.start_computes()
        self.live_migrate_server()
        events = self.events(self.server)
        self.assertEqual(
            "management plane: streams to dest, the destination's hostname; "
            "the destination advertised no my_live_migration_ip (unset "
            "there, or nova-migration-net not installed there); transport "
            "qemu+tcp, memory stream not encrypted",
            events[SOURCE_EVENT]['details'])
        self.assertEqual('dest', events[DESTINATION_EVENT]['host'])
        self.assertEqual(
            "management plane: streams to dest, the destination's hostname; "
            "my_live_migration_ip is unset on this host",
            events[DESTINATION_EVENT]['details'])
        [dest] = self.payloads('migration_net.pre_live_migration')
        [source] = self.payloads('migration_net.live_migration')
        self.assertEqual(('management', 'option_unset', 'dest'),
                         (dest['plane'], dest['reason'], dest['host']))
        self.assertEqual(('management', 'not_advertised', 'dest'),
                         (source['plane'], source['reason'],
                          source['address']))

    def test_stock_destination_records_nothing_of_its_own(self):
        self.start_computes(dest_migration_ip=IPV4)
        # dest runs nova's own pre_live_migration: stock, option or not.
        hooked = type(self.dest.driver).pre_live_migration
        self.dest.driver.pre_live_migration = types.MethodType(
            hooked.__wrapped__, self.dest.driver)
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        events = self.events(self.server)
        self.assertNotIn(DESTINATION_EVENT, events)
        self.assertIn('management plane: streams to dest',
                      events[SOURCE_EVENT]['details'])
        self.assertEqual(['migration_net.live_migration'],
                         [n['event_type']
                          for n in self.plane_notifications()])

    def test_stock_tls_fallback_says_why(self):
        self.start_computes(dest_migration_ip=IPV4,
                            live_migration_with_native_tls=True)
        self.set_source_libvirt_version('5.10.0')
        self.live_migrate_server()
        self.assertEqual(
            "management plane: streams to dest, the destination's hostname; "
            "native TLS and this host's libvirt has no tls.destination; "
            "transport native TLS, memory stream encrypted, TLS verifies "
            "dest", self.events(self.server)[SOURCE_EVENT]['details'])
        [source] = self.payloads('migration_net.live_migration')
        self.assertEqual(('management', 'stock_tls', 'native TLS', True,
                          'dest'),
                         (source['plane'], source['reason'],
                          source['transport'], source['encrypted'],
                          source['tls_name']))

    def test_inbound_addr_is_named(self):
        self.start_computes(live_migration_inbound_addr='192.0.2.7')
        self.live_migrate_server()
        self.assertIn("inbound_addr plane: streams to 192.0.2.7, the "
                      "destination's live_migration_inbound_addr",
                      self.events(self.server)[SOURCE_EVENT]['details'])

    def test_stock_conductor_writes_the_records(self):
        self.useFixture(mn_fixtures.StockConductorFixture())
        self.start_computes(dest_migration_ip=IPV4)
        self.live_migrate_server()
        self.assertIn('migration plane: streams to 172.168.1.15',
                      self.events(self.server)[SOURCE_EVENT]['details'])


@test_faults.REQUIRES_NOVA_34_MONITOR
class TestFailureRecords(RecordsCloud):

    def test_failure_over_the_plane_names_the_address(self):
        self.start_computes(dest_migration_ip=IPV4)
        self.unreachable.add(IPV4)
        server = self._create_server(host='src', networks='none')
        self.api.post_server_action(
            server['id'], {'os-migrateLive': {'host': 'dest',
                                              'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['failed'])
        self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'src',
                     'OS-EXT-STS:task_state': None})
        event = self.events(server)[SOURCE_EVENT]
        self.assertEqual('Error', event['result'])
        self.assertEqual(
            "migration plane: the live migration to 172.168.1.15, the "
            "destination's my_live_migration_ip, failed: unable to connect "
            "to server at '172.168.1.15:16509': No route to host; transport "
            "qemu+tcp, memory stream not encrypted", event['details'])
        [error] = [n for n in self.plane_notifications()
                   if n['event_type'] == 'migration_net.live_migration.error']
        self.assertEqual('ERROR', error['priority'])
        data = error['payload']['nova_object.data']
        self.assertEqual(('migration', IPV4), (data['plane'],
                                               data['address']))
        self.assertIn('No route to host', data['error'])


class TestRecordingFails(RecordsCloud):

    def test_migration_goes_on_when_the_conductor_cannot_record(self):
        self.start_computes(dest_migration_ip=IPV4)
        self.useFixture(mn_fixtures.RaisesFixture(
            'nova.objects.instance_action.InstanceActionEvent.create',
            messaging_exceptions.MessagingTimeout('conductor gone')))
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://172.168.1.15/system', call.dconnuri)
        self.assertNotIn(SOURCE_EVENT, self.events(self.server))
        lines = self.log_lines('WARNING [nova_migration_net.records]',
                               'Could not record which plane',
                               'migration_net_live_migration',
                               'conductor gone', 'The migration goes on')
        self.assertEqual(1, len(lines), lines)

    def test_migration_goes_on_when_notifying_fails(self):
        self.start_computes(dest_migration_ip=IPV4)
        self.useFixture(mn_fixtures.RaisesFixture(
            'nova_migration_net.records.MigrationPlaneNotification._emit',
            ConnectionError('rabbit gone')))
        self.live_migrate_server()
        self.assertIn('migration plane',
                      self.events(self.server)[SOURCE_EVENT]['details'])
        self.assertEqual(1, len(self.log_lines(
            'Could not record which plane', 'migration_net.live_migration',
            'rabbit gone')))
