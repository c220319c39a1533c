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

"""The run order: the cloud, the phases, the interleaved rounds.

One cloud of the real-cloud tier (``tests.cloud.cloud.Cloud``, in the
work directory and namespace prefix its environment variables say) for
the whole run. Two phases: ``same``, both links at ``--rate``; ``fast``,
the migration link at ``--fast-factor`` times that. In each phase,
``rounds`` rounds; each round runs every N once with the plugin and once
stock, the mode that goes first alternating from round to round (ABBA),
so that slow drift of the machine's other load weighs on both. Switching
modes restarts both nova-computes with the other spec, as an operator
would, and waits for them to report up; one migration that is not
measured follows each restart.
"""

import collections
import json
import os
import platform
import subprocess
import sys
import time

from benchmarks.concurrent_migrations import probes as probes_
from benchmarks.concurrent_migrations import shaping
from benchmarks.concurrent_migrations import workload
from tests.cloud import cloud as cloud_
from tests.cloud import guests as guests_
from tests.cloud.services import base
from tests.cloud.services import compute
from tests.hypervisor import testbed

STARTED = time.monotonic()

# ``link``: the link the mode's streams must cross.
Mode = collections.namedtuple('Mode', 'name label link')
PLUGIN = Mode('plugin', 'plugin, my_live_migration_ip set', testbed.MIGR_IF)
STOCK = Mode('stock', 'option unset (stock)', testbed.MGMT_IF)
MODES = (PLUGIN, STOCK)

# nova waits live_migration_downtime_delay x the instance's GiB (at least
# 2) per step before it raises the allowed downtime, starting at 1/steps
# of live_migration_downtime (500 ms): with its defaults, 150 s at 50 ms,
# in which four guests sharing 200 Mbit/s and keeping 1 MiB dirty never
# converge. The smallest steps and delay nova accepts, in both modes.
DOWNTIME_OPTIONS = (('live_migration_downtime_steps', '3'),
                    ('live_migration_downtime_delay', '3'))


def progress(message):
    print('[%6.1fs] %s' % (time.monotonic() - STARTED, message),
          file=sys.stderr, flush=True)


def spec(mode, host):
    """The nova-compute spec of ``mode`` on ``host``: the plugin installed
    either way; stock leaves ``my_live_migration_ip`` unset.
    """
    return compute.Spec(
        True, host.migration_ipv4 if mode is PLUGIN else None,
        libvirt=DOWNTIME_OPTIONS)


def allow_concurrent(cloud, count):
    """``[DEFAULT] max_concurrent_live_migrations`` on both computes, and
    a restart: nova's default, 1, runs one outgoing migration at a time
    per host and queues the others.
    """
    for node in cloud.computes.values():
        base.iniset(node.conf, 'DEFAULT', 'max_concurrent_live_migrations',
                    str(count))
    compute.restart_all([(node, node.spec)
                         for node in cloud.computes.values()])


def set_mode(cloud, mode):
    """Run the computes as ``mode`` says; whether they restarted."""
    changes = [(node, spec(mode, node.host))
               for node in cloud.computes.values()]
    changes = [(node, s) for node, s in changes if node.spec != s]
    if changes:
        compute.restart_all(changes)
    return bool(changes)


def schedule(rounds, ns):
    """``[(round, mode, n)]`` in the order they run."""
    order = []
    for r in range(rounds):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            order.extend((r, mode, n) for n in ns)
    return order


