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
provided nothing is lost and nova names the host the guest runs on.
Every outcome is printed as JSON for the measured table. The faults
cannot model a partial network failure (one direction, some packets).
"""

from tests.cloud import faults
from tests.cloud import scenario
from tests.cloud.services import compute
from tests.hypervisor import testbed

FAST = (('live_migration_completion_timeout', '10'),
        ('live_migration_timeout_action', 'abort'))
POST_COPY = FAST + (('live_migration_permit_post_copy', 'true'),)
# Slow enough that the memory stream lasts longer than it takes to strike.
SLOW = '40mbit'
STREAMED_MIB = 16
FAULT_TIMEOUT = 180

# The stock outcomes measured in this process, by fault.
STOCK = {}


class FaultCase(scenario.CloudTestCase):
    """How to make each fault, and what it left."""

    def stock_specs(self, libvirt=FAST):
        return [compute.Spec(False, None, None, libvirt + (
            ('live_migration_inbound_addr', host.migration_ipv4),))
            for host in (self.a, self.b)]

    def plugin_specs(self, libvirt=FAST):
        return [compute.Spec(True, host.migration_ipv4, None, libvirt)
                for host in (self.a, self.b)]

    def measure(self, specs, before=None, during=None, rate=None,
                timeout=FAULT_TIMEOUT):
        """Boot on compute-a, strike (``before`` the API call, ``during``
        the migration), live-migrate to compute-b; the :class:`Outcome`.
        """
        with self.logs_on_failure():
            self.computes(*specs)
            server, checksum = self.boot(self.a)
            source_log = faults.LogMark(self.node(self.a).log)
            libvirtd = faults.LogMark(None, read=self.libvirtd_log)
            if rate:
                self.addCleanup(faults.shape(self.cloud, self.a, rate))
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

    def outcome(self, server, source_log, libvirtd):
        where = faults.wait_settled(self.cloud, server)
        running = sorted(h for h, state in where.items()
                         if state.startswith('running'))
        self.last_migration(server)
        record = faults.last_migration(self.conn, server)
        sums = []
        if len(running) == 1:
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
                             if logger.startswith('nova_migration_net')])

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
        return self.measure(specs, during=cut, rate=SLOW)

    def abort_mid_stream(self, specs):
        def abort(server):
            self.wait_streaming(server)
            migration, = faults.in_progress(self.conn, server)
            faults.abort(self.conn, server, migration['id'])
            return lambda: None
        return self.measure(specs, during=abort, rate=SLOW)

    def rabbitmq_restart(self, specs):
        def restart(server):
            self.wait_streaming(server, 1)
            rabbitmq = self.cloud.rabbitmq
            rabbitmq.stop()
            rabbitmq.start()
            return lambda: None
        return self.measure(specs, during=restart, rate='100mbit')

    def post_copy_link_cut(self, specs):
        def switch_and_cut(server):
            self.wait_streaming(server)
            migration, = faults.in_progress(self.conn, server)
            faults.force_complete(self.conn, server, migration['id'])
            faults.base.wait_for(
                'post-copy', lambda: 'post-copy' in faults.host_run(
                    self.cloud, self.a, 'virsh', '-c', 'qemu:///system',
                    'domstate', '--reason', server.instance_name), 60)
            return faults.link_down(self.cloud, self.b)
        # Post-copy cannot be aborted: only TCP giving up ends it.
        self.addCleanup(faults.tcp_retries(self.cloud, 3))
        return self.measure(specs, during=switch_and_cut, rate=SLOW,
                            timeout=30)

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

    def assertAsStock(self, fault, outcome, checksum):
        """What stock nova 34 did with ``fault`` in this process (measured
        now if :class:`TestFaultsStock` did not run), and nothing lost.
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
        self.assertNothingLost(outcome, checksum)

    def assertNoPlaneBlamed(self, outcome):
        address = self.b.migration_ipv4
        self.assertEqual([], [line for line in outcome.plugin_problems
                              if address in line])


class TestFaultsStock(FaultCase):
    """Stock nova 34, over the migration link (its inbound address)."""

    def stock(self, fault, libvirt=FAST):
        outcome, _ = getattr(self, fault)(self.stock_specs(libvirt))
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

    def test_5_post_copy_link_cut(self):
        self.stock('post_copy_link_cut', POST_COPY)


class TestFaultsWithPlugin(FaultCase):
    """The plugin, my_live_migration_ip (IPv4) on both hosts."""

    def test_0_link_down_at_start_with_option_unset(self):
        """The plugin installed, the option unset: stock's hostname, over
        the management link, which is up.
        """
        with self.logs_on_failure():
            unset = compute.Spec(True, None, None, FAST)
            self.computes(unset, unset)
            server, checksum = self.boot(self.a)
            self.addCleanup(faults.link_down(self.cloud, self.b))
            server, moved, _ = self.live_migrate(server, self.b)
            self.assertMigrated(
                server, self.b, checksum, moved, testbed.MGMT_IF,
                'streams over the management plane to its hostname')

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

    def test_3_abort_mid_stream(self):
        outcome, checksum = self.abort_mid_stream(self.plugin_specs())
        self.assertAsStock('abort_mid_stream', outcome, checksum)
        self.assertNoPlaneBlamed(outcome)

    def test_4_rabbitmq_restart(self):
        outcome, checksum = self.rabbitmq_restart(self.plugin_specs())
        self.assertIn(outcome.migration, ('completed', 'failed'))
        self.assertNotEqual('ERROR', outcome.status)
        self.assertAsStock('rabbitmq_restart', outcome, checksum)
        self.assertNoPlaneBlamed(outcome)

    def test_5_post_copy_link_cut(self):
        outcome, checksum = self.post_copy_link_cut(
            self.plugin_specs(POST_COPY))
        self.assertAsStock('post_copy_link_cut', outcome, checksum)
