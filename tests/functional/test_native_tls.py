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

"""What libvirt is handed for every valid transport combination.

native TLS on/off x ``live_migration_scheme`` tcp/tls x tunnelled on/off x
block migration on/off x IPv4/IPv6, less tunnelled with native TLS, which
nova refuses. Each test boots a server on ``src``, live-migrates it to
``dest`` (which advertises its migration IP) through nova's in-process
cloud and checks the whole ``migrateToURI3(dconnuri, params, flags)``.
"""

from nova.tests.fixtures import libvirt as fakelibvirt

from nova_migration_net import steering
from tests.functional import cloud

ADDRESSES = {'ipv4': ('172.168.1.15', '172.168.1.15'),
             'ipv6': ('fd00:30::15', '[fd00:30::15]')}


class TestTransports(cloud.LiveMigrationCloud):
    """One test per valid combination; see :func:`_add_transport_tests`."""

    def migrate(self, native_tls, scheme, tunnelled, block, family):
        address, uri_host = ADDRESSES[family]
        if block:
            self.use_non_shared_storage()
        self.start_computes(dest_migration_ip=address,
                            live_migration_with_native_tls=native_tls,
                            live_migration_scheme=scheme,
                            live_migration_tunnelled=tunnelled)
        call = self.live_migrate_server()
        return call, uri_host

    def assertHandedToLibvirt(self, call, dconnuri, extra_params, flags_on,
                              flags_off, block):
        self.assertEqual(dconnuri, call.dconnuri)
        expected = {'bandwidth': 0,
                    'destination_xml': call.params['destination_xml'],
                    'persistent_xml': call.params['destination_xml']}
        if block:
            expected['migrate_disks'] = ['vda']
        expected.update(extra_params)
        self.assertEqual(expected, call.params)
        for flag in flags_on:
            self.assertTrue(call.flags & flag, flag)
        for flag in flags_off:
            self.assertFalse(call.flags & flag, flag)


def _add_transport_tests():
    for native_tls in (True, False):
        for scheme in ('tcp', 'tls'):
            for tunnelled in (False, True):
                if native_tls and tunnelled:
                    # nova-compute refuses to start with both.
                    continue
                for block in (False, True):
                    for family in ('ipv4', 'ipv6'):
                        _add_transport_test(native_tls, scheme, tunnelled,
                                            block, family)


def _add_transport_test(native_tls, scheme, tunnelled, block, family):
    if native_tls:
        behaviour = ('connects_to_the_hostname_streams_to_the_plane_and_'
                     'verifies_the_hostname')
    elif tunnelled:
        behaviour = 'tunnels_through_libvirtd_on_the_plane'
    else:
        behaviour = 'connects_and_streams_to_the_plane'
    name = 'test_%s_%s_%s%s_%s_%s' % (
        'native_tls' if native_tls else 'no_native_tls', scheme,
        'tunnelled_' if tunnelled else '',
        'block_migration' if block else 'shared_storage', family, behaviour)

    def test(self):
        call, uri_host = self.migrate(native_tls, scheme, tunnelled, block,
                                      family)
        flags_on = [fakelibvirt.VIR_MIGRATE_LIVE,
                    fakelibvirt.VIR_MIGRATE_PEER2PEER]
        flags_off = []
        (flags_on if native_tls else flags_off).append(
            fakelibvirt.VIR_MIGRATE_TLS)
        (flags_on if tunnelled else flags_off).append(
            fakelibvirt.VIR_MIGRATE_TUNNELLED)
        # nova drops NON_SHARED_INC when no disk is copied (tunnelled).
        (flags_on if block and not tunnelled else flags_off).append(
            fakelibvirt.VIR_MIGRATE_NON_SHARED_INC)
        if native_tls:
            dconnuri = 'qemu+%s://dest/system' % scheme
            extra = {'migrate_uri': 'tcp://%s' % uri_host,
                     steering.TLS_DESTINATION: 'dest'}
        elif tunnelled:
            dconnuri = 'qemu+%s://%s/system' % (scheme, uri_host)
            extra = {}
        else:
            dconnuri = 'qemu+%s://%s/system' % (scheme, uri_host)
            extra = {'migrate_uri': 'tcp://%s' % uri_host}
        self.assertHandedToLibvirt(call, dconnuri, extra, flags_on,
                                   flags_off, block and not tunnelled)
        # The record says what carried the memory, and whether encrypted:
        # qemu+tls alone encrypts libvirt's connection, not the stream.
        if native_tls:
            transport = ('native TLS', True, 'dest')
        elif tunnelled:
            transport = ('tunnelled over qemu+%s' % scheme, scheme == 'tls',
                         uri_host.strip('[]') if scheme == 'tls' else None)
        else:
            transport = ('qemu+%s' % scheme, False, None)
        [payload] = [n['payload']['nova_object.data']
                     for n in self.notifier.versioned_notifications
                     if n['event_type'] == 'migration_net.live_migration']
        self.assertEqual(transport, (payload['transport'],
                                     payload['encrypted'],
                                     payload['tls_name']))

    test.__name__ = name
    setattr(TestTransports, name, test)