def idle(seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def versions(cloud):
    host = cloud.testbed.hosts[0]
    out = subprocess.run(['virsh', '-c', cloud.testbed.uri(host), 'version',
                          '--daemon'], stdout=subprocess.PIPE,
                         text=True).stdout
    found = dict(line.split(':', 1) for line in out.splitlines()
                 if ':' in line)
    return {
        'nova': cloud.computes[host.name].nova_version(),
        'libvirt': found.get('Running against daemon', '?').split()[-1],
        'qemu': found.get('Running hypervisor', '?').split()[-1],
    }


def run_phase(cloud, probes, batch, args, name, migr_mbit, ns, rounds,
              phase, save):
    """One phase's batches and idle windows, into ``phase``; ``save()``
    after each batch.
    """
    a, b = cloud.testbed.hosts
    shaping.shape(cloud.testbed, args.rate, migr_mbit)
    progress('phase %s: management %g Mbit/s, migration %g Mbit/s; idle '
             '%d s' % (name, args.rate, migr_mbit, args.idle))
    phase.update({'mgmt_mbit': args.rate, 'migr_mbit': migr_mbit,
                  'idle_windows': [], 'batches': []})
    start_idle = idle(args.idle)
    phase['idle_windows'].append(start_idle)
    phase['idle_probes'] = [probes.samples(start_idle)]
    for r, mode, n in schedule(rounds, ns):
        if set_mode(cloud, mode) or not phase.get('warm'):
            # A nova-compute's first migration after its start is slower
            # (connections, caches): one that is not measured, so that
            # neither mode pays it more often than the other.
            progress('warm-up migration, %s' % mode.label)
            batch.run('%s-warm-up' % name, 1, a, b)
            phase['warm'] = True
        progress('%s round %d, %s: %d at once' % (name, r + 1, mode.label,
                                                  n))
        result = batch.run('%s-%s-r%d-n%d' % (name, mode.name, r, n), n,
                           a, b)
        result.update(round=r, mode=mode.name)
        phase['batches'].append(result)
        phase['idle_windows'].append(result['idle_window'])
        phase['idle_probes'].append(result.pop('idle_probes'))
        done = [m for m in result['migrations'] if m['to_completed_s']]
        progress('  %.1f s; rpc p99 %s ms; %d/%d completed' % (
            result['wall_s'], _p99(result['probes']['rpc']), len(done), n))
        save()
    end_idle = idle(args.idle)
    phase['idle_windows'].append(end_idle)
    phase['idle_probes'].append(probes.samples(end_idle))


def _p99(samples):
    samples = sorted(samples)
    if not samples:
        return '-'
    return '%.1f' % (1000 * samples[int(0.99 * (len(samples) - 1))])


def run(args, raw):
    """The whole benchmark; its raw results, also saved to ``raw`` after
    each batch (so that an interrupted run can still be reported).
    """
    cloud = cloud_.Cloud(specs={
        h.name: spec(PLUGIN, h)
        for h in testbed.hosts(cloud_.NETNS_PREFIX)})
    progress('bringing the cloud up in %s (namespaces %s*)'
             % (cloud.work_dir, cloud.netns_prefix))
    results = {'phases': {}}
    with cloud:
        cloud_up = time.monotonic() - STARTED
        progress('cloud up in %.0f s' % cloud_up)
        results['meta'] = meta(cloud, args, cloud_up)
        allow_concurrent(cloud, max(args.n + args.fast_n))
        guests = guests_.Guests(cloud, memory_mb=args.memory,
                                dirty_mib=args.dirty)
        guests.images()
        conns = [cloud.connect() for _ in range(max(args.n + args.fast_n))]
        with probes_.Probes(cloud) as probes:
            progress('probes up')
            batch = workload.Batch(cloud, guests, probes, conns,
                                   args.idle_before)

            def save():
                results['meta'].update(
                    load_average=os.getloadavg(),
                    run_s=time.monotonic() - STARTED)
                save_raw(results, raw)
            for name, migr_mbit, ns, rounds in (
                    ('same', args.rate, args.n, args.rounds),
                    ('fast', args.rate * args.fast_factor, args.fast_n,
                     args.fast_rounds)):
                if migr_mbit:
                    results['phases'][name] = {}
                    run_phase(cloud, probes, batch, args, name, migr_mbit,
                              ns, rounds, results['phases'][name], save)
            save()
    return results


def meta(cloud, args, cloud_up):
    """What the report says of the setting."""
    cc = shaping.congestion_control(cloud.testbed, args.congestion_control)
    return dict(
        versions(cloud), kernel=platform.release(),
        python=platform.python_version(), cpus=os.cpu_count(),
        cc='/'.join(cc),
        rate_mbit=args.rate, fast_factor=args.fast_factor,
        tbf_burst=shaping.TBF_BURST, tbf_latency=shaping.TBF_LATENCY,
        memory_mb=args.memory, dirty_mib=args.dirty, n=list(args.n),
        fast_n=list(args.fast_n), rounds=args.rounds,
        fast_rounds=args.fast_rounds, idle_s=args.idle,
        idle_before_s=args.idle_before,
        probe_intervals_s=probes_.INTERVALS,
        downtime_options=dict(DOWNTIME_OPTIONS),
        max_concurrent_live_migrations=max(args.n + args.fast_n),
        quick=args.quick, cloud_up_s=cloud_up,
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))


def save_raw(results, path):
    with open(path, 'w') as f:
        json.dump(results, f)
