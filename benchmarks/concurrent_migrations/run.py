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
the whole run, and up to three phases (:func:`phases`):

``pinned``
    CPUs reserved as operators reserve them (:mod:`.cpus`): the host's
    services and the probes on the first CPU, the guests on the others
    through nova's ``[compute] cpu_shared_set``; both links at
    ``--rate``.
``pinned-fast``
    the same, the migration link at ``--fast-factor`` times the rate.
``unpinned``
    every process on every CPU, nova's default, both links at
    ``--rate``: the benchmark as it ran before CPUs were reserved.

In each phase, ``rounds`` rounds; each round runs every N once with the
plugin and once stock, the mode that goes first alternating from round
to round (ABBA), so that slow drift of the machine's other load weighs on
both. Switching modes or phases restarts both nova-computes with the
other spec, as an operator would, and waits for them to report up; one
migration that is not measured follows each restart. The migrations go
from compute-b to compute-a, the controller (:mod:`.probes` says why).
"""

import collections
import json
import os
import platform
import subprocess
import sys
import time

from benchmarks.concurrent_migrations import cpus
from benchmarks.concurrent_migrations import probes as probes_
from benchmarks.concurrent_migrations import workload
from tests.cloud import cloud as cloud_
from tests.cloud import guests as guests_
from tests.cloud import links
from tests.cloud.services import compute
from tests.hypervisor import testbed

STARTED = time.monotonic()

# ``link``: the link the mode's streams must cross.
Mode = collections.namedtuple('Mode', 'name label link')
PLUGIN = Mode('plugin', 'plugin, my_live_migration_ip set', testbed.MIGR_IF)
STOCK = Mode('stock', 'option unset (stock)', testbed.MGMT_IF)
MODES = (PLUGIN, STOCK)

Phase = collections.namedtuple('Phase', 'name pinned migr_factor ns rounds')

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


def phases(args):
    """The phases ``args`` ask for, in the order they run."""
    wanted = [Phase('pinned', True, 1, args.n, args.rounds)]
    if args.fast_factor and args.fast_rounds:
        wanted.append(Phase('pinned-fast', True, args.fast_factor,
                            args.fast_n, args.fast_rounds))
    if args.unpinned_rounds:
        wanted.append(Phase('unpinned', False, 1, args.n,
                            args.unpinned_rounds))
    return wanted


def concurrent(args):
    """The largest N of the run: ``[DEFAULT]
    max_concurrent_live_migrations`` (nova's default, 1, would queue the
    others).
    """
    return max(args.n + args.fast_n)


def spec(mode, host, pinned, most):
    """The nova-compute spec of ``mode`` on ``host``: the plugin installed
    either way; stock leaves ``my_live_migration_ip`` unset. ``most``
    migrations at once, the heartbeat probe's ``report_interval``, and
    with ``pinned`` the guests on :data:`cpus.GUEST_CPUS`.
    """
    lines = (('DEFAULT', 'max_concurrent_live_migrations', str(most)),
             ('DEFAULT', 'report_interval', str(probes_.REPORT_INTERVAL)))
    if pinned:
        lines += (('compute', 'cpu_shared_set',
                   cpus.cpu_list(cpus.GUEST_CPUS)),)
    return compute.Spec(
        plugin=True,
        migration_ip=host.migration_ipv4 if mode is PLUGIN else None,
        libvirt=DOWNTIME_OPTIONS, nova_conf=lines)


def set_mode(cloud, mode, pinned, most):
    """Run the computes as ``mode`` says; whether they restarted."""
    changes = [(node, spec(mode, node.host, pinned, most))
               for node in cloud.computes.values()]
    changes = [(node, s) for node, s in changes if node.spec != s]
    if changes:
        compute.restart_all(changes)
    return bool(changes)


def reserve_cpus(cloud, pinned):
    """The services (and this process, whose children inherit it) on the
    first CPU when ``pinned``, else on all; what was set, for the report.
    """
    netns = [h.netns for h in cloud.testbed.hosts]
    want = cpus.SERVICE_CPUS if pinned else cpus.ALL_CPUS
    return {'pinned': pinned, 'service_cpus': cpus.cpu_list(want),
            'guest_cpus': cpus.cpu_list(cpus.GUEST_CPUS if pinned
                                        else cpus.ALL_CPUS),
            'threads_set': cpus.pin_services(netns, want)}


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


def shape(cloud, mgmt_mbit, migr_mbit):
    """tbf on the egress of both ends of both links, at these rates."""
    for host in cloud.testbed.hosts:
        links.shape(host, testbed.MGMT_IF, links.mbit(mgmt_mbit))
        links.shape(host, testbed.MIGR_IF, links.mbit(migr_mbit))


def run_phase(cloud, probes, batch, args, plan, phase, save):
    """One phase's batches and idle windows, into ``phase``; ``save()``
    after each batch.
    """
    a, b = cloud.testbed.hosts
    source, destination = b, a
    migr_mbit = args.rate * plan.migr_factor
    most = concurrent(args)
    phase.update(reserve_cpus(cloud, plan.pinned))
    shape(cloud, args.rate, migr_mbit)
    phase.update({'mgmt_mbit': args.rate, 'migr_mbit': migr_mbit,
                  'idle_windows': [], 'idle_probes': [], 'batches': []})
    warm = False
    for r, mode, n in schedule(plan.rounds, plan.ns):
        if set_mode(cloud, mode, plan.pinned, most) or not warm:
            # A nova-compute's first migration after its start is slower
            # (connections, caches): one that is not measured, so that
            # neither mode pays it more often than the other.
            progress('warm-up migration, %s' % mode.label)
            batch.run('%s-warm-up' % plan.name, 1, source, destination)
        if not warm:
            phase['affinity_start'] = cpus.snapshot(
                [h.netns for h in cloud.testbed.hosts])
            progress('phase %s: CPUs for services %s, guests %s; '
                     'management %g Mbit/s, migration %g Mbit/s; idle %d s'
                     % (plan.name, phase['service_cpus'],
                        phase['guest_cpus'], args.rate, migr_mbit,
                        args.idle))
            window = idle(args.idle)
            phase['idle_windows'].append(window)
            phase['idle_probes'].append(probes.samples(window))
            warm = True
        progress('%s round %d, %s: %d at once' % (plan.name, r + 1,
                                                  mode.label, n))
        result = batch.run('%s-%s-r%d-n%d' % (plan.name, mode.name, r, n),
                           n, source, destination)
        result.update(round=r, mode=mode.name)
        phase['batches'].append(result)
        phase['idle_windows'].append(result['idle_window'])
        phase['idle_probes'].append(result.pop('idle_probes'))
        done = [m for m in result['migrations'] if m['to_completed_s']]
        progress('  %.1f s; rpc p99 %s ms, heartbeat late p99 %s ms; '
                 '%d/%d completed' % (
                     result['wall_s'], _p99(result['probes']['rpc']),
                     _p99(result['probes']['heartbeat']), len(done), n))
        save()
    window = idle(args.idle)
    phase['idle_windows'].append(window)
    phase['idle_probes'].append(probes.samples(window))


def _p99(samples):
    samples = sorted(samples)
    if not samples:
        return '-'
    return '%.1f' % (1000 * samples[int(0.99 * (len(samples) - 1))])


def run(args, raw):
    """The whole benchmark; its raw results, also saved to ``raw`` after
    each batch (so that an interrupted run can still be reported).
    """
    plans = phases(args)
    most = concurrent(args)
    cloud = cloud_.Cloud(specs={
        h.name: spec(PLUGIN, h, plans[0].pinned, most)
        for h in testbed.hosts(cloud_.NETNS_PREFIX)})
    progress('bringing the cloud up in %s (namespaces %s*)'
             % (cloud.work_dir, cloud.netns_prefix))
    results = {'phases': {}}
    with cloud:
        cloud_up = time.monotonic() - STARTED
        progress('cloud up in %.0f s' % cloud_up)
        results['meta'] = meta(cloud, args, cloud_up)
        guests = guests_.Guests(cloud, memory_mb=args.memory,
                                dirty_mib=args.dirty)
        guests.images()
        conns = [cloud.connect() for _ in range(most)]
        try:
            with probes_.Probes(cloud) as probes:
                progress('probes up')
                batch = workload.Batch(cloud, guests, probes, conns,
                                       args.idle_before)

                def save():
                    results['meta'].update(
                        load_average=os.getloadavg(),
                        run_s=time.monotonic() - STARTED)
                    save_raw(results, raw)
                for plan in plans:
                    results['phases'][plan.name] = {}
                    run_phase(cloud, probes, batch, args, plan,
                              results['phases'][plan.name], save)
                save()
        finally:
            # The cloud's clean-up, and whatever runs after, on every CPU.
            cpus.pin([os.getpid()], cpus.ALL_CPUS)
    return results


def meta(cloud, args, cloud_up):
    """What the report says of the setting."""
    cc = links.congestion_control(cloud.testbed.hosts,
                                  args.congestion_control)
    return dict(
        versions(cloud), kernel=platform.release(),
        python=platform.python_version(), cpus=os.cpu_count(),
        cc='/'.join(cc),
        rate_mbit=args.rate, fast_factor=args.fast_factor,
        tbf_burst=links.BURST, tbf_latency=links.LATENCY,
        memory_mb=args.memory, dirty_mib=args.dirty, n=list(args.n),
        fast_n=list(args.fast_n), rounds=args.rounds,
        fast_rounds=args.fast_rounds, unpinned_rounds=args.unpinned_rounds,
        idle_s=args.idle, idle_before_s=args.idle_before,
        probe_intervals_s=probes_.INTERVALS,
        report_interval_s=probes_.REPORT_INTERVAL,
        beat_poll_s=probes_.BEAT_POLL,
        downtime_options=dict(DOWNTIME_OPTIONS),
        max_concurrent_live_migrations=concurrent(args),
        quick=args.quick, cloud_up_s=cloud_up,
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))


def save_raw(results, path):
    with open(path, 'w') as f:
        json.dump(results, f)
