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

"""A nova upgrade from 2026.1 to 2026.2 on the real cloud, plugin on.

nova 34 accepts computes back to nova 33, so this is the mix operators run
during their upgrade. nova's API, conductor and scheduler run nova 34 from
compute-a's venv, with ``[upgrade_levels] compute = auto``, as an
operator upgrades controllers first. The computes then go from nova
33.0.2 (the venv of ``upper-constraints-nova33.txt``, plugin installed
with those pins) to nova 34 one at a time (:data:`STEPS`), each with the
plugin and ``my_live_migration_ip`` set. One server, booted once, is
live-migrated to compute-b and back at every step, as the operator empties
each host before upgrading it.

The shared cloud's computes came up on nova 34, so the first step starts
from a 2026.1 cloud's state: their rows in nova's ``services`` table get
nova 33's service version, and nova's API, conductor and scheduler restart
with that minimum (:meth:`TestCrossRelease.controllers_upgraded`); they are
not restarted after that.

Every migration must stream to the destination's migration IP and pass
:meth:`scenario.CloudTestCase.assertMigrated`. At each step, nova's
``services`` table must hold each compute's own release's service version
and each nova-compute's log its release and the plugin's activation. The
table the test prints (:func:`table`) is the one in
``doc/source/upgrade.rst``; ``tools/cloud_report.py`` prints it again from
:data:`RESULTS`.
"""

import glob
import json
import os
import re

from tests.cloud import cloud as cloud_
from tests.cloud import install
from tests.cloud import scenario
from tests.cloud.services import compute
from tests.cloud import test_rolling_upgrade as upgrade
from tests.hypervisor import testbed

RESULTS = os.path.join(cloud_.WORK_DIR, 'cross-release.json')

MIGR = testbed.MIGR_IF


def _nova33(host):
    """nova 33's nova-compute with the plugin. It has only eventlet mode
    (the environment variable nova 34 reads, which nova 33 reads too, says
    so).
    """
    return compute.Spec(True, host.migration_ipv4, 'eventlet', nova='33')


def _nova34(host):
    return scenario.ipv4(host)


# (what the operator did, compute-a's spec, compute-b's spec, the link of
# the migration to compute-b, the link of the one back to compute-a).
STEPS = (
    ('controllers upgraded to nova 34', _nova33, _nova33, MIGR, MIGR),
    ('compute-a upgraded to nova 34', _nova34, _nova33, MIGR, MIGR),
    ('compute-b upgraded to nova 34', _nova34, _nova34, MIGR, MIGR),
)


def release_words(spec):
    """How a recorded compute ran, its nova series first (None: the
    cloud's own, nova 34).
    """
    return 'nova %s, %s' % (spec.get('nova') or '34',
                            upgrade.spec_words(spec))


def table(results):
    return upgrade.table(results, release_words)


def service_versions(cloud):
    """``{host: version}`` of the nova-compute rows of nova's ``services``
    table: the object service version each compute wrote at start-up.
    """
    out = cloud.mysql.sql(
        "SELECT host, version FROM nova.services WHERE "
        "`binary` = 'nova-compute' AND deleted = 0")
    rows = [line.split('\t') for line in out.splitlines()[1:]]
    return {host: int(version) for host, version in rows}


def own_service_version(venv):
    """``nova.objects.service.SERVICE_VERSION`` of the nova in ``venv``
    (read from its source: importing nova costs seconds).
    """
    [path] = glob.glob(os.path.join(venv, 'lib', 'python*', 'site-packages',
                                    'nova', 'objects', 'service.py'))
    with open(path) as f:
        return int(re.search(r'^SERVICE_VERSION = (\d+)$', f.read(),
                             re.M).group(1))


class TestCrossRelease(upgrade.UpgradeTestCase):
    """One test: the steps are one upgrade, in order."""

    results = RESULTS

    def test_nova_33_to_34_keeps_the_migration_plane(self):
        if os.path.exists(RESULTS):
            os.unlink(RESULTS)
        with self.logs_on_failure():
            self.controllers_upgraded()
            server = checksum = None
            for step, (did, spec_a, spec_b, to_b, to_a) in enumerate(
                    STEPS, 1):
                specs = {self.a: spec_a(self.a), self.b: spec_b(self.b)}
                self.computes(specs[self.a], specs[self.b])
                releases = self.assertReleases()
                if server is None:
                    # The conductor's workers are up once computes are.
                    control = upgrade.control_plane(self.cloud)
                    server, checksum = self.boot(self.a)
                for destination, link in ((self.b, to_b), (self.a, to_a)):
                    server = self.migrate(
                        step, did, server, destination, checksum, link,
                        specs, nova={h.name: releases[h]
                                     for h in (self.a, self.b)})
                self.assertEqual(control, upgrade.control_plane(self.cloud),
                                 'nova control plane restarted at step %d'
                                 % step)
        with open(RESULTS) as f:
            print('\n' + table(json.load(f)))

    def controllers_upgraded(self):
        """Stop both computes, give their rows in nova's services table
        nova 33's service version, and restart nova's API, conductor and
        scheduler on nova 34, as an operator upgrades a 2026.1 cloud's
        controllers.

        The shared cloud's computes came up on nova 34 and wrote its
        version in their rows, and nova refuses an older compute once every
        row is newer (``ServiceTooOld``, as after a rollback; the conductor
        caches the minimum). In an upgrade from 2026.1 the rows hold nova
        33's version until each compute restarts on nova 34, and the
        controllers start with that minimum, from which ``[upgrade_levels]
        compute = auto`` pins compute RPC.
        """
        for host in (self.a, self.b):
            self.node(host).stop()
        version = own_service_version(install.venv('compute-nova33'))
        self.cloud.mysql.sql(
            "UPDATE nova.services SET version = %d WHERE "
            "`binary` = 'nova-compute' AND deleted = 0" % version)
        self.cloud.nova.stop()
        self.cloud.nova.start()

    def assertReleases(self):
        """Each nova-compute runs its spec's nova: its log says so, and so
        does its row in nova's services table; ``{host: nova version}``.
        """
        versions = service_versions(self.cloud)
        releases = {}
        for host in (self.a, self.b):
            node = self.node(host)
            release = node.nova_version()
            self.assertEqual(node.spec.nova or '34', release.split('.')[0])
            self.assertIn('Starting compute node (version %s)' % release,
                          node.log_text())
            self.assertEqual(own_service_version(node.venv),
                             versions[host.name])
            releases[host] = release
        return releases
