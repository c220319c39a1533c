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

"""Faults during a live migration from compute-a to compute-b, stock nova
34 against the plugin, same fault.

Stock runs without the plugin and with nova's own ``[libvirt]
live_migration_inbound_addr`` set to each host's migration address, so
that its migration crosses the migration link the fault strikes, as the
plugin's does (``my_live_migration_ip``, IPv4, on both hosts). A short
``live_migration_completion_timeout`` (10 s per GiB, at least 2 GiB:
20 s) with the ``abort`` action ends a stalled migration.

:class:`TestFaultsStock` measures stock and keeps what it saw (it runs
first); :class:`TestFaultsWithPlugin` measures the plugin and asserts the
issue's outcomes: after the migration link was down from the start, the
server ACTIVE on the source; after every other fault, what stock gave,
provided nothing is lost and nova names the host the guest runs on
(post-copy, which nova 34 never ends: the same stuck state). Every
outcome is printed as JSON for the measured table
(``doc/source/faults-measured.inc``). The cuts lower TCP's retries so
that a cut connection fails in seconds. The post-copy fault runs only
with ``NOVA_MIGRATION_NET_CLOUD_SLOW=1``. The faults cannot model a
partial network failure (one direction, some packets).
"""

import os
import unittest

from tests.cloud import faults
from tests.cloud import links
from tests.cloud import scenario
from tests.cloud.services import compute
from tests.hypervisor import testbed

FAST = (('live_migration_completion_timeout', '10'),
        ('live_migration_timeout_action', 'abort'))
POST_COPY = FAST + (('live_migration_permit_post_copy', 'true'),)
# Slow enough that the memory stream lasts longer than it takes to strike.
RATE = '40mbit'
# A deep queue at that rate: the stream is slowed, not dropped.
TBF = {'burst': '64kb', 'latency': '500ms'}
STREAMED_MIB = 16
FAULT_TIMEOUT = 90
# The hosts' net.ipv4.tcp_retries2 for the cuts: TCP gives up on the
# silent peer after about 3 s (the default 15 takes about 15 minutes).
TCP_RETRIES = 3
POST_COPY_SETTLE = 5
# How long nova's view of a server must stay still to count as the end.
SETTLE = 2

# Post-copy costs a restart of compute-a each way and about 90 s in
# all: only when asked for.
SLOW = os.environ.get('NOVA_MIGRATION_NET_CLOUD_SLOW') == '1'
slow = unittest.skipUnless(
    SLOW, 'post-copy fault (about 90 s, two restarts of compute-a): set '
    'NOVA_MIGRATION_NET_CLOUD_SLOW=1 to run it')

# The stock outcomes measured in this process, by fault.
STOCK = {}


