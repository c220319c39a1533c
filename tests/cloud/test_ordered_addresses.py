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

"""Ordered migration addresses on the real cloud (issue 28).

Both computes run the plugin with one configuration, ``[migration_net]
migration_networks = 172.30.0.0/24, 172.31.0.0/24``: each advertises its
address on ``migr0`` first and its address on ``migr1`` second. A server
booted on compute-a live-migrates to compute-b while links of compute-b
are down (``ip link set down`` in its namespace, :func:`faults.link_down`):

- ``migr0`` down: 172.30.0.2 gives no answer, the source tries
  172.31.0.2 within :data:`NEXT_ATTEMPT_SECONDS` and the migration
  completes there;
- both down: nova rolls back cleanly, the server ACTIVE on compute-a,
  and the source logs one ERROR that names both addresses;
- both down, ``fallback_to_management = True`` on the source: the
  migration completes over ``mgmt0``, the source warns that it fell back.

In these three the source's record, the ``live-migration`` action's event
and the versioned notification (:mod:`tests.cloud.test_records`), lists
each attempt in order and the plane finally used.

And the plugin as it was before issue 28 (:data:`OLDER_PLUGIN`, installed
from this repository's history) on compute-b: migrations both ways stream
to the first address, with no object backport.

Each migration that completes passes
:meth:`scenario.CloudTestCase.assertMigrated` (the guest's memory
checksum intact, at least 95% of the bytes on the expected link); each
that fails leaves the guest running on the source with its checksum
(:meth:`test_faults.FaultCase.assertNothingLost`).
"""

import datetime
import re

from tests.cloud import faults
from tests.cloud.services import compute
from tests.cloud import streams
from tests.cloud import test_faults
from tests.cloud import test_records
from tests.hypervisor import testbed

NETWORKS = '172.30.0.0/24, 172.31.0.0/24'
# The bound on the time from a migration's first attempt (nova's "About to
# invoke the migrate API", just before it hands the guest to libvirt) to
# the plugin's line that it tries the next address: issue 28's "about 2 s".
# Measured 1.50 s: the plugin's probe of 172.30.0.2 gives up after its
# 1.5 s (steering.PROBE_TIMEOUT). Without the probe it was 3.09 s, the
# kernel giving up resolving the downed address (three ARP probes a second
# apart, then libvirt's "No route to host").
NEXT_ATTEMPT_SECONDS = 2.0
SOURCE_EVENT = test_records.SOURCE_EVENT
# The plugin before issue 28's ordered addresses (after the revert of its
# first slice): a destination advertises only its first address.
OLDER_PLUGIN = 'c780404342ce3a72eab591cae0ac5232792d9798'
# What nova's conductor logs when a compute asks it for a backport of the
# live migration data, the one object the plugin changes.
BACKPORT = 'Backporting LibvirtLiveMigrateData'
# oslo.log's time stamp at the start of each line.
STAMP = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) ')
FIRST_ATTEMPT = 'About to invoke the migrate API'


def ordered(**migration_net):
    """The plugin with :data:`NETWORKS`, and these ``[migration_net]``
    options.
    """
    return compute.Spec(True, migration_networks=NETWORKS,
                        migration_net=tuple(sorted(migration_net.items())))


def older_plugin():
    return ordered()._replace(plugin_from=OLDER_PLUGIN)


def stamp(line):
    """The time of an oslo.log ``line``."""
    return datetime.datetime.strptime(STAMP.match(line).group(1),
                                      '%Y-%m-%d %H:%M:%S.%f')


def plugin_lines(text, level):
    """The plugin's lines of ``level`` in an oslo.log ``text``."""
    return [line for logger, line in faults.problems(text)
            if logger.startswith('nova_migration_net')
            and faults.LOG_LINE.match(line).group('level') == level]


