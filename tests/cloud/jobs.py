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

"""libvirt's migration jobs on the cloud's hosts, as ``virsh domjobinfo``
prints them.

The running job is on the source (``Job type: Unbounded`` while it
streams, ``None`` when there is none); the completed job's figures
(``--completed``: time, downtime, bytes) are on both hosts once it is
over, until the domain goes.
"""

from tests.cloud.services import base

UNITS = {'ms': 1e-3, 's': 1, 'B': 1, 'KiB': 2 ** 10, 'MiB': 2 ** 20,
         'GiB': 2 ** 30}
# The lines read, and their keys: seconds, bytes, or a count.
FIGURES = {'Time elapsed': 'elapsed_s', 'Total downtime': 'downtime_s',
           'Data processed': 'data_bytes',
           'Memory processed': 'memory_bytes', 'Iteration': 'iterations'}


def domjobinfo(cloud, host, domain, completed=False):
    """What ``virsh domjobinfo`` says on ``host`` of ``domain``'s job (its
    error, when it fails), as text.
    """
    argv = ['virsh', '-c', 'qemu:///system', 'domjobinfo', domain]
    if completed:
        argv.insert(4, '--completed')
    proc = base.subprocess.run(
        cloud.nsenter(host) + argv, stdout=base.subprocess.PIPE,
        stderr=base.subprocess.STDOUT, text=True, timeout=60,
        env=dict(base.BASE_ENV))
    return proc.stdout.strip()


def figures(text):
    """The figures of :data:`FIGURES` in a :func:`domjobinfo` text, in
    seconds and bytes (those it lacks are left out).
    """
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() not in FIGURES:
            continue
        number, _, unit = value.strip().partition(' ')
        try:
            found[FIGURES[key.strip()]] = (float(number)
                                           * UNITS.get(unit.strip(), 1))
        except ValueError:
            pass
    return found


def job_type(text):
    """The first line of a :func:`domjobinfo` text (``Job type: ...``, or
    the error).
    """
    return text.splitlines()[0] if text else ''