class FaultCase(scenario.CloudTestCase):
    """How to make each fault, and what it left."""

    def stock_specs(self, source=FAST):
        """Stock computes; ``source``: compute-a's [libvirt] options
        (only the source's matter to a migration, so only it restarts).
        """
        return [compute.Spec(False, None, None, libvirt=libvirt + (
            ('live_migration_inbound_addr', host.migration_ipv4),))
            for host, libvirt in ((self.a, source), (self.b, FAST))]

    def plugin_specs(self, source=FAST):
        return [compute.Spec(True, host.migration_ipv4, None,
                             libvirt=libvirt)
                for host, libvirt in ((self.a, source), (self.b, FAST))]

    def measure(self, specs, before=None, during=None, rate=None,
                retries=None, timeout=FAULT_TIMEOUT):
        """Boot on compute-a, strike (``before`` the API call, ``during``
        the migration), live-migrate to compute-b; the :class:`Outcome`.
        ``retries``: the hosts' ``tcp_retries2`` meanwhile.
        """
        with self.logs_on_failure():
            self.computes(*specs)
            server, checksum = self.boot(self.a)
            source_log = faults.LogMark(self.node(self.a).log)
            libvirtd = faults.LogMark(None, read=self.libvirtd_log)
            if retries:
                self.addCleanup(faults.tcp_retries(self.cloud, retries))
            if rate:
                self.addCleanup(
                    links.shape(self.a, testbed.MIGR_IF, rate, **TBF))
            if before:
                self.addCleanup(before(server))
            self.conn.compute.live_migrate_server(
                server, host=self.b.name, block_migration='auto')
            if during:
                self.addCleanup(during(server))
            server = self.wait_for_migration_end(server, self.b, timeout)
            outcome = self.outcome(server, source_log, libvirtd)
        print('%s:\n%s' % (self.id(), faults.as_json(outcome)))
        return outcome, checksum

    def libvirtd_log(self):
        return faults.host_run(self.cloud, self.a, 'cat',
                               faults.LIBVIRTD_LOG)

    def outcome(self, server, source_log, libvirtd, over=True):
        """The :class:`Outcome`; ``over``: once nova ended the migration
        (else as it stands, domains with libvirt's reason).
        """
        if over:
            where = faults.wait_settled(self.cloud, server)
            self.last_migration(server)
            server = self.settled(server)
        else:
            where = {host.name: faults.domstate(self.cloud, host,
                                                server.instance_name)
                     for host in self.cloud.testbed.hosts}
            where = {name: state for name, state in where.items() if state}
        running = sorted(h for h, state in where.items()
                         if state.startswith('running'))
        record = faults.last_migration(self.conn, server)
        sums = []
        if over and len(running) == 1:
            host = self.cloud.computes[running[0]].host
            seen = len(faults.console_checksums(self.cloud, host, server))
            try:
                sums = self.cloud_wait(
                    lambda: faults.console_checksums(
                        self.cloud, host, server)[seen:])
            except TimeoutError:
                pass
        new = source_log.new()
        failures = [line.split('Live Migration failure: ', 1)[1]
                    for line in new.splitlines()
                    if 'Live Migration failure: ' in line]
        return faults.Outcome(
            status=server.status, vm_state=server.vm_state,
            task_state=server.task_state, nova_host=server.compute_host,
            running_on=running, domains=where,
            source_job=faults.source_job(self.cloud, self.a,
                                         server.instance_name),
            migration=record['status'],
            server_allocations=sorted(faults.allocations(self.conn,
                                                         server.id)),
            migration_allocations=sorted(faults.allocations(
                self.conn, record['uuid'])),
            checksums=sums, failure=failures,
            libvirtd_errors=[line for line in libvirtd.new().splitlines()
                             if ': error : ' in line],
            plugin_problems=[line for logger, line in faults.problems(new)
                             if logger.startswith('nova_migration_net')],
            rpc_timeouts=[line for _, line in faults.problems(new)
                          if 'MessagingTimeout' in line])

    def settled(self, server, quiet=SETTLE, timeout=30):
        """``server`` once nova's API shows it unchanged for ``quiet``
        seconds: nova's rollback clears the task state, and only then does
        the compute manager put the instance into ERROR.
        """
        def state(server):
            return (server.status, server.vm_state, server.task_state,
                    server.compute_host)
        deadline = faults.time.monotonic() + timeout
        since = faults.time.monotonic()
        while faults.time.monotonic() < deadline:
            faults.time.sleep(0.5)
            now = self.conn.compute.get_server(server)
            if state(now) != state(server):
                since = faults.time.monotonic()
            server = now
            if faults.time.monotonic() - since >= quiet:
                break
        return server

    @staticmethod
    def cloud_wait(check, timeout=60):
        return faults.base.wait_for('new checksums', check, timeout,
                                    interval=1)

    # The faults: each a measurement with the computes run as ``specs``.

    def link_down_at_start(self, specs):
        return self.measure(specs, before=lambda server: faults.link_down(
            self.cloud, self.b))

    def link_cut_mid_stream(self, specs):
        def cut(server):
            self.wait_streaming(server)
            return faults.link_down(self.cloud, self.b)
        return self.measure(specs, during=cut, rate=RATE,
                            retries=TCP_RETRIES)

    def abort_mid_stream(self, specs):
        def abort(server):
            self.wait_streaming(server)
            migration, = faults.in_progress(self.conn, server)
            faults.abort(self.conn, server, migration['id'])
            return lambda: None
        return self.measure(specs, during=abort, rate=RATE)

    def rabbitmq_restart(self, specs):
        def restart(server):
            self.wait_streaming(server, 1)
            rabbitmq = self.cloud.rabbitmq
            rabbitmq.stop()
            rabbitmq.start()
            return lambda: None
        return self.measure(specs, during=restart, rate='100mbit')

    def post_copy_link_cut(self, specs):
        """Switch to post-copy, cut the link; the :class:`Outcome` once
        the source's libvirt failed the migration. nova 34 never resumes
        nor ends it: the clean-up ends it as an operator can.
        """
        with self.logs_on_failure():
            self.computes(*specs)
            server, checksum = self.boot(self.a)
            source_log = faults.LogMark(self.node(self.a).log)
            libvirtd = faults.LogMark(None, read=self.libvirtd_log)
            self.addCleanup(faults.tcp_retries(self.cloud, TCP_RETRIES))
            self.addCleanup(
                links.shape(self.a, testbed.MIGR_IF, RATE, **TBF))
            self.conn.compute.live_migrate_server(
                server, host=self.b.name, block_migration='auto')
            self.addCleanup(self.end_post_copy, server)
            self.wait_streaming(server)
            migration, = faults.in_progress(self.conn, server)
            faults.force_complete(self.conn, server, migration['id'])
            # Cut once both hosts run post-copy: a cut while the switch's
            # device state is still on its way fails the destination's
            # QEMU ("error while loading state section id 3(ram)").
            for host in (self.a, self.b):
                self.wait_state(server, host, 'post-copy')
            self.addCleanup(faults.link_down(self.cloud, self.b))
            self.wait_state(server, self.a, 'post-copy failed')
            # What nova says a while after libvirt gave up: no change.
            faults.time.sleep(POST_COPY_SETTLE)
            server = self.conn.compute.get_server(server)
            outcome = self.outcome(server, source_log, libvirtd, over=False)
        print('%s:\n%s' % (self.id(), faults.as_json(outcome)))
        return outcome, checksum

    def wait_state(self, server, host, reason, timeout=60):
        faults.base.wait_for(
            '%s %s' % (host.name, reason), lambda: reason in (
                faults.domstate(self.cloud, host, server.instance_name)
                or ''), timeout, interval=0.2)

    def end_post_copy(self, server):
        """Delete the server (nova allows it in any state), destroy what
        libvirt still has of it on either host and what placement still
        holds for its migration; check that nothing is left.
        """
        record = faults.last_migration(self.conn, server)
        self.guests.delete(server)
        for host in (self.b, self.a):
            faults.destroy(self.cloud, host, server.instance_name)
        faults.delete_allocations(self.conn, record['uuid'])
        for host in (self.a, self.b):
            self.assertIsNone(faults.domstate(self.cloud, host,
                                              server.instance_name))
        self.assertEqual({}, faults.allocations(self.conn, server.id))

    def wait_streaming(self, server, mib=STREAMED_MIB):
        faults.wait_streaming(self.cloud, self.a, server.instance_name, mib)

    # Checks

    def assertNothingLost(self, outcome, checksum):
        """The guest runs on one host, the one nova names, computing the
        checksum it had; placement holds it there only.
        """
        self.assertEqual([outcome.nova_host], outcome.running_on,
                         faults.as_json(outcome))
        self.assertEqual([outcome.nova_host], list(outcome.domains))
        self.assertTrue(outcome.checksums, 'the guest computes no more')
        self.assertEqual({checksum}, set(outcome.checksums))
        self.assertEqual([outcome.nova_host], outcome.server_allocations)
        self.assertEqual([], outcome.migration_allocations)

    def assertAsStock(self, fault, outcome, checksum=None):
        """What stock nova 34 did with ``fault`` in this process (measured
        now if :class:`TestFaultsStock` did not run), and nothing lost
        (given the ``checksum`` the guest must still compute).
        """
        if fault not in STOCK:
            # This fault's clean-ups first: links up, the server gone.
            self.doCleanups()
            STOCK[fault] = getattr(self, fault)(self.stock_specs(
                POST_COPY if 'post_copy' in fault else FAST))[0]
        self.assertEqual(faults.same(STOCK[fault]), faults.same(outcome),
                         'stock:\n%s\nplugin:\n%s' % (
                             faults.as_json(STOCK[fault]),
                             faults.as_json(outcome)))
        if checksum is not None:
            self.assertNothingLost(outcome, checksum)

    def assertPostCopyStuck(self, outcome):
        """The source's libvirt failed the post-copy migration, the
        destination's still runs the guest (its QEMU waits for the pages it
        lacks; "post-copy failed" too once it noticed), and nova still
        calls it running: MIGRATING on the source, its allocations split
        between the migration (source) and the server (destination).
        """
        self.assertEqual(
            ({self.a.name: 'paused (post-copy failed)'}, True),
            ({self.a.name: outcome.domains.get(self.a.name)},
             outcome.domains.get(self.b.name) in (
                 'running (post-copy)', 'running (post-copy failed)')),
            faults.as_json(outcome))
        self.assertEqual(
            ('MIGRATING', 'active', 'migrating', self.a.name,
             'running (post-copy)', [self.b.name], [self.a.name]),
            (outcome.status, outcome.vm_state, outcome.task_state,
             outcome.nova_host, outcome.migration,
             outcome.server_allocations, outcome.migration_allocations),
            faults.as_json(outcome))
        self.assertTrue(outcome.source_job.startswith('Job type:') and
                        'Unbounded' in outcome.source_job,
                        outcome.source_job)

    def assertNothingMisleading(self, outcome):
        """The plugin never says the instance was rolled back or keeps
        running where the fault struck once memory was sent.
        """
        for line in outcome.plugin_problems:
            self.assertNotIn('rolled back', line)
            self.assertNotIn('keeps running', line)

    def assertNoPlaneBlamed(self, outcome):
        address = self.b.migration_ipv4
        self.assertEqual([], [line for line in outcome.plugin_problems
                              if address in line])


