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

"""A live migration between computes whose CPUs are reserved for the
host's services, as operators run them.

Operators keep unpinned guests on nova's ``[compute] cpu_shared_set`` and
the host's services on the other CPUs. Where the set differs between
hosts, the destination sends its own in the live migration data
(``dst_cpu_shared_set_info``, ``LibvirtLiveMigrateData`` 1.12) and the
source rewrites the guest's ``<vcpu cpuset>`` in the domain XML it hands
libvirt. With the plugin, that object travels in the plugin's own version
of the class: had it lost the field, the guest would run on the
destination on the source's CPUs, among the host's services, and nothing
would fail.

compute-a gives its guests the second CPU, compute-b the first; the
server must stream over the migration link and run on compute-b on the
first CPU only, every QEMU thread and the domain's XML saying so.
"""

import os
import re

from tests.cloud import affinity
from tests.cloud import faults
from tests.cloud import scenario
from tests.hypervisor import testbed

CPUSET = re.compile(r"<vcpu\b[^>]*\bcpuset='([^']+)'")


def reserved(spec, cpus):
    """``spec`` with guests on ``cpus`` (``[compute] cpu_shared_set``)."""
    return spec._replace(nova_conf=(('compute', 'cpu_shared_set', cpus),))


class TestReservedCpus(scenario.CloudTestCase):

    def assertGuestOn(self, host, server, cpus):
        """Every thread of ``server``'s QEMU on ``host``, and its domain's
        ``<vcpu cpuset>``, on ``cpus`` only.
        """
        threads = affinity.guest_threads(host, server.instance_name)
        self.assertTrue(threads, 'no QEMU runs %s on %s'
                        % (server.instance_name, host.name))
        self.assertEqual({cpus}, set(threads.values()), threads)
        xml = faults.host_run(self.cloud, host, 'virsh', '-c',
                              'qemu:///system', 'dumpxml',
                              server.instance_name)
        self.assertEqual([cpus], CPUSET.findall(xml))

    def test_guest_takes_the_destinations_cpu_shared_set(self):
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest('two CPUs needed, one set per host')
        spec_a = reserved(scenario.ipv4(self.a), '1')
        spec_b = reserved(scenario.ipv4(self.b), '0')
        with self.logs_on_failure():
            self.computes(spec_a, spec_b)
            server, checksum = self.boot(self.a)
            self.assertGuestOn(self.a, server, '1')
            server, moved, _ = self.live_migrate(server, self.b)
            self.assertMigrated(
                server, self.b, checksum, moved, testbed.MIGR_IF,
                'streams over the migration plane to 172.30.0.2')
            self.assertGuestOn(self.b, server, '0')
