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

"""The concurrent-migrations benchmark's report says what was measured.

Its verdicts are what an operator reads first: "met" must never stand for
a figure the run did not measure or that misses its target, and the
control-path figures come from nova-compute's log lines as nova writes
them.
"""

import copy
import tempfile
import unittest

from benchmarks.concurrent_migrations import cpus
from benchmarks.concurrent_migrations import report
from benchmarks.concurrent_migrations import workload
from tests.cloud import jobs

UUID = '4bf6bb53-f68f-4434-8e84-9d2e4dad846d'


def _migration(to_uri3):
    return {'server': UUID, 'error': None, 'status': 'ACTIVE',
            'host': 'compute-b', 'migration': 'completed', 'sent': 100.0,
            'seen_over': 110.0, 'to_uri3_s': to_uri3,
            'to_completed_s': 8.0, 'uri3': 100.0 + to_uri3,
            'completed': 108.0, 'aborted': False,
            'job': {'downtime_s': 0.05}}


# Where the threads of a run with CPUs reserved were allowed to run.
HELD = {'services': {'0': 900}, 'processes': 60,
        'qemu': {'CPU n/TCG': ['1'], 'qemu-system-x86': ['1'],
                 cpus.MIGRATION_THREAD: ['1']}}


def _raw(ns, plugin_uri3, stock_uri3, plugin_rtt, idle_rtt,
         affinity=HELD):
    def samples(rtt):
        return {name: [rtt] * 100 for name in report.probes_.NAMES}
    phase = {'mgmt_mbit': 200, 'migr_mbit': 200, 'idle_windows': [(0, 5)],
             'idle_probes': [samples(idle_rtt)], 'batches': [],
             'pinned': True, 'service_cpus': '0', 'guest_cpus': '1',
             'affinity_start': dict(affinity, qemu={})}
    for r in range(2):
        for mode, uri3, rtt in (('plugin', plugin_uri3, plugin_rtt),
                                ('stock', stock_uri3, 10 * idle_rtt)):
            for n in ns:
                link = report.LINKS[mode]
                phase['batches'].append({
                    'n': n, 'round': r, 'mode': mode,
                    'destination': 'compute-b', 'wall_s': 10.0,
                    'bytes': {'mgmt0': 0, 'migr0': 0, link: 180e6 * n},
                    'tbf': {}, 'probes': samples(rtt),
                    'cpu_busy': {'all': 0.5, '0': 0.6, '1': 0.4},
                    'affinity': affinity,
                    'migrations': [_migration(uri3)] * n})
    meta = {'quick': True}
    return {'phases': {'pinned': phase}, 'meta': meta}


class TestVerdicts(unittest.TestCase):

    def verdict(self, raw, starts):
        lines = report.summarize(raw)['verdicts']
        [line] = [v for v in lines if v.startswith(starts)]
        return line

    CONTROL_PLANE = 'Verdict, CPUs reserved, plugin at'

    def test_p99_target_not_met_without_n4(self):
        raw = _raw((1, 2), 2.0, 2.0, plugin_rtt=0.001, idle_rtt=0.001)
        line = self.verdict(raw, self.CONTROL_PLANE)
        self.assertIn('not measured', line)
        self.assertNotIn(': met', line)

    def test_p99_within_target_at_n4_is_met(self):
        raw = _raw((1, 4), 2.0, 2.0, plugin_rtt=0.0012, idle_rtt=0.001)
        line = self.verdict(raw, self.CONTROL_PLANE)
        self.assertIn('heartbeat 1.20x', line)
        self.assertTrue(line.endswith(': met.'), line)

    def test_p99_over_target_at_n4_is_not_met(self):
        raw = _raw((1, 4), 2.0, 2.0, plugin_rtt=0.002, idle_rtt=0.001)
        line = self.verdict(raw, self.CONTROL_PLANE)
        self.assertTrue(line.endswith(': NOT met.'), line)

    def test_no_verdict_where_a_service_ran_on_the_guests_cpu(self):
        leaked = dict(HELD, services={'0': 890, '0-1': 10})
        raw = _raw((1, 4), 2.0, 2.0, plugin_rtt=0.001, idle_rtt=0.001,
                   affinity=leaked)
        line = self.verdict(raw, self.CONTROL_PLANE)
        self.assertIn('no verdict', line)
        line = self.verdict(raw, 'CPU reservation, pinned phase')
        self.assertIn('did NOT hold: 10 service threads may run on 0-1',
                      line)

    def test_no_verdict_without_the_migration_thread_seen(self):
        unseen = dict(HELD, qemu={'CPU n/TCG': ['1']})
        raw = _raw((4,), 2.0, 2.0, plugin_rtt=0.001, idle_rtt=0.001,
                   affinity=unseen)
        line = self.verdict(raw, 'Verdict, CPUs reserved, plugin, '
                                 'migration link')
        self.assertIn('no verdict', line)

    def test_a_heartbeat_early_at_idle_gives_no_ratio(self):
        # Beats that land early against report_interval have a p99 below
        # zero: no ratio, so no "met".
        raw = _raw((4,), 2.0, 2.0, plugin_rtt=0.001, idle_rtt=-0.001)
        line = self.verdict(raw, self.CONTROL_PLANE)
        self.assertIn('heartbeat -', line)
        self.assertTrue(line.endswith(': NOT met.'), line)

    def test_control_path_ratio_over_target_is_not_met(self):
        raw = _raw((1,), 2.1, 2.0, plugin_rtt=0.001, idle_rtt=0.001)
        line = self.verdict(raw, 'Verdict, control path, API request to '
                                 'migrateToURI3')
        self.assertIn('plugin / stock = 1.050', line)
        self.assertTrue(line.endswith(': NOT met.'), line)


