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

"""Faults in nova's whole stack: hostile peers, the plane down, many at once.

Each test boots real servers on ``src`` through the API and live-migrates
them to ``dest``; nova's fake libvirt stands in for libvirtd and QEMU.
"""

import inspect
import threading
import time

import fixtures
from nova.compute import rpcapi as compute_rpcapi
from nova.objects import base as nova_base
from nova.virt.libvirt import driver as libvirt_driver

from nova_migration_net import activation
from tests import fixtures as mn_fixtures
from tests.functional import cloud

IPV4 = '172.168.1.15'
# Seconds ten migrations at once may take to start, or to complete, on two
# busy cores.
WAIT = 90


class FaultCloud(cloud.LiveMigrationCloud):

    def start_live_migration(self, server, host='dest'):
        self.api.post_server_action(
            server['id'],
            {'os-migrateLive': {'host': host, 'block_migration': 'auto'}})

    def assert_still_on_src(self, server, migration_status):
        """The live migration failed and nothing of ``server`` was lost."""
        migration = self._wait_for_migration_status(server,
                                                    [migration_status])
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'src',
                     'OS-EXT-STS:task_state': None})
        # The guest, and so its local disks, still runs on src only.
        src = self.src.driver._host.get_connection()
        self.assertTrue(src.lookupByUUIDString(server['id']).isActive())
        dest = self.dest.driver._host.get_connection()
        self.assertNotIn(server['id'],
                         [d.UUIDString() for d in dest._vms.values()])
        # Resources are claimed on src only, the migration's are given back.
        src_rp = self._get_provider_uuid_by_host('src')
        self.assertEqual([src_rp], list(
            self._get_allocations_by_server_uuid(server['id'])))
        self.assertEqual({}, self.placement.get(
            '/allocations/%s' % migration['uuid']).body['allocations'])
        return server


# For tests of a migrateToURI3 that fails.
REQUIRES_NOVA_34_MONITOR = mn_fixtures.requires_nova(
    34, "nova 32's live migration monitor does not notice a migrateToURI3 "
    "that fails in nova's fake libvirt (it reports the migration running "
    'until the test times out), with or without the plugin; these tests '
    "pin nova 34's handling, as checked with nova 34.0.0")


@REQUIRES_NOVA_34_MONITOR
class TestMigrationPlaneDown(FaultCloud):
    """libvirt cannot reach the destination's migration IP."""

    def boot_with_port(self):
        return self._create_server(
            host='src', networks=[{'port': self.neutron.port_1['id']}])

    def test_unreachable_migration_ip_rolls_back_and_loses_nothing(self):
        self.start_computes(dest_migration_ip=IPV4)
        self.unreachable.add(IPV4)
        server = self.boot_with_port()
        self.start_live_migration(server)
        self.assert_still_on_src(server, 'failed')
        [call] = self.migrate_calls
        self.assertEqual('tcp://172.168.1.15', call.params['migrate_uri'])
        # The port stays bound to src; the inactive dest binding is gone.
        port = self.neutron.port_1['id']
        self.assertEqual(['src'], list(self.neutron._port_bindings[port]))
        self.assertEqual('src', self.neutron.show_port(
            port)['port']['binding:host_id'])
        lines = self.log_lines('ERROR [nova_migration_net.hooks]',
                               'Live migration to dest over the migration '
                               'plane failed')
        self.assertEqual(1, len(lines), lines)
        self.assertIn("libvirt could not connect to 172.168.1.15, the "
                      "destination's my_live_migration_ip (unable to "
                      "connect to server at '172.168.1.15:16509': No route "
                      "to host)", lines[0])
        self.assertIn('Check that 172.168.1.15 is assigned to an interface '
                      'of dest', lines[0])
        # Once the plane is back, the same server migrates over it.
        self.unreachable.clear()
        self._live_migrate(server, 'completed', host='dest')
        self.assertEqual('dest', self.api.get_server(
            server['id'])['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('qemu+tcp://172.168.1.15/system',
                         self.migrate_calls[-1].dconnuri)

    def test_unreachable_hostname_keeps_nova_error_handling(self):
        # Off the migration plane the plugin changes nothing: nova 34 puts
        # the instance into ERROR although its guest still runs on src.
        self.start_computes()
        self.unreachable.add('dest')
        server = self._create_server(host='src', networks='none')
        self.start_live_migration(server)
        self._wait_for_migration_status(server, ['error'])
        server = self._wait_for_state_change(server, 'ERROR',
                                             wait_for_fault_key=False)
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        [call] = self.migrate_calls
        self.assertEqual('qemu+tcp://dest/system', call.dconnuri)
        self.assertEqual([], self.log_lines('nova_migration_net',
                                            'failed'))


class TestHostilePeer(FaultCloud):
    """The source reads a hostile ``migration_ip`` from pre_live_migration.

    The destination's answer is re-serialized with the hostile value and
    read by nova's own RPC serializer, as the source's RPC client does.
    """

    def hostile_pre_live_migration(self, value):
        original = compute_rpcapi.ComputeAPI.pre_live_migration
        serializer = nova_base.NovaObjectSerializer()

        def pre_live_migration(api, ctxt, *args, **kwargs):
            primitive = serializer.serialize_entity(
                ctxt, original(api, ctxt, *args, **kwargs))
            primitive['nova_object.data']['migration_ip'] = value
            return serializer.deserialize_entity(ctxt, primitive)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.compute.rpcapi.ComputeAPI.pre_live_migration',
            pre_live_migration))

    def test_hostile_migration_ip_fails_before_libvirt_is_called(self):
        forged = '2026-01-01 00:00:00,000 INFO [nova] forged'
        self.hostile_pre_live_migration('172.168.1.15/x?y#\n' + forged)
        self.start_computes(dest_migration_ip=IPV4)
        server = self._create_server(host='src', networks='none')
        self.start_live_migration(server)
        self.assert_still_on_src(server, 'failed')
        self.assertEqual([], self.migrate_calls)
        output = self.stdlog.logger.output
        self.assertIn("InvalidAddress: migration_ip '172.168.1.15/x?y#\\n"
                      "2026-01-01 00:00:00,000 INFO [nova] forged' is not a "
                      "usable migration address", output)
        self.assertEqual([], [line for line in output.splitlines()
                              if line.startswith(forged)])


