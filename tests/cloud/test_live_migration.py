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

"""Live migrations made by real nova-computes, through the API.

Each case restarts the two computes as it needs them (plugin installed
and configured or not, the migration IP, the concurrency mode), boots a
noise server on compute-a and live-migrates it to compute-b with
``os-migrateLive`` (a block migration: the hosts share no storage). It
passes only if:

- the server is ACTIVE on compute-b and its migration record completed;
- the guest, now on compute-b, computes the memory checksum it computed
  before (its console output there);
- at least 95% of the bytes the source's two links carried meanwhile
  crossed the expected link (the kernel's counters in compute-a's
  namespace);
- the source nova-compute's log names the plane it streamed over, when
  it runs the plugin.
"""

import os
import time
import unittest

from tests.cloud import cloud as cloud_
from tests.cloud import guests
from tests.cloud.services import compute
from tests.hypervisor import test_planes
from tests.hypervisor import testbed

# One result per case, for tools/cloud_report.py; in the cloud's work
# directory, which each run starts afresh.
RESULTS = os.path.join(cloud_.WORK_DIR, 'results.json')

# What nova-compute must never say at start-up: eventlet or locks set up
# before the concurrency mode was chosen.
BAD_START_UP = ('imported prior to eventlet monkey patching',
                'RLock(s) were not greened',
                'eventlet library imported early')

MIGRATION_TIMEOUT = 300


class TestLiveMigration(unittest.TestCase):
    """One cloud for the class; one migration per case."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        reason = cloud_.why_unavailable()
        if reason:
            raise unittest.SkipTest(reason)
        cls.cloud = cloud_.Cloud()
        start = time.monotonic()
        try:
            cls.cloud.setUp()
        except Exception:
            print(cls.cloud.log_tails())
            cls.cloud.cleanUp()
            raise
        cls.up_seconds = time.monotonic() - start
        cls.addClassCleanup(cls.cloud.cleanUp)
        cls.guests = guests.Guests(cls.cloud)
        cls.source, cls.destination = cls.cloud.testbed.hosts

    def setUp(self):
        super().setUp()
        self.conn = self.cloud.admin

    def computes(self, source, destination):
        """Run the computes with these specs (restarting what differs)."""
        for host, spec in ((self.source, source),
                           (self.destination, destination)):
            node = self.cloud.computes[host.name]
            if node.spec != spec or not node.daemon.alive():
                node.restart(spec)
        for host in self.cloud.testbed.hosts:
            self.assertCleanStartUp(self.cloud.computes[host.name])

    def assertCleanStartUp(self, node):
        """Nothing about eventlet or ungreened locks in its log or output;
        with the plugin, its log file says it is active and what it
        advertises, before any migration.
        """
        log, output = node.log_text(), node.output_text()
        for bad in BAD_START_UP:
            self.assertNotIn(bad, log, node.log)
            self.assertNotIn(bad, output, node.output)
        if not node.spec.plugin:
            return
        before = log.split('Live migration', 1)[0]
        self.assertIn('nova-migration-net is active', before)
        if node.spec.migration_ip:
            self.assertIn(
                'live migrations from hosts running the plugin will stream '
                'to this host at %s' % node.spec.migration_ip, before)

    def live_migrate(self, server):
        """Live-migrate ``server`` to the destination; bytes per link on
        the source and seconds from the API call to the end.
        """
        compute_api = self.conn.compute
        with self.cloud.testbed.bytes_moved(self.source) as moved:
            start = time.monotonic()
            compute_api.live_migrate_server(
                server, host=self.destination.name, block_migration='auto')
            deadline = start + MIGRATION_TIMEOUT
            while time.monotonic() < deadline:
                server = compute_api.get_server(server)
                if server.task_state is None and (
                        server.compute_host == self.destination.name
                        or server.status == 'ERROR'):
                    break
                time.sleep(0.5)
            seconds = time.monotonic() - start
        return server, moved, seconds

    def check_migration(self, *args, **kwargs):
        """Boot, live-migrate, and assert the four things (module doc);
        on failure, print the end of every service's logs.
        """
        try:
            self._check_migration(*args, **kwargs)
        except Exception:
            print(self.cloud.log_tails())
            raise

    def _check_migration(self, expected_link, source, destination,
                         plane_line=None):
        self.computes(source, destination)
        name = self.id().rsplit('.', 1)[1]
        server, checksum = self.guests.boot(name, self.source)
        self.addCleanup(self.guests.delete, server)
        server, moved, seconds = self.live_migrate(server)

        self.assertEqual(('ACTIVE', self.destination.name),
                         (server.status, server.compute_host))
        migrations = list(self.conn.compute.migrations(
            instance_uuid=server.id))
        self.assertEqual(['completed'], [m.status for m in migrations])
        sums = self.guests.wait_for_checksums(server)
        self.assertEqual({checksum}, set(sums))
        on_link = test_planes.share(moved, expected_link)
        self.assertGreaterEqual(
            on_link, test_planes.MIN_SHARE, '%.2f%% of %d bytes on %s: %s'
            % (100 * on_link, sum(moved.values()), expected_link, moved))
        self.assertGreater(moved[expected_link], 100 * 1024 * 1024)
        source_log = self.cloud.computes[self.source.name].log_text()
        if plane_line:
            self.assertIn(plane_line, source_log)
        else:
            self.assertNotIn('streams over the', source_log)
        self.record(seconds, moved, expected_link, source, destination)

    def record(self, seconds, moved, expected, source, destination):
        result = {'case': self.id().rsplit('.', 1)[1],
                  'source': source._asdict(),
                  'destination': destination._asdict(),
                  'seconds': round(seconds, 1), 'expected': expected,
                  'bytes': moved, 'cloud_up_seconds':
                      round(self.up_seconds, 1)}
        test_planes.append_result(RESULTS, result)

    # The cases

    def test_stock_computes_stream_over_the_management_link(self):
        self.check_migration(testbed.MGMT_IF, compute.STOCK, compute.STOCK)
