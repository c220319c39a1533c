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

"""Demo: live migrations through nova with nova-migration-net active.

As root, on a real cloud, the cloud tier's (``tests/cloud``): a two-node
OpenStack of real services in network namespaces, with a real
nova-compute, libvirt and QEMU on each host. It live-migrates a noise
server from compute-a to compute-b through the API three times (the plugin
on both hosts with their IPv4 migration addresses, the plugin with the
option unset, stock nova) and prints for each the plane the source's log
names and the bytes each of the source's links carried. Each migration
passes only if the cloud tier's checks hold (the guest's memory checksum
survives, 95% of the bytes on the expected link). The cloud has a work
directory and namespace prefix of its own (``NOVA_MIGRATION_NET_DEMO_DIR``,
``NOVA_MIGRATION_NET_DEMO_PREFIX``), so it runs beside the cloud tier.

Without root, nova's in-process cloud instead (API, conductor, scheduler,
placement and two libvirt computes, ``src`` and ``dest``, on nova's fake
libvirt): a server live-migrated through the API once per case of
:data:`CASES`, and what nova's libvirt driver handed libvirt's
``virDomain.migrateToURI3``. That part cannot show bytes on a link.

Run it with ``tox -e demo``.
"""

import logging
import os
import subprocess
import sys
import time
import unittest
import urllib.parse

import netaddr
from nova.tests.fixtures import libvirt as fakelibvirt
from nova import version

# Read by tests.cloud on import: the demo's cloud is not the cloud tier's.
os.environ['NOVA_MIGRATION_NET_CLOUD_PREFIX'] = os.environ.get(
    'NOVA_MIGRATION_NET_DEMO_PREFIX', 'nmd-')
os.environ['NOVA_MIGRATION_NET_CLOUD_DIR'] = os.environ.get(
    'NOVA_MIGRATION_NET_DEMO_DIR', '/tmp/nova-migration-net-demo')

import cloud_report  # noqa: E402  (tools/, beside this file)
from tests.cloud import cloud as cloud_  # noqa: E402
from tests.cloud import scenario  # noqa: E402
from tests.cloud import test_live_migration  # noqa: E402
from tests.functional import cloud  # noqa: E402
from tests.hypervisor import test_planes  # noqa: E402
from tests.hypervisor import testbed  # noqa: E402

CASES = [
    # (case, my_live_migration_ip on dest, [libvirt] options)
    ('option unset', None, {}),
    ('my_live_migration_ip = 172.168.1.15', '172.168.1.15', {}),
    ('my_live_migration_ip = fd00:30::15', 'fd00:30::15', {}),
    ('172.168.1.15, live_migration_scheme = tls', '172.168.1.15',
     {'live_migration_scheme': 'tls'}),
    ('172.168.1.15, tunnelled', '172.168.1.15',
     {'live_migration_tunnelled': True}),
]

RESULTS = []

# The cloud tier's cases the demo runs as root, in an order that restarts
# the fewest computes (the cloud comes up with the plugin and IPv4).
REAL_CASES = [
    'test_ipv4_migration_ip_streams_over_the_migration_link',
    'test_option_unset_streams_over_the_management_link',
    'test_stock_computes_stream_over_the_management_link',
]

# The plane of the link that carried at least 95% of a case's bytes.
PLANES = {testbed.MGMT_IF: 'management plane (%s)' % testbed.MGMT_IF,
          testbed.MIGR_IF: 'migration plane (%s)' % testbed.MIGR_IF}


class DemoMigration(cloud.LiveMigrationCloud):
    """One case: a real server live-migrated from ``src`` to ``dest``."""

    def __init__(self, case, migration_ip, libvirt_options):
        super().__init__('test_migrate')
        self.case = case
        self.migration_ip = migration_ip
        self.libvirt_options = libvirt_options

    def id(self):
        return 'demo: %s' % self.case

    def test_migrate(self):
        self.start_computes(dest_migration_ip=self.migration_ip,
                            **self.libvirt_options)
        call = self.live_migrate_server()
        log = [line.split('] ', 1)[1]
               for line in self.stdlog.logger.output.splitlines()
               if '[nova_migration_net.hooks] Live migration' in line]
        RESULTS.append((self.case, self.migration_ip, call, log))