class TestFaultsStock(FaultCase):
    """Stock nova 34, over the migration link (its inbound address)."""

    def stock(self, fault, source=FAST):
        outcome, _ = getattr(self, fault)(self.stock_specs(source))
        STOCK[fault] = outcome
        return outcome

    def test_1_link_down_at_start(self):
        self.assertNotEqual('completed',
                            self.stock('link_down_at_start').migration)

    def test_2_link_cut_mid_stream(self):
        self.assertNotEqual('completed',
                            self.stock('link_cut_mid_stream').migration)

    def test_3_abort_mid_stream(self):
        self.assertNotEqual('completed',
                            self.stock('abort_mid_stream').migration)

    def test_4_rabbitmq_restart(self):
        self.stock('rabbitmq_restart')

    @slow
    def test_5_post_copy_link_cut(self):
        self.assertPostCopyStuck(self.stock('post_copy_link_cut', POST_COPY))


class TestFaultsWithPlugin(FaultCase):
    """The plugin, my_live_migration_ip (IPv4) on both hosts."""

    def test_1_link_down_at_start(self):
        """Rolled back: ACTIVE on the source, and the source's log names
        the migration address that failed.
        """
        outcome, checksum = self.link_down_at_start(self.plugin_specs())
        self.assertEqual(
            ('ACTIVE', 'active', None, self.a.name),
            (outcome.status, outcome.vm_state, outcome.task_state,
             outcome.nova_host), faults.as_json(outcome))
        self.assertIn(outcome.migration, ('failed', 'error'))
        self.assertNothingLost(outcome, checksum)
        self.assertTrue([line for line in outcome.plugin_problems
                         if self.b.migration_ipv4 in line],
                        outcome.plugin_problems)

    def test_2_link_cut_mid_stream(self):
        outcome, checksum = self.link_cut_mid_stream(self.plugin_specs())
        self.assertAsStock('link_cut_mid_stream', outcome, checksum)
        self.assertNothingMisleading(outcome)

    def test_3_abort_mid_stream(self):
        outcome, checksum = self.abort_mid_stream(self.plugin_specs())
        self.assertAsStock('abort_mid_stream', outcome, checksum)
        self.assertNothingMisleading(outcome)
        if any('canceled by client' in line for line in outcome.failure):
            self.assertNoPlaneBlamed(outcome)
        else:
            # libvirt reported the abort as QEMU's "Unable to write to
            # socket: Broken pipe", which the plugin cannot tell from a cut
            # link: its line must say so.
            for line in outcome.plugin_problems:
                self.assertIn('unless the migration was aborted', line)

    def test_4_rabbitmq_restart(self):
        """Completed as stock; unless nova lost an RPC reply in the
        restart (either side): then nova's own outcome for that, measured.
        """
        outcome, checksum = self.rabbitmq_restart(self.plugin_specs())
        self.assertNoPlaneBlamed(outcome)
        stock = STOCK.get('rabbitmq_restart')
        if stock is None or not (stock.rpc_timeouts or outcome.rpc_timeouts):
            self.assertAsStock('rabbitmq_restart', outcome, checksum)
            self.assertEqual(('ACTIVE', 'completed'),
                             (outcome.status, outcome.migration))
            return
        for seen in (stock, outcome):
            if seen.rpc_timeouts:
                self.assertLostReply(seen)
            else:
                self.assertEqual(
                    ('ACTIVE', 'completed', self.b.name),
                    (seen.status, seen.migration, seen.nova_host),
                    faults.as_json(seen))
        if not outcome.rpc_timeouts:
            self.assertNothingLost(outcome, checksum)

    def assertLostReply(self, outcome):
        """What nova 34 leaves when its migration monitor's RPC reply was
        lost in the restart (a MessagingTimeout 60 s later): libvirt
        finished the migration, nova never ran its post-migration steps.
        """
        self.assertEqual(
            ('ERROR', self.a.name, [self.b.name], 'error', [self.b.name],
             [self.a.name]),
            (outcome.status, outcome.nova_host, outcome.running_on,
             outcome.migration, outcome.server_allocations,
             outcome.migration_allocations), faults.as_json(outcome))

    @slow
    def test_5_post_copy_link_cut(self):
        outcome, _ = self.post_copy_link_cut(self.plugin_specs(POST_COPY))
        self.assertPostCopyStuck(outcome)
        self.assertAsStock('post_copy_link_cut', outcome)
        self.assertNothingMisleading(outcome)

    def test_6_link_down_with_option_unset(self):
        """The plugin installed, the destination's option unset: stock's
        hostname, over the management link, which is up (last: only
        compute-b restarts; the source's own option plays no part).
        """
        with self.logs_on_failure():
            self.computes(self.plugin_specs()[0],
                          compute.Spec(True, None, None, libvirt=FAST))
            server, checksum = self.boot(self.a)
            self.addCleanup(faults.link_down(self.cloud, self.b))
            server, moved, _ = self.live_migrate(server, self.b)
            self.assertMigrated(
                server, self.b, checksum, moved, testbed.MGMT_IF,
                'streams over the management plane to its hostname')
