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
100 ms until stopped, and keeps the TCP listeners of libvirt's, QEMU's and
sshd's processes and the established connections to them. QEMU's incoming
migration port and libvirt's NBD server exist only while a migration
runs; a socket that opens and closes between two samples is missed.
"""

import contextlib
import re
import subprocess
import threading

# ss's process names are the kernel's 15-character ``comm``; sshd for
# qemu+ssh://.
DAEMONS = ('libvirtd', 'virtqemud', 'virtproxyd', 'qemu-system-x86',
           'qemu-kvm', 'sshd')
USERS = re.compile(r'\(\("([^"]+)",pid=(\d+)')


def _endpoint(text):
    """``ADDR:PORT`` as (addr, port); IPv6 in brackets, maybe ``%zone``."""
    address, port = text.rsplit(':', 1)
    address = address.strip('[]').split('%', 1)[0]
    # A dual-stack socket's IPv4 peers: ``::ffff:172.30.0.1``.
    if address.startswith('::ffff:') and '.' in address:
        address = address[len('::ffff:'):]
    return address, int(port) if port.isdigit() else port


def parse(output):
    """``[(state, local, peer, process, pid)]`` of ``ss -Htanp``
    ``output``; process and pid None for a socket of no process.
    """
    found = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        match = USERS.search(line)
        process, pid = (match.group(1), int(match.group(2))) if match else (
            None, None)
        found.append((fields[0], _endpoint(fields[3]), _endpoint(fields[4]),
                      process, pid))
    return found


def parent_name(pid):
    """The ``comm`` of ``pid``'s parent, or None once it is gone (the
    hosts share this machine's process namespace).
    """
    try:
        with open('/proc/%d/stat' % pid) as f:
            ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        with open('/proc/%d/comm' % ppid) as f:
            return f.read().strip()
    except (OSError, ValueError, IndexError):
        return None


class SocketSampler(threading.Thread):
    """Samples a host's sockets until stopped.

    ``listening``: ``{(process, (addr, port))}`` of :data:`DAEMONS`;
    ``inbound``: ``{(peer addr, (addr, port), process)}`` of connections
    to those listeners; ``outbound``: ``{(process, its parent's name,
    (peer addr, port))}`` of connections the processes named ``clients``
    opened.
    """

    def __init__(self, prefix, interval=0.1, clients=()):
        super().__init__(daemon=True)
        self.command = list(prefix) + ['ss', '-Htanp']
        self.interval = interval
        self.clients = frozenset(clients)
        self.listening, self.inbound, self.outbound = set(), set(), set()
        self.samples = 0
        self._done = threading.Event()

    def sample(self):
        output = subprocess.run(self.command, capture_output=True,
                                text=True, timeout=30, check=True).stdout
        sockets = parse(output)
        for state, local, _, process, _ in sockets:
            if state == 'LISTEN' and process in DAEMONS:
                self.listening.add((process, local))
        ports = {local[1] for _, local in self.listening}
        for state, local, peer, process, pid in sockets:
            if state != 'ESTAB' or not process:
                continue
            if local[1] in ports:
                self.inbound.add((peer[0], local, process))
            if process in self.clients:
                parent = parent_name(pid)
                # Gone since ss listed it (an ssh client at the end of the
                # migration): the next sample, or an earlier one, says whose.
                if parent is not None:
                    self.outbound.add((process, parent, peer))
        self.samples += 1

    def run(self):
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join()


@contextlib.contextmanager
def sampling(prefix, clients=()):
    """A running :class:`SocketSampler` of the host ``prefix`` enters."""
    sampler = SocketSampler(prefix, clients=clients)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()