def data_host(call):
    """Where QEMU's migration stream went, from what libvirt was handed.

    ``migrate_uri`` names it; a tunnelled migration goes through the
    libvirtd connection; otherwise QEMU connects to the address the
    destination advertises, its hostname.
    """
    if 'migrate_uri' in call.params:
        return urllib.parse.urlsplit(call.params['migrate_uri']).hostname
    if call.flags & fakelibvirt.VIR_MIGRATE_TUNNELLED:
        return urllib.parse.urlsplit(call.dconnuri).hostname
    return 'dest'


def plane(call, migration_ip):
    host = data_host(call)
    if migration_ip and host == str(netaddr.IPAddress(migration_ip)):
        return 'migration plane (%s)' % host
    return "management plane (hostname '%s')" % host


def run(suite):
    with open(os.devnull, 'w') as devnull:
        result = unittest.TextTestRunner(stream=devnull).run(suite)
    for test, trace in result.errors + result.failures:
        print('%s failed:\n%s' % (test.id(), trace), file=sys.stderr)
    return result.wasSuccessful()


class RealMigration(test_live_migration.TestLiveMigration):
    """A case of the cloud tier that keeps the plane line of the source's
    log (compute-a's; None: it logged none).
    """

    plane_lines = {}

    def tearDown(self):
        lines = [line[line.index('Live migration to'):]
                 for line in self.node(self.a).log_text().splitlines()
                 if 'Live migration to' in line and ' streams ' in line]
        self.plane_lines[self._testMethodName] = (lines or [None])[-1]
        super().tearDown()


def command_version(argv):
    """The first line ``argv`` prints, e.g. ``libvirtd --version``."""
    return subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                          timeout=30).stdout.splitlines()[0]


def real_migrations():
    """The real-cloud cases; whether all of them passed."""
    start = time.monotonic()
    ok = run(unittest.TestSuite(RealMigration(name) for name in REAL_CASES))
    results, missing = test_planes.read_results(scenario.RESULTS,
                                                REAL_CASES)
    a, b = testbed.HOSTS
    print()
    print('Real live migrations %s -> %s through the API of a two-node '
          'OpenStack (nova %s; %s; %s), each nova-compute on its own libvirt '
          'and QEMU in a network namespace, where %s resolves to its '
          'management address; the plane the source logged and the bytes '
          "each of the source's links carried:" % (
              a.name, b.name, version.version_string(),
              command_version(['libvirtd', '--version']),
              command_version(['qemu-system-x86_64', '--version']), b.name))
    for r in results:
        print()
        print('* %s' % test_planes.case_title(r))
        print('    source          : %s' % cloud_report.compute(r['source']))
        print('    destination     : %s'
              % cloud_report.compute(r['destination']))
        print('    plane           : %s' % PLANES[r['expected']])
        print('    source log      : %s' % (
            RealMigration.plane_lines.get(r['case'])
            or '(none: stock nova names no plane)'))
        for ifname, label in ((testbed.MGMT_IF, 'management link'),
                              (testbed.MIGR_IF, 'migration link')):
            print('    %-15s : %s bytes (%.2f%%)' % (
                label, format(r['bytes'][ifname], ','),
                100 * test_planes.share(r['bytes'], ifname)))
        print('    migration       : %.1f s' % r['seconds'])
    for name in sorted(missing):
        print()
        print('* %s: failed (see above)' % test_planes.case_title(
            {'case': name}))
    print()
    print('Cloud up in %.0f s; %.0f s in all.' % (
        results[0]['cloud_up_seconds'] if results else 0,
        time.monotonic() - start))
    return ok and not missing


def in_process_migrations():
    """The in-process cases; whether all of them passed."""
    # nova logs thread pool shutdowns after each test's log capture ends.
    logging.getLogger('nova.thread_pool_factory').setLevel(logging.WARNING)
    ok = run(unittest.TestSuite(DemoMigration(*case) for case in CASES))
    print()
    print('Live migrations src -> dest through nova %s with '
          'nova-migration-net active' % version.version_string())
    print("(URIs as nova's libvirt driver handed them to "
          'virDomain.migrateToURI3)')
    for case, migration_ip, call, log in RESULTS:
        print()
        print('* %s' % case)
        print('    dconnuri    : %s' % call.dconnuri)
        print('    migrate_uri : %s' % call.params.get('migrate_uri',
                                                       '(not set)'))
        print('    plane       : %s' % plane(call, migration_ip))
        for line in log:
            print('    source log  : %s' % line)
    return ok


def main():
    reason = cloud_.why_unavailable()
    if reason is None:
        return 0 if real_migrations() else 1
    ok = in_process_migrations()
    print()
    print('Real-cloud migrations skipped: %s.' % reason)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