class TestConcurrentMigrations(FaultCloud):
    """Many live migrations in flight at once, all on the plane."""

    COUNT = 10

    def wait_for_migrations(self, servers, status, timeout=WAIT):
        """Wait until every server's migration record is in ``status``.

        nova's ``_wait_for_migration_status`` gives each server 5 s: too
        short for the first of ten migrations that all complete together,
        on two busy cores.
        """
        wanted = {server['id'] for server in servers}
        deadline = time.monotonic() + timeout
        while True:
            statuses = {
                migration['instance_uuid']: migration['status']
                for migration in getattr(self, 'admin_api', self.api).api_get(
                    '/os-migrations').body['migrations']
                if migration['instance_uuid'] in wanted}
            if (set(statuses) == wanted and
                    set(statuses.values()) == {status}):
                return
            self.assertLess(time.monotonic(), deadline,
                            'migrations not all %s after %d s: %s'
                            % (status, timeout, statuses))
            time.sleep(0.5)

    def _migrate_to_uri3(self, domain, dconnuri, params, flags):
        # Completes only once all COUNT migrations are inside libvirt.
        self.in_flight.wait()
        super()._migrate_to_uri3(domain, dconnuri, params, flags)

    def test_ten_concurrent_migrations_all_stream_to_the_migration_ip(self):
        self.in_flight = threading.Barrier(self.COUNT, timeout=WAIT)
        self.flags(max_concurrent_live_migrations=self.COUNT)
        self.start_computes(dest_migration_ip=IPV4)
        # One request boots them all: one by one takes much longer.
        body = self._build_server(host='src', networks='none')
        body['min_count'] = self.COUNT
        self.api.post_server({'server': body})
        servers = self.api.get_servers(detail=False)
        self.assertEqual(self.COUNT, len(servers))
        servers = [self._wait_for_state_change(server, 'ACTIVE')
                   for server in servers]
        for server in servers:
            self.start_live_migration(server)
        self.wait_for_migrations(servers, 'completed')
        for server in servers:
            self._wait_for_server_parameter(
                server, {'status': 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'dest'})
        self.assertFalse(self.in_flight.broken)
        self.assertEqual(sorted(s['id'] for s in servers),
                         sorted(c.instance for c in self.migrate_calls))
        for call in self.migrate_calls:
            self.assertEqual('qemu+tcp://172.168.1.15/system', call.dconnuri)
            self.assertEqual('tcp://172.168.1.15',
                             call.params['migrate_uri'])
        self.assertEqual(self.COUNT, len(self.log_lines(
            'streams over the migration plane to 172.168.1.15')))
        # What the hooks remember after all this: nothing.
        hooks = installed_hooks()
        self.assertEqual({'init_host', 'pre_live_migration',
                          'live_migration', '_live_migration_operation'},
                         set(hooks))
        self.assertEqual({}, {name: vars(hook)
                              for name, hook in hooks.items() if vars(hook)})


def installed_hooks():
    """The hook objects activation wrapped around LibvirtDriver's methods."""
    hooks = {}
    for name in activation.KNOWN_SIGNATURES:
        wrapper = getattr(libvirt_driver.LibvirtDriver, name)
        for phase in ('pre', 'post', 'error'):
            bound = inspect.getclosurevars(wrapper).nonlocals.get(phase)
            if bound is not None:
                hooks[name] = bound.__self__
    return hooks
