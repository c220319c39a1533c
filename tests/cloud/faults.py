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

"""Real faults on the cloud's hosts, and what is true once one struck.

Each fault returns the callable that undoes it, for ``addCleanup``. The
links are the testbed's veth pairs: ``ip link set down`` on one end takes
the carrier off both, and the kernel drops what either side sends; a
link is slowed with :mod:`tests.cloud.links`. :class:`Outcome` reads
nova's API, placement, libvirt on each host and the source's logs; it
cannot see what nova's services still hold in memory.
"""

import collections
import json
import os
import re
import time

from tests.cloud import jobs
from tests.cloud.services import base
from tests.hypervisor import testbed

COMPUTE_MICROVERSION = '2.80'
PLACEMENT_MICROVERSION = '1.28'
# A log line's level and logger, as oslo.log writes them.
LOG_LINE = re.compile(r'^\S+ \S+ \d+ (?P<level>[A-Z]+) (?P<logger>\S+) ')
LIBVIRTD_LOG = '/var/log/libvirt/libvirtd.log'


def host_run(cloud, host, *cmd):
    """Run ``cmd`` on ``host`` (its network, mount and UTS namespaces)."""
    return base.run(cloud.nsenter(host) + list(cmd))


def link_down(cloud, host, link=testbed.MIGR_IF):
    """Take ``link`` down on ``host``; the function that brings it back.

    Linux drops an interface's static IPv6 addresses when it goes down
    unless ``keep_addr_on_down`` is set, so it is for the fault: the link
    comes back as it was, IPv6 migration address included.
    """
    keep = 'net.ipv6.conf.%s.keep_addr_on_down' % link
    old = host_run(cloud, host, 'sysctl', '-n', keep).strip()
    host_run(cloud, host, 'sysctl', '-qw', '%s=1' % keep)
    host_run(cloud, host, 'ip', 'link', 'set', link, 'down')

    def restore():
        host_run(cloud, host, 'ip', 'link', 'set', link, 'up')
        host_run(cloud, host, 'sysctl', '-qw', '%s=%s' % (keep, old))
    return restore


def tcp_retries(cloud, retries):
    """Both hosts' TCP gives up on a silent peer after ``retries``
    retransmissions (seconds, not the default 15 minutes).
    """
    old = {}
    for host in cloud.testbed.hosts:
        old[host] = host_run(cloud, host, 'sysctl', '-n',
                             'net.ipv4.tcp_retries2').strip()
        host_run(cloud, host, 'sysctl', '-qw',
                 'net.ipv4.tcp_retries2=%d' % retries)

    def restore():
        for host, value in old.items():
            host_run(cloud, host, 'sysctl', '-qw',
                     'net.ipv4.tcp_retries2=%s' % value)
    return restore


def domstate(cloud, host, domain):
    """``state (reason)`` of ``domain`` on ``host``'s libvirt, or None
    when it has no such domain.
    """
    proc = base.subprocess.run(
        cloud.nsenter(host) + ['virsh', '-c', 'qemu:///system', 'domstate',
                               '--reason', domain],
        stdout=base.subprocess.PIPE, stderr=base.subprocess.DEVNULL,
        text=True, timeout=60, env=dict(base.BASE_ENV))
    return proc.stdout.strip() if proc.returncode == 0 else None


def destroy(cloud, host, domain):
    """Destroy and undefine ``domain`` on ``host``, if it is there."""
    for verb in ('destroy', 'undefine'):
        base.subprocess.run(
            cloud.nsenter(host) + ['virsh', '-c', 'qemu:///system', verb,
                                   domain],
            stdout=base.subprocess.DEVNULL, stderr=base.subprocess.DEVNULL,
            timeout=60, env=dict(base.BASE_ENV))


def domains(cloud, host):
    """``{domain name: state}`` of the libvirt on ``host``."""
    out = host_run(cloud, host, 'virsh', '-c', 'qemu:///system', 'list',
                   '--all')
    rows = [line.split(None, 2) for line in out.splitlines()[2:]]
    return {row[1]: row[2].strip() for row in rows if len(row) == 3}


def memory_processed(cloud, host, domain):
    """MiB of memory the running migration job of ``domain`` sent, or -1
    when it has none (yet).
    """
    sent = jobs.figures(jobs.domjobinfo(cloud, host, domain)).get(
        'memory_bytes')
    return -1 if sent is None else sent / jobs.UNITS['MiB']


def wait_streaming(cloud, host, domain, mib, timeout=120):
    """Once the migration of ``domain`` from ``host`` has sent ``mib``
    MiB of memory (the disk copy comes first).
    """
    base.wait_for('%s streamed %s MiB' % (domain, mib),
                  lambda: memory_processed(cloud, host, domain) >= mib,
                  timeout, interval=0.2)


def in_progress(conn, server):
    """The server's migrations still in progress, as nova's API lists
    them (integer ids, which openstacksdk's resources do not keep).
    """
    return conn.compute.get(
        '/servers/%s/migrations' % server.id,
        microversion=COMPUTE_MICROVERSION).json()['migrations']


