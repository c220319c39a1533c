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

"""CPUs reserved for the host's services, as operators reserve them, and
the affinity the run got.

Operators keep guests off the cores the host's services need: nova's
``[compute] cpu_shared_set`` gives unpinned guests the CPUs they may run
on, and libvirt sets every thread of their QEMU (vCPUs, the emulator,
the migration thread it starts later) to those CPUs; systemd's
``CPUAffinity`` or a cgroup cpuset keeps the services on the others. Here
the services are the processes in the cloud's network namespaces that are
not QEMU (MariaDB, RabbitMQ, the API services, conductor, scheduler,
nova-compute, libvirtd and the probes), and this process: each of their
threads gets :data:`SERVICE_CPUS` with ``sched_setaffinity``, as
systemd's ``CPUAffinity`` does at a service's start, and whatever they
start later inherits it. The guests get :data:`GUEST_CPUS` through
``cpu_shared_set``.

Nothing here trusts that it worked: :func:`snapshot` reads each thread's
``Cpus_allowed_list`` (with the cloud tier's :mod:`tests.cloud.affinity`),
and :func:`violations` says which thread runs where it should not.
"""

import os
import re

from tests.cloud import affinity

CPUS = sorted(os.sched_getaffinity(0))
# The first CPU for the host's services; the others for the guests.
SERVICE_CPUS = frozenset(CPUS[:1])
GUEST_CPUS = frozenset(CPUS[1:])
ALL_CPUS = frozenset(CPUS)
# The thread QEMU streams a live migration from.
MIGRATION_THREAD = 'live_migration'

cpu_list = affinity.cpu_list
cpu_set = affinity.cpu_set


def pin(pids, cpus):
    """Every thread of ``pids`` on ``cpus``; how many threads."""
    count = 0
    for pid in pids:
        try:
            tids = os.listdir('/proc/%d/task' % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
                count += 1
            except (ProcessLookupError, PermissionError):
                pass
    return count


def pin_services(netns_names, cpus):
    """The services in these namespaces, and this process, on ``cpus``;
    how many threads were set.
    """
    services = [pid for pid, comm in affinity.processes(netns_names).items()
                if not affinity.is_qemu(comm)]
    return pin(services + [os.getpid()], cpus)


def snapshot(netns_names, services_too=True):
    """Where every thread of the cloud may run: ``{'services': {cpu list:
    threads}, 'qemu': {thread name: [cpu lists]}, 'processes': count}``,
    this process counted among the services (QEMU's alone, and no
    services, without ``services_too``).
    """
    procs = affinity.processes(netns_names)
    procs.setdefault(os.getpid(), 'benchmark')
    services, qemu = {}, {}
    for pid, comm in procs.items():
        qemu_ = affinity.is_qemu(comm)
        if not (services_too or qemu_):
            continue
        for name, cpus in affinity.threads(pid).values():
            if qemu_:
                qemu.setdefault(_kind(name), set()).add(cpus)
            else:
                services[cpus] = services.get(cpus, 0) + 1
    return {'services': services,
            'qemu': {name: sorted(lists) for name, lists in qemu.items()},
            'processes': len(procs)}


def _kind(name):
    """A QEMU thread's name without its numbers (``CPU 0/TCG``: ``CPU
    n/TCG``), so that threads of one kind pool.
    """
    return re.sub(r'\b\d+\b', 'n', name)


def merge(snapshots):
    """One snapshot of several: each thread kind with every list seen,
    the most service threads any snapshot saw on each list.
    """
    services, qemu, count = {}, {}, 0
    for snap in snapshots:
        for cpus, n in snap['services'].items():
            services[cpus] = max(services.get(cpus, 0), n)
        for name, lists in snap['qemu'].items():
            qemu.setdefault(name, set()).update(lists)
        count = max(count, snap['processes'])
    return {'services': services,
            'qemu': {name: sorted(lists) for name, lists in qemu.items()},
            'processes': count}


def violations(snap, service_cpus, guest_cpus):
    """What in ``snap`` runs outside the CPUs it was given, as lines."""
    problems = []
    want = cpu_list(service_cpus)
    for cpus, count in sorted(snap['services'].items()):
        if cpus != want:
            problems.append('%d service threads may run on %s, not only %s'
                            % (count, cpus, want))
    want = cpu_list(guest_cpus)
    for name, lists in sorted(snap['qemu'].items()):
        for cpus in lists:
            if cpus != want:
                problems.append('QEMU thread %r may run on %s, not only %s'
                                % (name, cpus, want))
    if not snap['qemu']:
        problems.append('no QEMU thread was seen')
    return problems
