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

Starts nova's in-process cloud (API, conductor, scheduler, placement and two
libvirt computes, ``src`` and ``dest``, on nova's fake libvirt), boots a
server and live-migrates it through the API, once per case below. For each
migration it prints what nova's libvirt driver handed libvirt's
``virDomain.migrateToURI3`` and the plane the stream took.

As root, it then makes real migrations too: the real-hypervisor tier's
cases (``tests/hypervisor``) on two libvirt/QEMU hosts in network
namespaces, with the calls nova made, and prints the bytes each link
carried.

Run it with ``tox -e demo``.
"""

import json
import logging
import os
import sys
import unittest
import urllib.parse

import netaddr
from nova.tests.fixtures import libvirt as fakelibvirt
from nova import version
from oslo_utils import versionutils

from tests.functional import cloud
from tests.hypervisor import test_planes
from tests.hypervisor import testbed

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

# The real-hypervisor cases the demo runs as root.
REAL_CASES = [
    'test_option_unset_streams_over_the_management_link',
    'test_ipv4_migration_ip_streams_over_the_migration_link',
    'test_ipv6_migration_ip_streams_over_the_migration_link',
    'test_tunnelled_migration_tunnels_over_the_migration_link',
    'test_native_tls_streams_over_the_migration_link',
]


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


def real_migrations():
    """The real-hypervisor cases; False if one failed, None if not run."""
    reason = testbed.why_unavailable()
    if reason is None and test_planes.libvirt is None:
        reason = 'libvirt-python is not installed'
    print()
    if reason:
        print('Real libvirt/QEMU migrations skipped: %s.' % reason)
        return None
    ok = run(unittest.TestSuite(test_planes.TestMigrationPlanes(name)
                                for name in REAL_CASES))
    with open(test_planes.RESULTS) as f:
        results = json.load(f)
    a, b = testbed.HOSTS
    print('Real live migrations %s -> %s (libvirt %s, QEMU in network '
          'namespaces; %s resolves to its management address), made with '
          "the calls nova's libvirt driver made, and the bytes each link "
          'carried:' % (a.name, b.name, versionutils.convert_version_to_str(
              test_planes.libvirt.getVersion()), b.name))
    for r in results:
        print()
        print('* %s' % test_planes.case_title(r))
        print('    dconnuri        : %s' % r['uri'])
        print('    migrate_uri     : %s' % (r['migrate_uri'] or '(not set)'))
        if r['tls.destination']:
            print('    tls.destination : %s' % r['tls.destination'])
        for ifname, label in ((testbed.MGMT_IF, 'management link'),
                              (testbed.MIGR_IF, 'migration link')):
            print('    %-15s : %s bytes (%.2f%%)' % (
                label, format(r['bytes'][ifname], ','),
                100 * test_planes.share(r['bytes'], ifname)))
    return ok


def main():
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
    real_ok = real_migrations()
    return 0 if ok and real_ok is not False else 1


if __name__ == '__main__':
    sys.exit(main())
