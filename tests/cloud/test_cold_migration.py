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

"""Cold migrations and resizes made by real nova-computes, through the API.

nova 34 copies a cold-migrated or resized server's disks from the source
with ``ssh`` (``mkdir``) and ``scp`` (``[libvirt] remote_filesystem_transport
= ssh``, nova's default) to the migration record's ``dest_host``, the
destination's ``[libvirt] migration_inbound_addr``. The plugin makes that
the destination's migration address when the operator did not set it
(:func:`nova_migration_net.hooks.carry_cold_migrations`).

nova-compute runs as root; its ssh client on compute-a uses the cloud's
key and ``known_hosts`` (:mod:`tests.cloud.services.sshd`), which holds
compute-b's host key under the address the case expects and compute-b's
hostname only, with unknown hosts refused; compute-b's sshd accepts the
key. Both computes use ``[libvirt] images_type = raw``: the noise guest
never writes its disk, so a qcow2 overlay would hold nothing to copy,
while a raw disk is the image's random bytes (:data:`ROOT_MIB` MiB,
flavor root disk 0: the image's size). Each host's ``instances_path`` is
its own directory, so nova finds it not shared and copies.

Each case boots a server on compute-a, moves it to compute-b (``migrate``
with ``host``, or ``resize`` to a bigger flavor: nova's
``allow_resize_to_same_host`` is False), confirms, and passes only if:

- the server is ACTIVE on compute-b (with the new flavor for the resize),
  and its migration record is confirmed, of the right type, with the
  expected ``dest_host``;
- the source's log shows nova's ``scp`` of the disk to that address;
- at least 95% of the bytes the source's links carried from the API call
  to the end of the confirmation crossed the expected link (the kernel's
  counters), and that link carried at least the disk;
- the disk on compute-b holds the image's bytes (``qemu-img compare``:
  nova converts the copied raw disk to qcow2 there, as
  ``use_cow_images`` is nova's default True, and the resize grows it to
  the new flavor's size), and compute-a keeps no copy;
- the guest booted again on compute-b computes the memory checksum it
  computed on compute-a (its console output there; a cold migration
  restarts the guest, so this says it runs, not that memory moved).

The control case runs compute-b with the plugin but no migration address:
the copy then goes to its ``my_ip`` over the management link. With
``NOVA_MIGRATION_NET_CLOUD_SLOW=1`` a cold migration to compute-b's IPv6
migration address runs too.
"""

import json
import os
import subprocess
import time
import unittest

from tests.cloud import cloud as cloud_
from tests.cloud import guests as guests_
from tests.cloud import scenario
from tests.cloud.scenario import ipv4
from tests.cloud.scenario import ipv6
from tests.cloud.services import base
from tests.hypervisor import test_planes
from tests.hypervisor import testbed

# The root image: random bytes, copied whole by every case.
ROOT_MIB = 64
MIB = 1024 * 1024
# The flavor a resize goes to: more memory, a 1 GiB root disk.
RESIZED_MEMORY_MB = guests_.MEMORY_MB + 64
RESIZED_DISK_GB = 1
# Raw disks: each a copy of the image, as nova's scp sends it.
RAW = (('images_type', 'raw'),)
# One result per case, for the documentation's table.
RESULTS = os.path.join(cloud_.WORK_DIR, 'cold_migration.json')
SLOW = os.environ.get('NOVA_MIGRATION_NET_CLOUD_SLOW') == '1'


def raw(spec):
    return spec._replace(libvirt=RAW)


def disk_info(path):
    """``qemu-img info`` of a disk a guest may be running on."""
    return json.loads(base.run(['qemu-img', 'info', '-U', '--output=json',
                                path]))