class TestOrderedAddresses(test_faults.FaultCase):
    """The cases of the module doc, in order: the first two run the
    computes alike, the fallback restarts compute-a, the older plugin both.
    """

    def links_down(self, host, links):
        """Take ``links`` down on ``host``; the function that brings them
        back.
        """
        restores = [faults.link_down(self.cloud, host, link)
                    for link in links]

        def restore():
            for undo in reversed(restores):
                undo()
        return restore

    def setUp(self):
        super().setUp()
        self.listener = test_records.Listener(
            self.cloud.rabbitmq.transport_url)
        self.addCleanup(self.listener.stop)

    def record(self, server):
        """The source's record of the server's latest live migration: its
        event on the ``live-migration`` action, and the payload of the one
        versioned notification the source sent for it, with its event
        type.
        """
        actions = sorted(
            (a for a in self.conn.compute.server_actions(server)
             if a.action == 'live-migration'), key=lambda a: a.start_time)
        action = self.conn.compute.get_server_action(actions[-1].request_id,
                                                     server)
        [event] = [e for e in action.events if e['event'] == SOURCE_EVENT]
        [notification] = self.listener.wait_for(server.id, action.request_id,
                                                1)
        payload = notification['payload']['nova_object.data']
        return event, dict(payload, event_type=notification['event_type'])

    def assertAttempts(self, payload, addresses, used):
        """The record's attempts went to ``addresses`` in order, and the
        last one carried the migration if ``used``.
        """
        self.assertEqual(addresses, [attempt.split(': ', 1)[0]
                                     for attempt in payload['attempts']],
                         payload)
        outcomes = [attempt.split(': ', 1)[1]
                    for attempt in payload['attempts']]
        self.assertNotIn('used', outcomes[:-1], payload)
        self.assertEqual(used, outcomes[-1] == 'used', payload)

    def assertAdvertisesBoth(self, host):
        self.assertIn(
            'live migrations from hosts running the plugin will stream to '
            'this host at %s, or else %s.' % (host.migration_ipv4,
                                              host.migration1_ipv4),
            self.node(host).log_text())

    def test_1_first_link_down_completes_on_the_second(self):
        """``migr0`` down on compute-b: the attempt on 172.30.0.2 fails
        at connect time, the migration completes on 172.31.0.2, its
        memory stream and libvirt's connection over ``migr1``.
        """
        with self.logs_on_failure():
            self.computes(ordered(), ordered())
            for host in (self.a, self.b):
                self.assertAdvertisesBoth(host)
            server, checksum = self.boot(self.a)
            log = faults.LogMark(self.node(self.a).log)
            self.addCleanup(faults.link_down(self.cloud, self.b,
                                             testbed.MIGR_IF))
            pid, second = self.cloud.host_pid(self.a), self.b.migration1_ipv4
            with streams.counting(pid, second) as qemu, streams.counting(
                    pid, second, streams.LIBVIRTD_PORTS) as libvirtd:
                server, moved, seconds = self.live_migrate(server, self.b)
            self.assertMigrated(
                server, self.b, checksum, moved, testbed.MIGR1_IF,
                'streams over the migration plane to 172.30.0.2')
        new = log.new()
        self.assertGreaterEqual(qemu.peak, 1, 'no QEMU stream to 172.31.0.2')
        self.assertEqual(1, libvirtd.peak)
        self.assertEqual([], plugin_lines(new, 'ERROR'))
        [warning] = plugin_lines(new, 'WARNING')
        self.assertIn('[instance: %s] Live migration to compute-b: '
                      "172.30.0.2, the destination's migration address 1 "
                      'of 2: ' % server.id, warning)
        self.assertIn('; nothing was sent, trying 172.31.0.2.', warning)
        [first] = [line for line in new.splitlines()
                   if FIRST_ATTEMPT in line and server.id in line]
        waited = (stamp(warning) - stamp(first)).total_seconds()
        print('%s: %.3f s from the first attempt to the second; migration '
              '%.1f s; bytes %s' % (self.id(), waited, seconds, moved))
        self.assertGreaterEqual(waited, 0)
        self.assertLess(waited, NEXT_ATTEMPT_SECONDS, '%s\n%s'
                        % (first, warning))
        event, payload = self.record(server)
        self.assertEqual(
            ('Success', self.a.name, 'migration_net.live_migration',
             'migration', '172.31.0.2', None, 'qemu+tcp', False),
            (event['result'], event['host'], payload['event_type'],
             payload['plane'], payload['address'], payload['reason'],
             payload['transport'], payload['encrypted']), payload)
        self.assertAttempts(payload, ['172.30.0.2', '172.31.0.2'], True)
        self.assertTrue(event['details'].startswith(
            'migration plane: streams to 172.31.0.2, '), event['details'])
        self.assertIn('; attempts: 172.30.0.2: ', event['details'])
        self.assertTrue(event['details'].endswith('; 172.31.0.2: used'),
                        event['details'])

    def test_2_both_links_down_rolls_back(self):
        """``migr0`` and ``migr1`` down on compute-b, the option at its
        default: the server stays ACTIVE on compute-a, nothing lost, the
        migration ``failed``; the source's one ERROR names both addresses
        in order, and so does its record, an error.
        """
        servers = []

        def both_down(server):
            servers.append(server)
            return self.links_down(self.b,
                                   (testbed.MIGR_IF, testbed.MIGR1_IF))
        outcome, checksum = self.measure([ordered(), ordered()],
                                         before=both_down)
        self.assertEqual(
            ('ACTIVE', 'active', None, self.a.name, 'failed'),
            (outcome.status, outcome.vm_state, outcome.task_state,
             outcome.nova_host, outcome.migration), faults.as_json(outcome))
        self.assertNothingLost(outcome, checksum)
        errors = [line for line in outcome.plugin_problems
                  if ' ERROR ' in line]
        self.assertEqual(1, len(errors), outcome.plugin_problems)
        [error] = errors
        self.assertIn(' ERROR nova_migration_net.hooks ', error)
        self.assertLess(error.index(self.b.migration_ipv4),
                        error.index(self.b.migration1_ipv4), error)
        self.assertIn('the instance keeps running on this host', error)
        event, payload = self.record(servers[0])
        self.assertEqual(
            ('Error', self.a.name, 'migration_net.live_migration.error',
             'migration', '172.31.0.2', None),
            (event['result'], event['host'], payload['event_type'],
             payload['plane'], payload['address'], payload['reason']),
            payload)
        self.assertAttempts(payload, ['172.30.0.2', '172.31.0.2'], False)
        self.assertTrue(event['details'].startswith(
            'migration plane: the live migration to 172.31.0.2, '),
            event['details'])
        self.assertIn('; attempts: 172.30.0.2: ', event['details'])

    def test_3_both_links_down_falls_back_to_management(self):
        """Both links down on compute-b, ``fallback_to_management = True``
        on compute-a: the migration goes to compute-b's hostname over
        ``mgmt0`` and completes; the source warns that it fell back.
        """
        with self.logs_on_failure():
            self.computes(ordered(fallback_to_management='True'),
                          ordered())
            server, checksum = self.boot(self.a)
            log = faults.LogMark(self.node(self.a).log)
            self.addCleanup(self.links_down(
                self.b, (testbed.MIGR_IF, testbed.MIGR1_IF)))
            server, moved, seconds = self.live_migrate(server, self.b)
            self.assertMigrated(
                server, self.b, checksum, moved, testbed.MGMT_IF,
                'streams over the migration plane to 172.30.0.2')
        new = log.new()
        print('%s: migration %.1f s; bytes %s' % (self.id(), seconds, moved))
        self.assertEqual([], plugin_lines(new, 'ERROR'))
        warnings = plugin_lines(new, 'WARNING')
        self.assertEqual(3, len(warnings), new)
        self.assertIn('; nothing was sent, trying 172.31.0.2.', warnings[0])
        self.assertIn('; nothing was sent, trying the management network.',
                      warnings[1])
        fell_back = warnings[2]
        self.assertIn('Live migration to compute-b falls back to '
                      'compute-b, as stock nova migrates, because '
                      'fallback_to_management is set', fell_back)
        self.assertLess(fell_back.index(self.b.migration_ipv4),
                        fell_back.index(self.b.migration1_ipv4), fell_back)
        event, payload = self.record(server)
        self.assertEqual(
            ('Success', self.a.name, 'migration_net.live_migration',
             'management', 'compute-b', 'fallback'),
            (event['result'], event['host'], payload['event_type'],
             payload['plane'], payload['address'], payload['reason']),
            payload)
        self.assertAttempts(payload,
                            ['172.30.0.2', '172.31.0.2', 'compute-b'], True)
        self.assertIn('fallback_to_management is set on this host',
                      event['details'])

    def test_4_older_plugin_on_one_compute(self):
        """The plugin of :data:`OLDER_PLUGIN` on compute-b, this one on
        compute-a, both with :data:`NETWORKS`: compute-b advertises its
        first address only, and a server migrates to compute-b and back
        on ``migr0``; nova's conductor backports no migration data.
        """
        with self.logs_on_failure():
            self.computes(ordered(), older_plugin())
            self.assertAdvertisesBoth(self.a)
            self.assertIn(
                'live migrations from hosts running the plugin will stream '
                'to this host at %s.' % self.b.migration_ipv4,
                self.node(self.b).log_text())
            conductor = faults.LogMark(self.cloud.nova.log('conductor'))
            server, checksum = self.boot(self.a)
            for destination in (self.b, self.a):
                source = self.other(destination)
                log = faults.LogMark(self.node(source).log)
                server, moved, _ = self.live_migrate(server, destination)
                self.assertMigrated(
                    server, destination, checksum, moved, testbed.MIGR_IF,
                    'streams over the migration plane to %s'
                    % destination.migration_ipv4)
                new = log.new()
                self.assertEqual(1, new.count('streams over the'), new)
                self.assertIn('streams over the migration plane to %s'
                              % destination.migration_ipv4, new)
                if destination is self.b:
                    # compute-b advertised one address: nothing to try
                    # after it.
                    self.assertNotIn('next addresses are tried', new)
                self.assertEqual([], plugin_lines(new, 'WARNING')
                                 + plugin_lines(new, 'ERROR'))
        backported = conductor.new()
        self.assertNotIn(BACKPORT, backported)
        for host in (self.a, self.b):
            self.assertNotIn('IncompatibleObjectVersion',
                             self.node(host).log_text())
