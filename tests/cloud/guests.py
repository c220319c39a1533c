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

"""Images and guests: the hypervisor tier's noise guest, booted by nova.

The guest kernel is ``noise_guest.S`` as the testbed builds it, uploaded
to glance as an ``aki`` image; a small random raw disk goes up as the
``ami`` whose ``kernel_id`` it is (nova boots it directly, no
bootloader). The flavor has 128 MB and one vCPU; servers boot with
``networks: none``. The guest writes its memory checksums to its serial
port too, which nova logs to the instance's ``console.log`` on the host
it runs on: the console output nova's API returns is that host's log,
so a checksum read after a migration was computed on the destination.

With ``dirty_mib`` (the benchmark's), the guest keeps that much of its
memory dirty after its first checksum (see ``noise_guest.S``): its own
images and flavor, and no checksum to compare after a migration.
``root_mib`` and ``disk_gb`` (the cold migrations') give the root image's
size and the flavor's root disk (0: the image's size), also with images
and a flavor of their own.
"""

import os

from tests.cloud.services import base
from tests.hypervisor import testbed

FLAVOR = 'noise128'
MEMORY_MB = 128
ROOT_DISK_MIB = 8


class Guests:
    """The images, the flavor and noise servers of one cloud."""

    def __init__(self, cloud, memory_mb=MEMORY_MB, dirty_mib=0,
                 root_mib=ROOT_DISK_MIB, disk_gb=1):
        self.cloud = cloud
        self.conn = cloud.admin
        self.memory_mb = memory_mb
        self.dirty_mib = dirty_mib
        self.root_mib = root_mib
        self.disk_gb = disk_gb
        self.kind = ('noise' if (memory_mb, dirty_mib) == (MEMORY_MB, 0)
                     else 'noise%d-dirty%d' % (memory_mb, dirty_mib))
        if (root_mib, disk_gb) != (ROOT_DISK_MIB, 1):
            self.kind += '-root%d-disk%d' % (root_mib, disk_gb)
        # The root image's random bytes, as uploaded.
        self.root_path = os.path.join(cloud.work_dir, self.kind + '-root.raw')
        self._images = None

    def images(self):
        """The kernel and disk images and the flavor, made once."""
        if self._images is None:
            kernel_path = self.cloud.testbed.build_guest_kernel(
                self.memory_mb, dirty_mib=self.dirty_mib)
            root_path = self.root_path
            with open(root_path, 'wb') as f:
                f.write(os.urandom(self.root_mib * 1024 * 1024))
            image = self.conn.image
            kernel = image.create_image(
                name=self.kind + '-kernel', filename=kernel_path,
                disk_format='aki', container_format='aki',
                validate_checksum=False, wait=True)
            root = image.create_image(
                name=self.kind + '-root', filename=root_path,
                disk_format='ami', container_format='ami',
                kernel_id=kernel.id, validate_checksum=False, wait=True,
                # The guest ignores ACPI: nova powers it off at once
                # (a cold migration's), not after shutdown_timeout (60 s).
                os_shutdown_timeout=0)
            flavor = self.conn.compute.create_flavor(
                name=(FLAVOR if self.kind == 'noise' else self.kind),
                ram=self.memory_mb, vcpus=1, disk=self.disk_gb)
            self._images = root, flavor
            # Each host fetches the images from glance, over the
            # management link, the first time it runs a guest of them: a
            # server booted on each host first keeps that download out of
            # every migration's byte count.
            for host in self.cloud.testbed.hosts:
                kind = '' if self.kind == 'noise' else self.kind + '-'
                server, _ = self.boot('warm-up-' + kind + host.name, host)
                self.delete(server)
        return self._images

    def boot(self, name, host, timeout=180):
        """A noise server on ``host``, ACTIVE, with its first checksum."""
        [(server, checksum)] = self.boot_many([name], host, timeout)
        return server, checksum

    def boot_many(self, names, host, timeout=180):
        """Noise servers on ``host``, asked for at once; each ACTIVE, with
        its first checksum, as ``(server, checksum)`` in ``names``' order.
        """
        root, flavor = self.images()
        compute = self.conn.compute
        servers = [compute.create_server(
            name=name, image_id=root.id, flavor_id=flavor.id,
            networks='none', availability_zone='nova:' + host.name)
            for name in names]
        servers = [compute.wait_for_server(s, status='ACTIVE',
                                           failures=['ERROR'], wait=timeout)
                   for s in servers]
        return [(s, self.wait_for_checksums(s)[0]) for s in servers]

    def checksums(self, server):
        """The checksums in the server's console output, in order."""
        output = self.conn.compute.get_server_console_output(server)
        return testbed.parse_checksums(output['output'])

    def wait_for_checksums(self, server, count=1, timeout=120):
        return base.wait_for(
            '%d checksums from server %s' % (count, server.id),
            lambda: (lambda sums: sums if len(sums) >= count else None)(
                self.checksums(server)), timeout, interval=1)

    def delete(self, server, timeout=120):
        self.conn.compute.delete_server(server)
        self.conn.compute.wait_for_delete(server, wait=timeout)
