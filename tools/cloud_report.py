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

"""Print the real-cloud tier's latest results as tables.

Each table is of the tests stestr's last run ran, so that ``tox -e cloud``
and ``tox -e cloud-ops`` (and a run of a few tests) print their own:

- tests/cloud/test_rolling_upgrade.py's steps and
  tests/cloud/test_cross_release.py's (the tables of
  doc/source/upgrade.rst);
- as Markdown, one row per case of tests/cloud/test_live_migration.py, in
  the order the tests are written: how each nova-compute ran (plugin and
  option, concurrency mode, migration transport, instances on the shared
  GlusterFS volume), the seconds from the
  os-migrateLive call to the server ACTIVE on the destination, and the
  bytes each of the source's links carried meanwhile.

A test that passed but left no result fails the report (exit 1).
"""

import io
import json
import os
import subprocess
import sys

import subunit
import testtools

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from tests.cloud import cloud  # noqa: E402
from tests.cloud import scenario  # noqa: E402
from tests.cloud import test_cross_release  # noqa: E402
from tests.cloud import test_live_migration  # noqa: E402
from tests.cloud import test_rolling_upgrade  # noqa: E402
from tests.hypervisor import test_planes  # noqa: E402
from tests.hypervisor import testbed  # noqa: E402


# How each concurrency mode was chosen (tests/cloud/services/compute.py).
CONCURRENCY = {None: 'threading (default)',
               'eventlet': 'eventlet (OS_NOVA_DISABLE_EVENTLET_PATCHING)',
               'eventlet-conf': 'eventlet (concurrency_backend)'}


def transport(spec):
    """The libvirt migration transport a nova-compute ran with, in words:
    direct (QEMU to QEMU) or tunnelled (through libvirtd), and its options.

    Results recorded before the transport fields existed read as nova's
    defaults.
    """
    words = ['tunnelled' if spec.get('tunnelled') else 'direct']
    if spec.get('native_tls'):
        words.append('native TLS')
    if (spec.get('parallel') or 1) > 1:
        words.append('%d parallel connections' % spec['parallel'])
    return ' + '.join(words)


def compute(spec):
    """How a nova-compute ran, in words."""
    if not spec['plugin']:
        words = ['stock']
    elif spec.get('migration_networks'):
        words = ['plugin, migration_networks %s'
                 % spec['migration_networks']]
    else:
        words = ['plugin, my_live_migration_ip %s'
                 % (spec['migration_ip'] or 'unset')]
    words.append(CONCURRENCY.get(spec['concurrency'], spec['concurrency']))
    words.append(transport(spec))
    if spec.get('shared_storage'):
        words.append('instances on GlusterFS')
    return ', '.join(words)


def last_run():
    """``{test id: status}`` of stestr's last run here (empty if none)."""
    proc = subprocess.run([sys.executable, '-m', 'stestr', 'last',
                           '--subunit'],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    statuses = {}
    result = testtools.StreamToDict(
        lambda test: statuses.__setitem__(test['id'], test['status']))
    result.startTestRun()
    subunit.ByteStreamToStreamResult(
        io.BytesIO(proc.stdout), non_subunit_name='stdout').run(result)
    result.stopTestRun()
    return statuses


def passed(statuses, test_class, name):
    test_id = '%s.%s.%s' % (test_class.__module__, test_class.__name__, name)
    return statuses.get(test_id) == 'success'


def steps_table(title, module, test_class, statuses):
    """Print an upgrade test's table; False if it passed without one."""
    [name] = test_planes.test_names(test_class)
    if not os.path.exists(module.RESULTS):
        if passed(statuses, test_class, name):
            print('error: no result for %s' % name, file=sys.stderr)
            return False
        return True
    with open(module.RESULTS) as f:
        print(title)
        print(module.table(json.load(f)))
    print()
    return True


def live_table(statuses):
    """Print the live-migration cases' table; False if a case passed
    without a result.
    """
    test_class = test_live_migration.TestLiveMigration
    cases = test_live_migration.migration_cases()
    results, missing = test_planes.read_results(scenario.RESULTS, cases)
    missing = {name for name in missing
               if passed(statuses, test_class, name)}
    if missing:
        print('error: no result for %s' % ', '.join(sorted(missing)),
              file=sys.stderr)
    if not results:
        return not missing
    print('Cloud up in %.0f s.' % results[0]['cloud_up_seconds'])
    print('| case | source compute | destination compute | migration s '
          '| case s | management link | migration link | memory |')
    print('|---|---|---|---|---|---|---|---|')
    for r in results:
        print('| %s | %s | %s | %.1f | %.0f | %s | %s | %d MiB |' % (
            test_planes.case_title(r), compute(r['source']),
            compute(r['destination']), r['seconds'], r['case_seconds'],
            test_planes.bytes_cell(r['bytes'], testbed.MGMT_IF),
            test_planes.bytes_cell(r['bytes'], testbed.MIGR_IF),
            r['memory_mib']))
    return not missing


def main():
    reason = cloud.why_unavailable()
    if os.geteuid() != 0:
        print('cloud tier skipped: %s' % reason)
        return 0
    statuses = last_run()
    ok = steps_table('Rolling upgrade, one server migrated at every step:',
                     test_rolling_upgrade,
                     test_rolling_upgrade.TestRollingUpgrade, statuses)
    ok &= steps_table('nova 33 to nova 34, plugin on, one server migrated '
                      'at every step:', test_cross_release,
                      test_cross_release.TestCrossRelease, statuses)
    ok &= live_table(statuses)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
