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

"""How many TCP streams the source opened to the destination's migration
ports, or to its libvirtd.

libvirt gives the destination's QEMU an incoming port from
``migration_port_min``..``migration_port_max`` (49152-49215 by default)
for the migration stream, and its NBD server (the disk copy) another. A
native migration opens one connection to the first port, plus one per
``live_migration_parallel_connections`` (QEMU's multifd channels, all to
the same port); a tunnelled one opens none: the data rides the source
libvirtd's connection to the destination's libvirtd
(:data:`LIBVIRTD_PORTS`).

:class:`StreamCounter` samples the source's connection table (its network
namespace's ``/proc/<pid>/net/tcp``) every 50 ms and keeps the most
ESTABLISHED connections it saw to any one of the ports it watches. A connection
that opens and closes between two samples is missed; the memory stream of
a 128 MiB guest lasts seconds.
"""

import collections
import contextlib
import ipaddress
import threading

MIGRATION_PORTS = range(49152, 49216)
# libvirtd's TCP listener (qemu+tcp://).
LIBVIRTD_PORTS = (16509,)
ESTABLISHED = '01'


def _address(hex_address):
    """``/proc/net/tcp[6]``'s ``HEX:PORT`` as (ip_address, port)."""
    address, port = hex_address.split(':')
    words = [bytes.fromhex(address[i:i + 8])[::-1]
             for i in range(0, len(address), 8)]
    return ipaddress.ip_address(b''.join(words)), int(port, 16)


def connections(pid, address, ports=MIGRATION_PORTS):
    """``{port: count}`` of ``pid``'s namespace's ESTABLISHED connections
    to ``address`` on ``ports``.
    """
    address = ipaddress.ip_address(address)
    counts = collections.Counter()
    name = 'tcp' if address.version == 4 else 'tcp6'
    with open('/proc/%d/net/%s' % (pid, name)) as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            remote, port = _address(fields[2])
            if (fields[3] == ESTABLISHED and remote == address
                    and port in ports):
                counts[port] += 1
    return counts


class StreamCounter(threading.Thread):
    """Samples :func:`connections` until stopped; ``peak`` is the most
    connections seen at once to one port.
    """

    def __init__(self, pid, address, ports=MIGRATION_PORTS, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.address, self.interval = pid, address, interval
        self.ports = ports
        self.peak = 0
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(self.interval):
            counts = connections(self.pid, self.address, self.ports)
            self.peak = max([self.peak, *counts.values()])

    def stop(self):
        self._done.set()
        self.join()


@contextlib.contextmanager
def counting(pid, address, ports=MIGRATION_PORTS):
    """A running :class:`StreamCounter`, stopped when the block ends."""
    counter = StreamCounter(pid, address, ports)
    counter.start()
    try:
        yield counter
    finally:
        counter.stop()
