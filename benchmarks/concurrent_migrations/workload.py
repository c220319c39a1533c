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
counters), what tbf counted, how busy the machine's CPUs were, and where
the QEMU threads and the services were allowed to run
(:mod:`.cpus`). Then the servers are deleted.
"""

import datetime
import os
import re
import threading
import time

from benchmarks.concurrent_migrations import cpus
from tests.cloud import jobs
from tests.cloud import links
from tests.cloud import migrations

MIGRATION_TIMEOUT = 600
POLL_INTERVAL = 1.0
# seconds between two reads of the QEMU threads' affinity in a batch
AFFINITY_INTERVAL = 0.5

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
    """``{'all' or CPU number as text: (busy, total) jiffies}``."""
    times = {}
    with open('/proc/stat') as f:
        for line in f:
            name, *fields = line.split()
            if not name.startswith('cpu'):
                break
            fields = [int(v) for v in fields]
            idle = fields[3] + fields[4]
            times[name[3:] or 'all'] = (sum(fields) - idle, sum(fields))
    return times


def busy_share(before, after):
    """``{'all' or CPU: busy share}`` between two :func:`cpu_times`."""
    shares = {}
    for cpu, (busy, total) in after.items():
        spent = total - before[cpu][1]
        shares[cpu] = (busy - before[cpu][0]) / spent if spent else None
    return shares


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


class AffinitySampler(threading.Thread):
    """The QEMU threads' affinity, read every :data:`AFFINITY_INTERVAL`
    s while a batch streams (the migration thread lives only then), and
    the services' once at the start.
    """

    def __init__(self, netns_names):
        super().__init__(daemon=True)
        self.netns_names = netns_names
        self.snapshots = [cpus.snapshot(netns_names)]
        self._over = threading.Event()

    def run(self):
        while not self._over.wait(AFFINITY_INTERVAL):
            self.snapshots.append(cpus.snapshot(self.netns_names,
                                                services_too=False))

    def result(self):
        self._over.set()
        self.join()
        return cpus.merge(self.snapshots)


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
            tbf, cpu = links.tbf_counters(tb.hosts), cpu_times()
            requests = [Request(conn, server, destination)
                        for conn, server in zip(self.conns, servers)]
            affinity = AffinitySampler([h.netns for h in tb.hosts])
            with tb.bytes_moved(source) as moved:
                start = time.time()
                affinity.start()
                for request in requests:
                    request.start()
                for request in requests:
                    request.join()
                over = migrations.wait_over(cloud.admin, servers,
                                            destination, MIGRATION_TIMEOUT,
                                            POLL_INTERVAL)
                end = time.time()
            result = {
                'n': n, 'source': source.name,
                'destination': destination.name,
                'idle_window': idle, 'window': (start, end),
                'wall_s': end - start, 'bytes': moved,
                'tbf': links.counted_between(
                    tbf, links.tbf_counters(tb.hosts)),
                'cpu_busy': busy_share(cpu, cpu_times()),
                'affinity': affinity.result(),
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
        job = jobs.figures(jobs.domjobinfo(
            self.cloud, destination, server.instance_name, completed=True))
        try:
            record = migrations.last_record(self.cloud.admin, server)
        except TimeoutError:
            [record] = migrations.records(self.cloud.admin, server)[-1:] \
                or [None]
        return {
            'server': server.id, 'error': request.error,
            'status': server.status, 'host': server.compute_host,
            'migration': record.status if record else None,
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
