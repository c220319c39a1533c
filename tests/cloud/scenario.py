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

"""Scenarios on the real cloud: one cloud per test process, and the steps
and checks every cloud test shares.

The cloud comes up once, for the first test that asks for it, and is torn
down when the process exits (stestr runs this tier in one worker): every
test module of the tier uses the same cloud, as a multinode job runs its
tests against one deployment. Each test says how the two nova-computes
must run (:meth:`CloudTestCase.computes`), and only those that differ
restart.

A live migration passes :meth:`CloudTestCase.assertMigrated` only if:

- the server is ACTIVE on the destination and its migration record
  completed;
- the guest, now on the destination, computes the memory checksum it
  computed before (its console output there);
- at least 95% of the bytes the source's links (mgmt0, migr0, migr1) carried
  meanwhile crossed the expected link (the kernel's counters in the source's
  namespace);
- the source nova-compute's log names the plane it streamed over, when it
  runs the plugin.
"""

import atexit
import contextlib
import os
import time
import unittest

from tests.cloud import cloud as cloud_
from tests.cloud import guests as guests_
from tests.cloud import migrations
from tests.cloud.services import compute
from tests.hypervisor import test_planes
from tests.hypervisor import testbed

# One result per migration, for tools/cloud_report.py; in the cloud's work
# directory, which each run starts afresh.
RESULTS = os.path.join(cloud_.WORK_DIR, 'results.json')

# What nova-compute must never say at start-up: eventlet or locks set up
# before the concurrency mode was chosen.
BAD_START_UP = ('RLock(s) were not greened',
                'eventlet library imported early')
# Nor this, which test_eventlet_mode_imports_nothing_before_patching pins
# on its own: a known failure with the plugin's lines (see there).
IMPORTED_EARLY = 'imported prior to eventlet monkey patching'

MIGRATION_TIMEOUT = 300


def ipv4(host, concurrency=None):
    """The plugin on ``host``, advertising its IPv4 migration address."""
    return compute.Spec(True, host.migration_ipv4, concurrency)


def ipv6(host, concurrency=None):
    return compute.Spec(True, host.migration_ipv6, concurrency)


PLUGIN_UNSET = compute.Spec(True, None)
EVENTLET_STOCK = compute.Spec(False, None, 'eventlet')

_cloud = None
_cloud_error = None


def shared_cloud():
    """The process's cloud, brought up on the first call.

    It comes up with the plugin on both hosts, so that nova's control plane
    on compute-a starts with the plugin's lines in its nova.conf too.

    :raises unittest.SkipTest: the cloud cannot run here (not root).
    """
    global _cloud, _cloud_error
    if _cloud_error is not None:
        raise RuntimeError('the cloud did not come up: %r' % _cloud_error)
    if _cloud is None:
        reason = cloud_.why_unavailable()
        if reason:
            raise unittest.SkipTest(reason)
        a, b = testbed.hosts(cloud_.NETNS_PREFIX)
        cloud = cloud_.Cloud(specs={a.name: ipv4(a), b.name: ipv4(b)})
        start = time.monotonic()
        try:
            cloud.setUp()
        except Exception as e:
            _cloud_error = e
            print(cloud.log_tails())
            cloud.cleanUp()
            raise
        cloud.up_seconds = time.monotonic() - start
        atexit.register(cloud.cleanUp)
        cloud.guests = guests_.Guests(cloud)
        _cloud = cloud
    return _cloud