class TestColdMigration(scenario.CloudTestCase):
    """One cold migration or resize from compute-a to compute-b per case
    (named so that the cases of one compute spec run in a row: unittest
    orders them by name).
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.disk_guests = guests_.Guests(cls.cloud, root_mib=ROOT_MIB,
                                         disk_gb=0)

    # The cases

    def test_cold_migration_copies_the_disk_over_the_migration_link(self):
        self.check_cold_migration(ipv4(self.b), self.b.migration_ipv4,
                                  testbed.MIGR_IF)

    def test_resize_copies_the_disk_over_the_migration_link(self):
        self.check_cold_migration(ipv4(self.b), self.b.migration_ipv4,
                                  testbed.MIGR_IF, resize=True)

    @unittest.skipUnless(
        SLOW, 'IPv6 cold migration (about 80 s, two more restarts of both '
        'computes): set NOVA_MIGRATION_NET_CLOUD_SLOW=1 to run it')
    def test_to_an_ipv6_migration_address(self):
        """Both hosts advertise their IPv6 migration address: nova's ssh
        takes it bare, its scp in brackets.
        """
        self.check_cold_migration(ipv6(self.b), self.b.migration_ipv6,
                                  testbed.MIGR_IF, spec_a=ipv6(self.a))

    def test_without_migration_address_copies_over_the_management_link(
            self):
        """compute-b with the plugin and no migration address: nova's
        default, its ``my_ip``.
        """
        self.check_cold_migration(scenario.PLUGIN_UNSET, self.b.mgmt_ip,
                                  testbed.MGMT_IF)

    # Steps

    def check_cold_migration(self, spec_b, address, link, resize=False,
                             spec_a=None):
        """Run compute-a as ``spec_a`` (by default the plugin and its IPv4
        migration address) and compute-b as ``spec_b``, raw disks both,
        move a server from compute-a to compute-b, confirm, and check what
        the module doc says; ``address`` is compute-b's expected
        ``dest_host``, ``link`` the link the disk must cross.
        """
        spec_a = raw(spec_a or ipv4(self.a))
        spec_b = raw(spec_b)
        with self.logs_on_failure():
            self.computes(spec_a, spec_b)
            self.cloud.sshd.start([address, self.b.name])
            self.addCleanup(self.cloud.sshd.stop)
            flavor = self.resized_flavor() if resize else None
            name = self.id().rsplit('.', 1)[1]
            server, checksum = self.disk_guests.boot(name, self.a)
            self.addCleanup(self.disk_guests.delete, server)
            with self.cloud.testbed.bytes_moved(self.a) as moved:
                start = time.monotonic()
                if resize:
                    self.conn.compute.resize_server(server, flavor)
                else:
                    self.conn.compute.migrate_server(server,
                                                     host=self.b.name)
                server = self.wait_for_resized(server)
                seconds = time.monotonic() - start
                self.assertEqual(('VERIFY_RESIZE', self.b.name),
                                 (server.status, server.compute_host))
                self.conn.compute.confirm_server_resize(server)
                server = self.conn.compute.wait_for_server(
                    server, status='ACTIVE', failures=['ERROR'],
                    interval=0.5, wait=120)
            self.assertMovedCold(server, checksum, moved, address, link,
                                 flavor)
        self.record(seconds, moved, link, spec_a, spec_b, path=RESULTS,
                    operation='resize' if resize else 'cold migration',
                    dest_host=address)

    def resized_flavor(self):
        """The flavor a resize goes to, made once."""
        name = self.disk_guests.kind + '-resized'
        compute = self.conn.compute
        return compute.find_flavor(name) or compute.create_flavor(
            name=name, ram=RESIZED_MEMORY_MB, vcpus=1, disk=RESIZED_DISK_GB)

    def wait_for_resized(self, server):
        """``server`` once nova has copied it and waits for the
        confirmation (VERIFY_RESIZE), or is in ERROR, or its migration
        failed (nova rolled it back).
        """
        def resized():
            current = self.conn.compute.get_server(server)
            if current.status in ('VERIFY_RESIZE', 'ERROR'):
                return current
            records = self.migrations(current)
            if (records and records[-1].status in ('error', 'failed')
                    and current.task_state is None):
                return current
        return base.wait_for('server %s resized' % server.id, resized,
                             scenario.MIGRATION_TIMEOUT, interval=0.5)

    def instance_dir(self, host, server):
        """``server``'s directory on ``host``, as this process sees it."""
        return os.path.join(self.node(host).state, 'nova', 'instances',
                            server.id)

    def assertMovedCold(self, server, checksum, moved, address, link,
                        flavor=None):
        """The checks of the module doc."""
        self.assertEqual(('ACTIVE', self.b.name),
                         (server.status, server.compute_host))
        record = self.migrations(server)[-1]
        self.assertEqual(
            ('confirmed', 'resize' if flavor else 'migration',
             self.a.name, self.b.name, address),
            (record.status, record.migration_type, record.source_compute,
             record.dest_compute, record.dest_host))
        # nova's copy, as processutils logs it (the source's instance
        # directory is renamed <uuid>_resize first).
        local = self.node(self.a).instances_path
        copy = 'scp -C -r %s/%s_resize/disk %s:%s/%s/disk' % (
            local, server.id, '[%s]' % address if ':' in address
            else address, local, server.id)
        self.assertIn(copy, self.node(self.a).log_text())
        on_link = test_planes.share(moved, link)
        self.assertGreaterEqual(
            on_link, test_planes.MIN_SHARE, '%.2f%% of %d bytes on %s: %s'
            % (100 * on_link, sum(moved.values()), link, moved))
        self.assertGreater(moved[link], ROOT_MIB * MIB)
        disk = os.path.join(self.instance_dir(self.b, server), 'disk')
        info = disk_info(disk)
        self.assertEqual(
            flavor.disk * 1024 * MIB if flavor else ROOT_MIB * MIB,
            info['virtual-size'])
        # The image's bytes, then zeros (qemu-img compare's default).
        compare = subprocess.run(
            ['qemu-img', 'compare', '-U', '-f', 'raw', '-F', info['format'],
             self.disk_guests.root_path, disk], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=120)
        self.assertEqual(0, compare.returncode, compare.stdout)
        if flavor:
            self.assertEqual(flavor.name, server.flavor.original_name)
        source_dir = self.instance_dir(self.a, server)
        for path in (source_dir, source_dir + '_resize'):
            self.assertFalse(os.path.exists(path), path)
        sums = self.disk_guests.wait_for_checksums(server)
        self.assertEqual({checksum}, set(sums))