class TestFastLink(unittest.TestCase):

    def test_the_real_time_echo_says_whether_the_kernel_reaches_the_probes(
            self):
        raw = _raw((4,), 2.0, 2.0, plugin_rtt=0.001, idle_rtt=0.001)
        fast = copy.deepcopy(raw['phases']['pinned'])
        fast['migr_mbit'] = 800
        for batch in fast['batches']:
            if batch['mode'] == 'plugin':
                batch['probes']['api'] = [0.003] * 100
        raw['phases']['pinned-fast'] = fast
        [line] = [v for v in report.summarize(raw)['verdicts']
                  if v.startswith('Migration link 4x')]
        self.assertIn('stayed at 1.00x idle', line)
        self.assertIn('does not reach the probes', line)
        self.assertIn('api rose past 1.5x idle with the services\' CPU 60% '
                      'busy', line)


class TestLibvirtJob(unittest.TestCase):

    def test_completed_job_figures_in_seconds_and_bytes(self):
        text = '\n'.join([
            'Job type:         Completed', 'Operation:        Outgoing '
            'migration', 'Time elapsed:     6012         ms',
            'Data processed:   130.125 MiB', 'Memory processed: 129.5 MiB',
            'Total downtime:   172          ms', 'Iteration:        4'])
        want = {'elapsed_s': 6.012, 'data_bytes': 130.125 * 2 ** 20,
                'memory_bytes': 129.5 * 2 ** 20, 'downtime_s': 0.172,
                'iterations': 4}
        got = jobs.figures(text)
        self.assertEqual(set(want), set(got))
        for key, value in want.items():
            self.assertAlmostEqual(value, got[key], msg=key)
        self.assertEqual('Job type:         Completed', jobs.job_type(text))


class TestNovaLog(unittest.TestCase):

    def test_control_path_events_from_nova_compute_log(self):
        lines = [
            '2026-12-01 18:55:24.053 28700 DEBUG nova.virt.libvirt.driver '
            '[None req-d0861f8f - - - - - -] [instance: %s] About to invoke '
            'the migrate API _live_migration_operation /x/driver.py:11566'
            % UUID,
            '2026-12-01 18:55:30.553 28700 INFO nova.virt.libvirt.driver '
            '[-] [instance: %s] Migration operation has completed' % UUID,
        ]
        with tempfile.NamedTemporaryFile('w') as log:
            log.write('\n'.join(lines) + '\n')
            log.flush()
            events = workload.log_events(log.name)
        self.assertEqual({'uri3', 'completed'}, set(events[UUID]))
        self.assertAlmostEqual(
            6.5, events[UUID]['completed'] - events[UUID]['uri3'], places=3)