class CloudTestCase(unittest.TestCase):
    """A test on the shared cloud; ``a`` and ``b`` are compute-a (the
    controller's host) and compute-b.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cloud = shared_cloud()
        cls.guests = cls.cloud.guests
        cls.a, cls.b = cls.cloud.testbed.hosts

    def setUp(self):
        super().setUp()
        self.started = time.monotonic()
        self.conn = self.cloud.admin

    @contextlib.contextmanager
    def logs_on_failure(self):
        """Print the end of every service's logs if the block raises."""
        try:
            yield
        except BaseException:
            print(self.cloud.log_tails())
            raise

    # The computes

    def computes(self, spec_a, spec_b):
        """Run compute-a and compute-b with these specs, restarting those
        that differ or died (together); check how each started.
        """
        compute.restart_all([
            (self.node(host), spec)
            for host, spec in ((self.a, spec_a), (self.b, spec_b))
            if self.node(host).spec != spec
            or not self.node(host).daemon.alive()])
        for host in (self.a, self.b):
            self.assertCleanStartUp(self.node(host))

    def node(self, host):
        """The :class:`compute.Compute` of ``host``."""
        return self.cloud.computes[host.name]

    def other(self, host):
        return self.b if host is self.a else self.a

    def assertCleanStartUp(self, node):
        """Nothing about eventlet or ungreened locks in its log or output;
        with the plugin, its log file says it is active and what it
        advertises, before any migration.
        """
        log, output = node.log_text(), node.output_text()
        known = node.spec.plugin and node.spec.concurrency == 'eventlet-conf'
        for bad in BAD_START_UP + (() if known else (IMPORTED_EARLY,)):
            self.assertNotIn(bad, log, node.log)
            self.assertNotIn(bad, output, node.output)
        if not node.spec.plugin:
            return
        # The first migration's line: 'Live migration to <host> ...'.
        before = log.split('Live migration to ', 1)[0]
        self.assertIn('nova-migration-net is active', before)
        if node.spec.migration_ip:
            self.assertIn(
                'live migrations from hosts running the plugin will stream '
                'to this host at %s' % node.spec.migration_ip, before)

    # Migrations

    def boot(self, host):
        """A noise server on ``host``, deleted at the end of the test; the
        server and the checksum it computed there.
        """
        name = self.id().rsplit('.', 1)[1]
        server, checksum = self.guests.boot(name, host)
        self.addCleanup(self.guests.delete, server)
        return server, checksum

    def live_migrate(self, server, destination, wait=True):
        """Live-migrate ``server`` to ``destination``; the server when nova
        is done with it, ``{link: bytes}`` on the source meanwhile, and the
        seconds from the API call to the end.
        """
        compute_api = self.conn.compute
        source = self.other(destination)
        with self.cloud.testbed.bytes_moved(source) as moved:
            start = time.monotonic()
            compute_api.live_migrate_server(
                server, host=destination.name, block_migration='auto')
            server = self.wait_for_migration_end(server, destination)
            seconds = time.monotonic() - start
        return server, moved, seconds

    def wait_for_migration_end(self, server, destination,
                               timeout=MIGRATION_TIMEOUT):
        """``server`` once it has no task state and is on ``destination``,
        or is in ERROR, or its migration ended.
        """
        try:
            [(_, server)] = migrations.wait_over(
                self.conn, [server], destination, timeout).values()
        except TimeoutError as error:
            [server] = error.servers
            self.fail('server %s: migration not over after %d s (status '
                      '%s, task state %s, on %s)' % (
                          server.id, timeout, server.status,
                          server.task_state, server.compute_host))
        return server

    def migrations(self, server, done_only=False):
        """The server's migration records, oldest first; with
        ``done_only``, only if the latest is over.
        """
        return migrations.records(self.conn, server, done_only)

    def last_migration(self, server, timeout=60):
        """The server's latest migration record, once it is over (the
        source marks it completed last, after the server is already on the
        destination).
        """
        return migrations.last_record(self.conn, server, timeout)

    def assertMigrated(self, server, destination, checksum, moved,
                       expected_link, plane_line=None):
        """The four things of the module doc, for one migration of
        ``server`` to ``destination``; ``plane_line`` is what the source's
        log says (None: it must name no plane).
        """
        source = self.other(destination)
        self.assertEqual(('ACTIVE', destination.name),
                         (server.status, server.compute_host))
        self.assertEqual('completed', self.last_migration(server).status)
        sums = self.guests.wait_for_checksums(server)
        self.assertEqual({checksum}, set(sums))
        on_link = test_planes.share(moved, expected_link)
        self.assertGreaterEqual(
            on_link, test_planes.MIN_SHARE, '%.2f%% of %d bytes on %s: %s'
            % (100 * on_link, sum(moved.values()), expected_link, moved))
        self.assertGreater(moved[expected_link], 100 * 1024 * 1024)
        source_log = self.node(source).log_text()
        if plane_line:
            self.assertIn(plane_line, source_log)
        else:
            self.assertNotIn('streams over the', source_log)

    def check_migration(self, expected_link, spec_a, spec_b,
                        plane_line=None):
        """Run the computes so, boot a server on compute-a, live-migrate it
        to compute-b and assert :meth:`assertMigrated`; record the result.
        """
        with self.logs_on_failure():
            self.computes(spec_a, spec_b)
            server, checksum = self.boot(self.a)
            server, moved, seconds = self.live_migrate(server, self.b)
            self.assertMigrated(server, self.b, checksum, moved,
                                expected_link, plane_line)
        self.record(seconds, moved, expected_link, spec_a, spec_b)

    def record(self, seconds, moved, expected, source, destination,
               path=RESULTS, **extra):
        """Add this migration, and what ``extra`` says of it, to ``path``
        (``source`` and ``destination`` are the computes' specs).
        """
        result = {'case': self.id().rsplit('.', 1)[1],
                  'source': source._asdict(),
                  'destination': destination._asdict(),
                  'seconds': round(seconds, 1), 'expected': expected,
                  'bytes': moved, 'memory_mib': self.cloud.memory_mib(),
                  'case_seconds': round(time.monotonic() - self.started, 1),
                  'cloud_up_seconds': round(self.cloud.up_seconds, 1),
                  **extra}
        test_planes.append_result(path, result)
