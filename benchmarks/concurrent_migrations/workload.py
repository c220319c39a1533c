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

"""The workload: N servers live-migrated at once through nova's API.

A batch boots N servers of the dirtying noise guest on the source (all
asked for at once), waits an idle window with them up, then asks nova's
API for N live migrations to the destination, one thread and one
openstacksdk connection per server so that the requests go out together,
and polls the servers (one connection, once a second) until each is on
the destination with no task state, or in ERROR. It then reads, for each
migration:

- the times the source nova-compute logged ``About to invoke the migrate
  API`` (right before libvirt's ``migrateToURI3``) and ``Migration
  operation has completed`` (libvirt's job is over), from its log at
  DEBUG, against the ``time.time()`` of the API request: the control path
  as an operator sees it, with nothing patched;
- the destination's completed-job statistics (``virsh domjobinfo
  --completed``): downtime, bytes, time;
- nova's migration record's status;

and, for the batch, the bytes on each of the source's links (the kernel's
counters), what tbf counted, and how busy the machine's CPUs were. Then
the servers are deleted.
"""

import datetime
import os
import re
import subprocess
import threading
import time

from benchmarks.concurrent_migrations import shaping

MIGRATION_TIMEOUT = 600
POLL_INTERVAL = 1.0

EVENTS = {'About to invoke the migrate API': 'uri3',
          'Migration operation has completed': 'completed',
          'Migration operation has aborted': 'aborted'}
LOG_LINE = re.compile(
    r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \d+ \w+ \S+ \[[^\]]*\] '
    r'\[instance: ([0-9a-f-]{36})\] (%s)' % '|'.join(EVENTS))


def log_events(path, offset=0):
    """``{instance uuid: {'uri3'|'completed'|'aborted': time.time()}}``
    from a nova-compute log, from byte ``offset`` on (its local times).
    """
    events = {}
    with open(path, errors='replace') as f:
        f.seek(offset)
        for line in f:
            match = LOG_LINE.match(line)
            if match:
                stamp, uuid, what = match.groups()
                when = datetime.datetime.strptime(
                    stamp, '%Y-%m-%d %H:%M:%S.%f').timestamp()
                events.setdefault(uuid, {})[EVENTS[what]] = when
    return events


def cpu_times():
    """(busy, total) jiffies of the whole machine."""
    with open('/proc/stat') as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_share(before, after):
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else None


JOB_UNITS = {'ms': 1e-3, 's': 1, 'B': 1, 'KiB': 2 ** 10, 'MiB': 2 ** 20,
             'GiB': 2 ** 30}
JOB_KEYS = {'Time elapsed': 'elapsed_s', 'Total downtime': 'downtime_s',
            'Data processed': 'data_bytes', 'Memory processed':
            'memory_bytes', 'Iteration': 'iterations'}


def completed_job(cloud, host, domain):
    """The completed migration job's figures on ``host`` (``virsh
    domjobinfo --completed``), in seconds and bytes; {} if libvirt has
    none.
    """
    proc = subprocess.run(
        ['virsh', '-c', cloud.testbed.uri(host), 'domjobinfo', '--completed',
         domain], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=60)
    job = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(':')
        if key.strip() in JOB_KEYS:
            number, _, unit = value.strip().partition(' ')
            try:
                job[JOB_KEYS[key.strip()]] = (
                    float(number) * JOB_UNITS.get(unit.strip(), 1))
            except ValueError:
                pass
    return job


class Request(threading.Thread):
    """One live-migration request through nova's API."""

    def __init__(self, conn, server, destination):
        super().__init__(daemon=True)
        self.conn = conn
        self.server = server
        self.destination = destination
        self.sent = None
        self.error = None

    def run(self):
        try:
            self.sent = time.time()
            self.conn.compute.live_migrate_server(
                self.server, host=self.destination.name,
                block_migration='auto')
        except Exception as exc:
            self.error = 'request failed: %s' % exc


def wait_all(conn, servers, destination, timeout=MIGRATION_TIMEOUT):
    """``{server id: (time.time() seen over, server)}`` once every server
    is on ``destination`` with no task state, or in ERROR.
    """
    done = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(servers):
        if time.monotonic() > deadline:
            raise RuntimeError('migrations not over after %d s: %s' % (
                timeout, [s.id for s in servers if s.id not in done]))
        for server in servers:
            if server.id in done:
                continue
            server = conn.compute.get_server(server)
            if server.task_state is None and (
                    server.compute_host == destination.name
                    or server.status == 'ERROR'):
                done[server.id] = (time.time(), server)
        time.sleep(POLL_INTERVAL)
    return done


def migration_status(conn, server):
    records = sorted(conn.compute.migrations(instance_uuid=server.id),
                     key=lambda m: m.created_at)
    return records[-1].status if records else None


class Batch:
    """N servers of ``guests`` live-migrated at once, ``source`` to
    ``destination``; ``conns``: at least N openstacksdk connections.
    """

    def __init__(self, cloud, guests, probes, conns, idle_s):
        self.cloud = cloud
        self.guests = guests
        self.probes = probes
        self.conns = conns
        self.idle_s = idle_s

    def run(self, name, n, source, destination):
        """What the batch measured, as a dict of plain data."""
        cloud = self.cloud
        tb = cloud.testbed
        booted = self.guests.boot_many(
            ['%s-%d' % (name, i) for i in range(n)], source)
        servers = [server for server, _ in booted]
        try:
            idle = (time.time(), time.time() + self.idle_s)
            time.sleep(self.idle_s)
            node = cloud.computes[source.name]
            offset = os.path.getsize(node.log)
            tbf, cpu = shaping.qdisc_stats(tb), cpu_times()
            requests = [Request(conn, server, destination)
                        for conn, server in zip(self.conns, servers)]
            with tb.bytes_moved(source) as moved:
                start = time.time()
                for request in requests:
                    request.start()
                for request in requests:
                    request.join()
                over = wait_all(cloud.admin, servers, destination)
                end = time.time()
            result = {
                'n': n, 'source': source.name,
                'destination': destination.name,
                'idle_window': idle, 'window': (start, end),
                'wall_s': end - start, 'bytes': moved,
                'tbf': shaping.delta(tbf, shaping.qdisc_stats(tb)),
                'cpu_busy': busy_share(cpu, cpu_times()),
                'probes': self.probes.samples((start, end)),
                'idle_probes': self.probes.samples(idle),
            }
            events = log_events(node.log, offset)
            result['migrations'] = [
                self._migration(request, over, events, destination)
                for request in requests]
        finally:
            self._delete(servers)
        return result

    def _migration(self, request, over, events, destination):
        seen, server = over.get(request.server.id, (None, request.server))
        logged = events.get(server.id, {})
        sent = request.sent
        job = completed_job(self.cloud, destination, server.instance_name)
        return {
            'server': server.id, 'error': request.error,
            'status': server.status, 'host': server.compute_host,
            'migration': migration_status(self.cloud.admin, server),
            'sent': sent, 'seen_over': seen,
            'to_uri3_s': logged['uri3'] - sent if 'uri3' in logged
            else None,
            'to_completed_s': (logged['completed'] - sent
                               if 'completed' in logged else None),
            'uri3': logged.get('uri3'), 'completed': logged.get('completed'),
            'aborted': 'aborted' in logged,
            'job': job,
        }

    def _delete(self, servers):
        compute = self.cloud.admin.compute
        for server in servers:
            compute.delete_server(server, ignore_missing=True)
        for server in servers:
            compute.wait_for_delete(server, wait=120)
