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

Run it with ``tox -e demo``.
"""

import logging
import os
import sys
import unittest
import urllib.parse

import netaddr
from nova.tests.fixtures import libvirt as fakelibvirt
from nova import version

from tests.functional import cloud

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


def main():
    # nova logs thread pool shutdowns after each test's log capture ends.
    logging.getLogger('nova.thread_pool_factory').setLevel(logging.WARNING)
    suite = unittest.TestSuite(DemoMigration(*case) for case in CASES)
    with open(os.devnull, 'w') as devnull:
        result = unittest.TextTestRunner(stream=devnull).run(suite)
    for test, trace in result.errors + result.failures:
        print('%s failed:\n%s' % (test.id(), trace), file=sys.stderr)
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
    return 0 if result.wasSuccessful() else 1


if __name__ == '__main__':
    sys.exit(main())