def abort(conn, server, migration_id):
    """``DELETE /servers/{id}/migrations/{migration_id}``."""
    response = conn.compute.delete(
        '/servers/%s/migrations/%d' % (server.id, migration_id),
        microversion=COMPUTE_MICROVERSION)
    response.raise_for_status()


def force_complete(conn, server, migration_id):
    response = conn.compute.post(
        '/servers/%s/migrations/%d/action' % (server.id, migration_id),
        json={'force_complete': None}, microversion=COMPUTE_MICROVERSION)
    response.raise_for_status()


def last_migration(conn, server):
    """The server's latest migration record, at a microversion that
    gives its uuid (placement's consumer while it runs).
    """
    records = conn.compute.get(
        '/os-migrations?instance_uuid=%s' % server.id,
        microversion=COMPUTE_MICROVERSION).json()['migrations']
    return max(records, key=lambda record: record['id'])


def source_job(cloud, host, domain):
    """What ``host``'s libvirt says of the migration job of ``domain``
    (``Job type`` of ``virsh domjobinfo``, or its error).
    """
    return jobs.job_type(jobs.domjobinfo(cloud, host, domain))


def allocations(conn, consumer):
    """``{resource provider name: resources}`` ``consumer`` holds."""
    placement = conn.placement
    names = {rp['uuid']: rp['name'] for rp in placement.get(
        '/resource_providers',
        microversion=PLACEMENT_MICROVERSION).json()['resource_providers']}
    held = placement.get('/allocations/%s' % consumer,
                         microversion=PLACEMENT_MICROVERSION).json()
    return {names.get(rp, rp): alloc['resources']
            for rp, alloc in held['allocations'].items()}


def delete_allocations(conn, consumer):
    """Remove what ``consumer`` holds in placement (none: nothing)."""
    response = conn.placement.delete('/allocations/%s' % consumer,
                                     microversion=PLACEMENT_MICROVERSION)
    if response.status_code not in (204, 404):
        response.raise_for_status()


class LogMark:
    """What a log file gained since this mark (a file opened afresh on a
    restart is read from its start).
    """

    def __init__(self, path, read=None):
        self.path = path
        self.read = read or self._read
        self.offset = len(self.read())

    def _read(self):
        try:
            with open(self.path, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def new(self):
        text = self.read()
        return text[self.offset:] if len(text) >= self.offset else text


def problems(text):
    """The WARNING and ERROR lines of an oslo.log ``text`` (first line of
    each record), as ``(logger, line)``.
    """
    found = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        if match and match.group('level') in ('WARNING', 'ERROR'):
            found.append((match.group('logger'), line))
    return found


Outcome = collections.namedtuple('Outcome', [
    'status', 'vm_state', 'task_state', 'nova_host', 'running_on',
    'domains', 'source_job', 'migration', 'server_allocations',
    'migration_allocations', 'checksums', 'failure', 'libvirtd_errors',
    'plugin_problems', 'rpc_timeouts'])
Outcome.__doc__ = """What a fault left, as nova, placement, libvirt and
the source's logs say it.

``running_on``: the hosts whose libvirt runs the guest; ``domains``:
``{host: state}`` where libvirt has it at all; ``source_job``: the
source libvirt's migration job of it, once nova is done; ``checksums``:
those the guest wrote since, where it runs; ``failure``: what nova's
source logged as ``Live Migration failure``; ``libvirtd_errors``: the
source libvirtd's error lines meanwhile; ``plugin_problems``: the plugin's
WARNING and ERROR lines in the source's log; ``rpc_timeouts``: its
WARNING and ERROR lines about an RPC reply that never came
(``MessagingTimeout``).
"""

# What two outcomes of the same fault must share to count as the same.
COMPARED = ('status', 'vm_state', 'task_state', 'nova_host', 'running_on',
            'migration', 'server_allocations', 'migration_allocations')


def same(outcome):
    return {name: getattr(outcome, name) for name in COMPARED}


def as_json(outcome):
    return json.dumps(outcome._asdict(), indent=1, sort_keys=True,
                      default=str)


def console_checksums(cloud, host, server):
    """The checksums in the console log of ``server`` on ``host``'s own
    storage (nova's API would read the host nova thinks it is on).
    """
    path = os.path.join(cloud.computes[host.name].state, 'nova',
                        'instances', server.id, 'console.log')
    try:
        with open(path, errors='replace') as f:
            return testbed.parse_checksums(f.read())
    except FileNotFoundError:
        return []


def wait_settled(cloud, server, timeout=60):
    """``{host: domain state}`` once the guest's domain is on one host
    only, or as it is after ``timeout`` seconds (nova removes the
    destination's domain after the source rolled back).
    """
    deadline = time.monotonic() + timeout
    while True:
        where = {}
        for host in cloud.testbed.hosts:
            state = domains(cloud, host).get(server.instance_name)
            if state:
                where[host.name] = state
        if len(where) <= 1 or time.monotonic() > deadline:
            return where
        time.sleep(1)
