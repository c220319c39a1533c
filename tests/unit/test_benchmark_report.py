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

import tempfile
import unittest

from benchmarks.concurrent_migrations import report
from benchmarks.concurrent_migrations import workload

UUID = '4bf6bb53-f68f-4434-8e84-9d2e4dad846d'


def _migration(to_uri3):
    return {'server': UUID, 'error': None, 'status': 'ACTIVE',
            'host': 'compute-b', 'migration': 'completed', 'sent': 100.0,
            'seen_over': 110.0, 'to_uri3_s': to_uri3,
            'to_completed_s': 8.0, 'uri3': 100.0 + to_uri3,
            'completed': 108.0, 'aborted': False,
            'job': {'downtime_s': 0.05}}


def _raw(ns, plugin_uri3, stock_uri3, plugin_rtt, idle_rtt):
    def samples(rtt):
        return {name: [rtt] * 100 for name in report.probes_.NAMES}
    phase = {'mgmt_mbit': 200, 'migr_mbit': 200, 'idle_windows': [(0, 5)],
             'idle_probes': [samples(idle_rtt)], 'batches': []}
    for r in range(2):
        for mode, uri3, rtt in (('plugin', plugin_uri3, plugin_rtt),
                                ('stock', stock_uri3, 10 * idle_rtt)):
            for n in ns:
                link = report.LINKS[mode]
                phase['batches'].append({
                    'n': n, 'round': r, 'mode': mode,
                    'destination': 'compute-b', 'wall_s': 10.0,
                    'bytes': {'mgmt0': 0, 'migr0': 0, link: 180e6 * n},
                    'tbf': {}, 'cpu_busy': 0.5, 'probes': samples(rtt),
                    'migrations': [_migration(uri3)] * n})
    meta = {'quick': True}
    return {'phases': {'same': phase}, 'meta': meta}


class TestVerdicts(unittest.TestCase):

    def verdict(self, raw, starts):
        lines = report.summarize(raw)['verdicts']
        [line] = [v for v in lines if v.startswith(starts)]
        return line

    def test_p99_target_not_met_without_n4(self):
        raw = _raw((1, 2), 2.0, 2.0, plugin_rtt=0.001, idle_rtt=0.001)
        line = self.verdict(raw, 'Verdict, plugin, management RPC')
        self.assertIn('not measured', line)
        self.assertNotIn(': met', line)

    def test_p99_over_target_at_n4_is_not_met(self):
        raw = _raw((1, 4), 2.0, 2.0, plugin_rtt=0.002, idle_rtt=0.001)
        line = self.verdict(raw, 'Verdict, plugin, management RPC')
        self.assertTrue(line.endswith(': NOT met.'), line)

    def test_control_path_ratio_over_target_is_not_met(self):
        raw = _raw((1,), 2.1, 2.0, plugin_rtt=0.001, idle_rtt=0.001)
        line = self.verdict(raw, 'Verdict, control path, API request to '
                                 'migrateToURI3')
        self.assertIn('plugin / stock = 1.050', line)
        self.assertTrue(line.endswith(': NOT met.'), line)


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
