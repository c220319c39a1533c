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

"""Which daemon listens where on a host, and who connects to it.

:class:`SocketSampler` runs ``ss -Htanp`` inside a host's namespaces every
100 ms until stopped, and keeps the TCP listeners of libvirt's and QEMU's
processes and the established connections to them. QEMU's incoming
migration port and libvirt's NBD server exist only while a migration
runs; a socket that opens and closes between two samples is missed.
"""

import contextlib
import re
import subprocess
import threading

# ss's process names are the kernel's 15-character ``comm``.
DAEMONS = ('libvirtd', 'virtqemud', 'virtproxyd', 'qemu-system-x86',
           'qemu-kvm')
USERS = re.compile(r'\(\("([^"]+)"')


def _endpoint(text):
    """``ADDR:PORT`` as (addr, port); IPv6 in brackets, maybe ``%zone``."""
    address, port = text.rsplit(':', 1)
    address = address.strip('[]').split('%', 1)[0]
    # A dual-stack socket's IPv4 peers: ``::ffff:172.30.0.1``.
    if address.startswith('::ffff:') and '.' in address:
        address = address[len('::ffff:'):]
    return address, int(port) if port.isdigit() else port


def parse(output):
    """``[(state, local, peer, process)]`` of ``ss -Htanp`` ``output``."""
    found = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        match = USERS.search(line)
        found.append((fields[0], _endpoint(fields[3]), _endpoint(fields[4]),
                      match.group(1) if match else None))
    return found


class SocketSampler(threading.Thread):
    """Samples a host's sockets until stopped.

    ``listening``: ``{(process, (addr, port))}`` of :data:`DAEMONS`;
    ``inbound``: ``{(peer addr, (addr, port), process)}`` of connections
    to those listeners.
    """

    def __init__(self, prefix, interval=0.1):
        super().__init__(daemon=True)
        self.command = list(prefix) + ['ss', '-Htanp']
        self.interval = interval
        self.listening, self.inbound = set(), set()
        self.samples = 0
        self._done = threading.Event()

    def sample(self):
        output = subprocess.run(self.command, capture_output=True,
                                text=True, timeout=30, check=True).stdout
        sockets = parse(output)
        for state, local, _, process in sockets:
            if state == 'LISTEN' and process in DAEMONS:
                self.listening.add((process, local))
        ports = {local[1] for _, local in self.listening}
        for state, local, peer, process in sockets:
            if state == 'ESTAB' and local[1] in ports and process:
                self.inbound.add((peer[0], local, process))
        self.samples += 1

    def run(self):
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join()


@contextlib.contextmanager
def sampling(prefix):
    """A running :class:`SocketSampler` of the host ``prefix`` enters."""
    sampler = SocketSampler(prefix)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()