_add_transport_tests()


class TestNativeTLS(cloud.LiveMigrationCloud):

    def test_native_tls_adds_only_the_plane_to_what_stock_nova_hands(self):
        self.use_non_shared_storage()
        self.start_computes(dest_migration_ip='172.168.1.15',
                            live_migration_with_native_tls=True)
        # The destination advertises nothing: stock nova's call.
        self.flags(my_live_migration_ip=None)
        stock = self.live_migrate_server()
        self.flags(my_live_migration_ip='172.168.1.15')
        plugin = self.live_migrate_server()

        expected = cloud.comparable(stock)
        expected[1].update({'migrate_uri': 'tcp://172.168.1.15',
                            'tls.destination': 'dest'})
        self.assertEqual(expected, cloud.comparable(plugin))

    def test_native_tls_logs_the_plane_and_the_verified_name_once(self):
        self.start_computes(dest_migration_ip='172.168.1.15',
                            live_migration_with_native_tls=True)
        self.live_migrate_server()
        lines = self.log_lines(
            'streams over the migration plane to 172.168.1.15')
        self.assertEqual(1, len(lines), lines)
        self.assertIn('INFO [nova_migration_net.hooks]', lines[0])
        self.assertIn("native TLS verifies the destination's certificate "
                      "against its hostname dest", lines[0])

    def test_native_tls_migration_ip_wins_over_inbound_addr(self):
        self.start_computes(dest_migration_ip='172.168.1.15',
                            live_migration_with_native_tls=True,
                            live_migration_inbound_addr='192.0.2.7')
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])
        self.assertEqual('dest', call.params['tls.destination'])

    def test_native_tls_without_migration_ip_is_stock(self):
        self.start_computes(live_migration_with_native_tls=True)
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        self.assertNotIn('migrate_uri', call.params)
        self.assertNotIn('tls.destination', call.params)

    def test_libvirt_without_tls_destination_falls_back_to_stock(self):
        self.start_computes(dest_migration_ip='172.168.1.15',
                            live_migration_with_native_tls=True)
        self.set_source_libvirt_version((5, 10, 0))
        call = self.live_migrate_server()
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        self.assertNotIn('migrate_uri', call.params)
        self.assertNotIn('tls.destination', call.params)
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_TLS)
        lines = self.log_lines('Live migration to dest streams')
        self.assertEqual(1, len(lines), lines)
        self.assertIn('WARNING [nova_migration_net.hooks]', lines[0])
        self.assertIn('streams to its hostname as stock nova does, not to '
                      '172.168.1.15', lines[0])
        self.assertIn('needs libvirt 6.0.0 or later on this host '
                      '(tls.destination); it has 5.10.0.', lines[0])

    def test_libvirt_6_0_0_streams_to_the_plane(self):
        self.start_computes(dest_migration_ip='172.168.1.15',
                            live_migration_with_native_tls=True)
        self.set_source_libvirt_version((6, 0, 0))
        call = self.live_migrate_server()
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])
        self.assertEqual('dest', call.params['tls.destination'])
