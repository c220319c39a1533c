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

"""A rolling upgrade on the real cloud, step by step as an operator does it.

One server, booted once on compute-a, live-migrates to compute-b and back
at each step while the plugin is installed and configured on one compute
after the other, its option unset again and the package removed again
(:data:`STEPS`). Each step changes one nova-compute: ``pip install`` or
``pip uninstall`` in that host's venv while the old nova-compute still
runs, the ``nova.conf`` lines, a restart. nova-api, -conductor and
-scheduler are never restarted (their process ids and start times are
checked after every step), and run from compute-a's venv, so step 5
removes the package from under a running control plane too.

Every migration must pass :meth:`scenario.CloudTestCase.assertMigrated`:
the guest's memory checksum is the one it computed at boot, after every
hop. The table the test prints (:func:`table`) is the one in
``doc/source/upgrade.rst``; ``tools/cloud_report.py`` prints it again from
:data:`RESULTS`.
"""

import json
import os
import re

from tests.cloud import cloud as cloud_
from tests.cloud import scenario
from tests.cloud.services import base
from tests.cloud.services import compute
from tests.hypervisor import test_planes
from tests.hypervisor import testbed

RESULTS = os.path.join(cloud_.WORK_DIR, 'upgrade.json')

MGMT, MIGR = testbed.MGMT_IF, testbed.MIGR_IF
STOCK = compute.STOCK


def _ipv4(host):
    return scenario.ipv4(host)


def _unset(host):
    return scenario.PLUGIN_UNSET


def _stock(host):
    return STOCK


# (what the operator did, compute-a's spec, compute-b's spec, the link of
# the migration to compute-b, the link of the one back to compute-a).
STEPS = (
    ('both computes stock', _stock, _stock, MGMT, MGMT),
    ('plugin on compute-b', _stock, _ipv4, MGMT, MGMT),
    ('plugin on compute-a', _ipv4, _ipv4, MIGR, MIGR),
    ('option unset on compute-b', _ipv4, _unset, MGMT, MIGR),
    ('plugin removed from compute-a', _stock, _unset, MGMT, MGMT),
)

PLANES = {MGMT: 'management', MIGR: 'migration'}

CONTROL_PLANE = ('nova-api', 'nova-conductor', 'nova-scheduler')


def plane_line(source, destination, link):
    """What the source's log says of the migration (None: nothing)."""
    if not source.plugin:
        return None
    if link == MIGR:
        return ('streams over the migration plane to %s'
                % destination.migration_ip)
    return 'streams over the management plane to its hostname'


def control_plane(cloud):
    """``{pid: (service, start time)}`` of nova's API, conductor and
    scheduler processes on the controller, as ``ps`` sees them.
    """
    found = {}
    for pid in testbed._netns_pids(cloud.controller.netns):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                argv = f.read().decode(errors='replace').split('\0')
            with open('/proc/%d/stat' % pid) as f:
                started = f.read().rsplit(')', 1)[1].split()[19]
        except OSError:
            continue
        # The console script's path, gunicorn's --name, or the title
        # setproctitle gives them ("gunicorn: worker [nova-api]").
        words = re.split(r'[\s/\[\]:]+', ' '.join(argv))
        for service in CONTROL_PLANE:
            if service in words:
                found[pid] = (service, started)
    return found


def spec_words(spec):
    if not spec['plugin']:
        return 'stock'
    return 'plugin, %s' % (spec['migration_ip'] or 'unset')


def table(results, words=spec_words):
    """The recorded migrations as a reStructuredText simple table (also
    plain text to read); ``words(recorded spec)`` says how a compute ran.
    """
    header = ('step', 'operator did', 'migration', 'source', 'destination',
              'plane', 'management link', 'migration link', 's')
    rows, step = [header], None
    for r in results:
        rows.append((
            str(r['step']), r['did'] if r['step'] != step else '',
            r['direction'], words(r['source']),
            words(r['destination']), PLANES[r['expected']],
            test_planes.bytes_cell(r['bytes'], MGMT),
            test_planes.bytes_cell(r['bytes'], MIGR), '%.1f' % r['seconds']))
        step = r['step']
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    rule = ' '.join('=' * w for w in widths)
    lines = [' '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in rows]
    return '\n'.join([rule, lines[0], rule] + lines[1:] + [rule])


def pip_freeze(node):
    """The names of the packages in ``node``'s venv."""
    out = base.run([node.bin('pip', node.venv), 'freeze',
                    '--disable-pip-version-check'])
    return {line.split('==')[0].split(' @ ')[0].lower()
            for line in out.splitlines() if line.strip()}


class UpgradeTestCase(scenario.CloudTestCase):
    """The migration of an upgrade step, checked and recorded in
    :attr:`results` for :func:`table`; no test of its own.
    """

    results = RESULTS

    def migrate(self, step, did, server, destination, checksum, link,
                specs, **extra):
        """Live-migrate ``server`` to ``destination``, assert it and the
        source's log line of this migration, record it (with ``extra``);
        the server.
        """
        source = self.other(destination)
        node = self.node(source)
        log_start = len(node.log_text())
        line = plane_line(specs[source], specs[destination], link)
        server, moved, seconds = self.live_migrate(server, destination)
        self.assertMigrated(server, destination, checksum, moved, link,
                            line)
        # assertMigrated reads the whole log since the last start: this
        # migration's own lines must say it too, and not the other plane.
        new = node.log_text()[log_start:]
        if line:
            self.assertIn(line, new)
            self.assertEqual(1, new.count('streams over the'), new)
        else:
            self.assertNotIn('streams over the', new)
        self.record(seconds, moved, link, specs[source], specs[destination],
                    path=self.results, step=step, did=did,
                    direction='%s -> %s' % (source.name, destination.name),
                    **extra)
        return server


class TestRollingUpgrade(UpgradeTestCase):
    """One test: the five steps are one upgrade, in order."""

    def test_rolling_upgrade_one_compute_at_a_time(self):
        if os.path.exists(RESULTS):
            os.unlink(RESULTS)
        with self.logs_on_failure():
            self.computes(STOCK, STOCK)
            control = control_plane(self.cloud)
            self.assertEqual(set(CONTROL_PLANE),
                             {s for s, _ in control.values()})
            server, checksum = self.boot(self.a)
            for step, (did, spec_a, spec_b, to_b, to_a) in enumerate(
                    STEPS, 1):
                specs = {self.a: spec_a(self.a), self.b: spec_b(self.b)}
                for host in (self.a, self.b):
                    if self.node(host).spec != specs[host]:
                        self.operator_restarts(host, specs[host])
                for destination, link in ((self.b, to_b), (self.a, to_a)):
                    server = self.migrate(step, did, server, destination,
                                          checksum, link, specs)
                self.assertEqual(control, control_plane(self.cloud),
                                 'nova control plane restarted at step %d'
                                 % step)
        with open(RESULTS) as f:
            print('\n' + table(json.load(f)))

    def operator_restarts(self, host, spec):
        """``pip install`` or ``uninstall`` the plugin with the old
        nova-compute still running, then its ``nova.conf`` lines and a
        restart; nothing but the plugin comes or goes in the venv.
        """
        node = self.node(host)
        before = pip_freeze(node)
        node.spec = spec
        node.install()
        node.restart(spec)
        self.assertCleanStartUp(node)
        changed = before ^ pip_freeze(node)
        self.assertEqual(set() if (compute.PLUGIN in before) == spec.plugin
                         else {compute.PLUGIN}, changed)
