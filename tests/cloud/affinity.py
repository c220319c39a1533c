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

"""Which CPUs the cloud's processes may run on, read from ``/proc``.

The hosts' processes are the ones in their network namespaces (kernel
threads are in none of them). A guest is a QEMU process; libvirt starts
it with ``-name guest=<domain>,debug-threads=on``, so its threads carry
names (``CPU 0/TCG``, ``live_migration``) and its command line the
domain's name.
"""

import os

QEMU = 'qemu-system'


def cpu_list(cpus):
    """``cpus`` the way the kernel writes a CPU list (``0-1``, ``1``)."""
    cpus = sorted(cpus)
    ranges, start = [], None
    for i, cpu in enumerate(cpus):
        if start is None:
            start = cpu
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            ranges.append(str(start) if start == cpu
                          else '%d-%d' % (start, cpu))
            start = None
    return ','.join(ranges)


def cpu_set(text):
    """The CPUs of a kernel CPU list (``0-1,3``)."""
    found = set()
    for part in text.split(','):
        low, _, high = part.partition('-')
        found.update(range(int(low), int(high or low) + 1))
    return found


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode(errors='replace')
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def processes(netns_names):
    """``{pid: comm}`` of the processes in these network namespaces."""
    wanted = {'net:[%d]' % os.stat(os.path.join('/run/netns', n)).st_ino
              for n in netns_names}
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            if os.readlink('/proc/%s/ns/net' % entry) not in wanted:
                continue
        except OSError:
            continue
        comm = _read('/proc/%s/comm' % entry)
        if comm is not None:
            found[int(entry)] = comm.strip()
    return found


def is_qemu(comm):
    return comm.startswith(QEMU)


def threads(pid):
    """``{tid: (thread name, Cpus_allowed_list)}`` of ``pid``."""
    found = {}
    try:
        tids = os.listdir('/proc/%d/task' % pid)
    except OSError:
        return found
    for tid in tids:
        status = _read('/proc/%d/task/%s/status' % (pid, tid))
        if status is None:
            continue
        fields = dict(line.split(':\t', 1) for line in status.splitlines()
                      if ':\t' in line)
        found[int(tid)] = (fields.get('Name', '?').strip(),
                           fields.get('Cpus_allowed_list', '?').strip())
    return found


def guest_threads(host, domain):
    """``{thread name: Cpus_allowed_list}`` of the QEMU that runs
    ``domain`` on ``host`` ({} when none does).
    """
    for pid, comm in processes([host.netns]).items():
        if not is_qemu(comm):
            continue
        argv = (_read('/proc/%d/cmdline' % pid) or '').split('\0')
        if any(arg.startswith('guest=%s,' % domain) or
               arg == 'guest=%s' % domain for arg in argv):
            return {name: cpus for name, cpus in threads(pid).values()}
    return {}
