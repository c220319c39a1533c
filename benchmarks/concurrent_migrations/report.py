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

"""From the raw results to figures and verdicts (:mod:`.render` shows
them).

Latencies pool the samples of every round of a mode and N; the idle
baseline pools every idle window of the phase (its start and end, and the
seconds before each batch with its servers up), so that other load on the
machine weighs on it as on the batches. Ratios of plugin to stock pair
the two modes of one round, whose batches ran minutes apart, never
figures of two runs.

A verdict says "met" only where the figure it names was measured and
meets its target; a target at an N the run did not reach is "not
measured", and a phase whose CPU reservation did not hold gives none.
"""

import statistics

from benchmarks.concurrent_migrations import cpus
from benchmarks.concurrent_migrations import probes as probes_
from tests.hypervisor import test_planes
from tests.hypervisor import testbed

NAME = 'concurrent_migrations'
MODES = ('plugin', 'stock')
LABELS = {'plugin': 'plugin, my_live_migration_ip set',
          'stock': 'option unset (stock)'}
LINKS = {'plugin': testbed.MIGR_IF, 'stock': testbed.MGMT_IF}
PROBE_LABELS = {'rpc': 'oslo.messaging RPC', 'api': 'nova GET /servers/detail',
                'placement': 'placement GET /resource_providers',
                'heartbeat': 'nova-compute heartbeat, late by',
                'echo': 'TCP echo', 'echo-rt': 'TCP echo, SCHED_FIFO'}
# nova's own control plane: the probes the targets are about.
NOVA_PROBES = ('rpc', 'api', 'placement', 'heartbeat')

# Targets (issues 20 and 29)
P99_TARGET = 1.5
TARGET_N = 4
SHARE_TARGET = 0.90
CONTROL_PATH_TARGET = 1.02


def latency(samples):
    """p50, p99 and max (ms) of samples in seconds."""
    ms = sorted(r * 1000 for r in samples)
    if len(ms) < 2:
        return {'samples': len(ms)}
    cuts = statistics.quantiles(ms, n=100, method='inclusive')
    return {'samples': len(ms), 'p50': cuts[49], 'p99': cuts[98],
            'max': ms[-1]}


def spread(values):
    """Median, min and max of ``values`` (None when empty)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {'median': statistics.median(values), 'min': min(values),
            'max': max(values), 'count': len(values)}


def _pooled(sample_dicts):
    pooled = {name: [] for name in probes_.NAMES}
    for samples in sample_dicts:
        for name, rtts in samples.items():
            pooled.setdefault(name, []).extend(rtts)
    return pooled


def streaming_seconds(intervals):
    """The length of the union of ``(start, end)`` intervals."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def _streams(batch):
    return [(m['uri3'], m['completed']) for m in batch['migrations']
            if m['uri3'] and m['completed']]


def _link_share(batch, mode, phase):
    """Migration goodput on the mode's link as a share of its rate: the
    bytes the source's counters saw on it over the time at least one
    migration streamed (from its ``migrateToURI3`` to its completed job).
    """
    seconds = streaming_seconds(_streams(batch))
    if not seconds:
        return None
    rate = phase['migr_mbit'] if mode == 'plugin' else phase['mgmt_mbit']
    return batch['bytes'][LINKS[mode]] * 8 / seconds / 1e6 / rate


def _overlap(batch):
    """How many migrations streamed at once, on average over the time
    any did: N when all ran together, 1 when one followed another.
    """
    intervals = _streams(batch)
    union = streaming_seconds(intervals)
    return sum(e - s for s, e in intervals) / union if union else None


def _ratio(figures, base):
    """p99 (and p50, max) over idle's; None where idle's is not above 0
    (a heartbeat can land early).
    """
    ratio = {}
    for key in ('p50', 'p99', 'max'):
        if base.get(key) and base[key] > 0 and key in figures:
            ratio[key] = figures[key] / base[key]
    return ratio


def _group(phase, mode, n, idle):
    batches = [b for b in phase['batches']
               if b['mode'] == mode and b['n'] == n]
    migrations = [m for b in batches for m in b['migrations']]
    probes = {name: latency(rtts) for name, rtts in
              _pooled(b['probes'] for b in batches).items()}
    tbf = [b['tbf'].get(host, {}).get(testbed.MGMT_IF, {}).get('drops', 0)
           for b in batches for host in b['tbf']]
    return {
        'mode': mode, 'n': n, 'rounds': len(batches), 'probes': probes,
        'ratio_to_idle': {name: _ratio(figures, idle.get(name, {}))
                          for name, figures in probes.items()},
        'wall_s': spread(b['wall_s'] for b in batches),
        'downtime_ms': spread(1000 * m['job']['downtime_s']
                              for m in migrations
                              if 'downtime_s' in m['job']),
        'to_uri3_s': spread(m['to_uri3_s'] for m in migrations),
        'to_completed_s': spread(m['to_completed_s'] for m in migrations),
        'link_share_of_rate': spread(_link_share(b, mode, phase)
                                     for b in batches),
        'overlap': spread(_overlap(b) for b in batches),
        'bytes_on_expected_link': spread(
            test_planes.share(b['bytes'], LINKS[mode]) for b in batches),
        'mgmt_mb': spread(b['bytes'][testbed.MGMT_IF] / 1e6
                          for b in batches),
        'migr_mb': spread(b['bytes'][testbed.MIGR_IF] / 1e6
                          for b in batches),
        'mgmt_tbf_drops': sum(tbf),
        'cpu_busy': {cpu: spread(b['cpu_busy'].get(cpu) for b in batches)
                     for cpu in sorted({c for b in batches
                                        for c in b['cpu_busy']})},
        'completed': sum(1 for m in migrations
                         if m['migration'] == 'completed'),
        'migrations': len(migrations),
    }


def _control_path(phase, ns):
    """Plugin over stock per round and N, for the two control-path
    times; their median, min and max.
    """
    out = {}
    for key in ('to_uri3_s', 'to_completed_s'):
        ratios = []
        for n in ns:
            for r in sorted({b['round'] for b in phase['batches']}):
                medians = {}
                for mode in MODES:
                    values = [m[key] for b in phase['batches']
                              if (b['mode'], b['n'], b['round'])
                              == (mode, n, r)
                              for m in b['migrations']
                              if m[key] is not None]
                    if values:
                        medians[mode] = statistics.median(values)
                if len(medians) == 2 and medians['stock']:
                    ratios.append(medians['plugin'] / medians['stock'])
        out[key] = spread(ratios)
    return out


def affinity(phase):
    """Where the phase's threads were allowed to run, over its start and
    every batch, and what broke the reservation (``problems``).
    """
    snaps = [phase['affinity_start']] if phase.get('affinity_start') else []
    snaps += [b['affinity'] for b in phase['batches'] if 'affinity' in b]
    seen = cpus.merge(snaps)
    problems = cpus.violations(
        seen, cpus.cpu_set(phase['service_cpus']),
        cpus.cpu_set(phase['guest_cpus']))
    without = [b for b in phase['batches']
               if cpus.MIGRATION_THREAD not in b.get('affinity', {}).get(
                   'qemu', {})]
    if without:
        problems.append("QEMU's migration thread not seen in %d of %d "
                        'batches' % (len(without), len(phase['batches'])))
    return dict(seen, problems=problems,
                migration_thread=seen['qemu'].get(cpus.MIGRATION_THREAD))


def _problems(phase_name, phase):
    problems = []
    for b in phase['batches']:
        where = '%s phase, %s round %d N=%d' % (
            phase_name, LABELS[b['mode']], b['round'] + 1, b['n'])
        for m in b['migrations']:
            if m['error'] or m['migration'] != 'completed' or (
                    m['host'] != b['destination']):
                problems.append('%s: server %s: %s, migration %s, on %s'
                                % (where, m['server'], m['error'] or
                                   m['status'], m['migration'], m['host']))
            elif m['uri3'] is None or m['completed'] is None:
                problems.append('%s: server %s: the source log lacks its '
                                'migrateToURI3 or completion line'
                                % (where, m['server']))
        share = test_planes.share(b['bytes'], LINKS[b['mode']])
        if share < test_planes.MIN_SHARE:
            problems.append('%s: only %.1f%% of the bytes on %s'
                            % (where, 100 * share, LINKS[b['mode']]))
    return problems


def summarize(results):
    """Every figure the report shows, its verdicts and problems."""
    summary = {'meta': results['meta'], 'phases': {}, 'problems': []}
    for name, phase in results['phases'].items():
        if not phase.get('batches'):
            continue
        idle = {probe: latency(rtts) for probe, rtts in
                _pooled(phase['idle_probes']).items()}
        ns = sorted({b['n'] for b in phase['batches']})
        summary['phases'][name] = {
            'pinned': phase['pinned'],
            'service_cpus': phase['service_cpus'],
            'guest_cpus': phase['guest_cpus'],
            'affinity': affinity(phase),
            'mgmt_mbit': phase['mgmt_mbit'], 'migr_mbit': phase['migr_mbit'],
            'idle': idle, 'idle_windows': len(phase['idle_windows']),
            'idle_s': sum(e - s for s, e in phase['idle_windows']),
            'ns': ns,
            'groups': [_group(phase, mode, n, idle)
                       for n in ns for mode in MODES],
            'control_path': _control_path(phase, ns),
        }
        summary['problems'].extend(_problems(name, phase))
    summary['verdicts'] = verdicts(summary)
    return summary


def find(phase, mode, n):
    for g in phase['groups']:
        if (g['mode'], g['n']) == (mode, n):
            return g
    return None


def p99_ratio(group, probe):
    return group['ratio_to_idle'].get(probe, {}).get('p99')


def x(value):
    return '-' if value is None else '%.2fx' % value


def _ratios(group, names):
    return ', '.join('%s %s' % (probe, x(p99_ratio(group, probe)))
                     for probe in names)


def verdicts(summary):
    """One line per target, said as it is."""
    phases = summary['phases']
    pinned = phases.get('pinned')
    if not pinned:
        return ['No phase with CPUs reserved and both links at the same '
                'rate ran: no verdict.']
    lines = [_affinity_line(name, phase) for name, phase in phases.items()
             if phase['pinned']]
    held = not pinned['affinity']['problems']
    top = max(pinned['ns'])
    at = ('N=%d' % top if top >= TARGET_N
          else 'N=%d (N=%d not run)' % (top, TARGET_N))
    plugin, stock = find(pinned, 'plugin', top), find(pinned, 'stock', top)
    ratios = [p99_ratio(plugin, probe) for probe in NOVA_PROBES]
    ok = all(r is not None and r <= P99_TARGET for r in ratios)
    if not held:
        state = 'no verdict (the CPU reservation did not hold)'
    elif top < TARGET_N:
        state = 'not measured (within %.1fx at N=%d: %s)' % (
            P99_TARGET, top, 'yes' if ok else 'no')
    else:
        state = 'met' if ok else 'NOT met'
    lines.append(
        'Verdict, CPUs reserved, plugin at %s, nova\'s control plane p99 '
        'against idle: %s (target: each <= %.1fx): %s.'
        % (at, _ratios(plugin, NOVA_PROBES), P99_TARGET, state))
    worse = [probe for probe in NOVA_PROBES
             if (p99_ratio(stock, probe) or 0) > P99_TARGET]
    lines.append(
        'Stock beside it, CPUs reserved, %s: %s; TCP echo %s, at '
        'SCHED_FIFO %s: %s.'
        % (at, _ratios(stock, NOVA_PROBES), x(p99_ratio(stock, 'echo')),
           x(p99_ratio(stock, 'echo-rt')),
           'stock degrades %s past %.1fx idle' % (', '.join(worse),
                                                  P99_TARGET)
           if worse else 'stock does not degrade nova\'s control plane '
           'past %.1fx idle either' % P99_TARGET))
    share = (plugin['link_share_of_rate'] or {}).get('median')
    lines.append(
        'Verdict, CPUs reserved, plugin, migration link at %s: the '
        'migrations got %s of its %g Mbit/s (median of rounds; target >= '
        '%.0f%%): %s.'
        % (at, '-' if share is None else '%.0f%%' % (100 * share),
           pinned['migr_mbit'], 100 * SHARE_TARGET,
           'no verdict (the CPU reservation did not hold)' if not held
           else 'met' if share is not None and share >= SHARE_TARGET
           else 'NOT met'))
    lines.extend(_control_path_lines(pinned))
    if 'pinned-fast' in phases:
        lines.append(_fast_line(phases['pinned-fast'], pinned))
    if 'unpinned' in phases:
        lines.append(_unpinned_line(phases['unpinned'], pinned))
    lines.extend(_cpu_line(name, phase) for name, phase in phases.items())
    return lines


def _affinity_line(name, phase):
    a = phase['affinity']
    threads = sum(a['services'].values())
    if a['problems']:
        return ('CPU reservation, %s phase: did NOT hold: %s.'
                % (name, '; '.join(a['problems'])))
    return ('CPU reservation, %s phase: held. %d service threads (of up '
            'to %d processes, this one included) allowed on CPU %s only; '
            'QEMU\'s threads (%s) on CPU %s only, its migration thread seen '
            'in every batch.'
            % (name, threads, a['processes'], phase['service_cpus'],
               ', '.join(sorted(a['qemu'])), phase['guest_cpus']))


def _control_path_lines(phase):
    lines = []
    for key, what in (('to_uri3_s', 'API request to migrateToURI3'),
                      ('to_completed_s', 'API request to completion')):
        s = phase['control_path'][key]
        if not s:
            lines.append('Verdict, control path, %s: not measured.' % what)
            continue
        lines.append(
            'Verdict, control path, %s, CPUs reserved: plugin / stock = '
            '%.3f (median of %d round-and-N pairs, %.3f to %.3f; target <= '
            '%.2f): %s.'
            % (what, s['median'], s['count'], s['min'], s['max'],
               CONTROL_PATH_TARGET,
               'met' if s['median'] <= CONTROL_PATH_TARGET else 'NOT met'))
    return lines


def _fast_line(fast, same):
    """What the faster stream changed, and whether the kernel's network
    work for it, done on the CPU that sends and receives it (the
    guests'), still reaches the probes on the services' CPU: the
    real-time echo says, as it waits for no task.
    """
    top = max(fast['ns'])
    fp, fs = find(fast, 'plugin', top), find(fast, 'stock', top)
    wall = [(g['wall_s'] or {}).get('median') for g in (fs, fp)]
    down = [(g['downtime_ms'] or {}).get('median') for g in (fs, fp)]
    base = find(same, 'plugin', top) if top in same['ns'] else None
    rt = p99_ratio(fp, 'echo-rt')
    over = [probe for probe in NOVA_PROBES
            if (p99_ratio(fp, probe) or 0) > P99_TARGET]
    busy = (fp['cpu_busy'].get(fast['service_cpus']) or {}).get('median')
    return (
        'Migration link %gx the management link, CPUs reserved, N=%d: all '
        'migrated in %s s stock, %s s with the plugin (%s); downtime median '
        '%s ms stock, %s ms with the plugin (%s). Plugin p99 against idle: '
        '%s. The TCP echo at SCHED_FIFO stayed at %s idle (%s with both '
        'links at the same rate): the kernel\'s network work for the faster '
        'stream, on the guests\' CPU, %s the probes on the services\' CPU. '
        '%s'
        % (fast['migr_mbit'] / fast['mgmt_mbit'], top, _num(wall[0], 1),
           _num(wall[1], 1), _gain(wall), _num(down[0], 0),
           _num(down[1], 0), _gain(down), _ratios(fp, NOVA_PROBES), x(rt),
           x(p99_ratio(base, 'echo-rt')) if base else '-',
           'reaches' if rt is not None and rt > P99_TARGET
           else 'does not reach',
           '%s rose past %.1fx idle with the services\' CPU %s busy.'
           % (', '.join(over), P99_TARGET,
              '-' if busy is None else '%.0f%%' % (100 * busy))
           if over else 'nova\'s probes stayed within %.1fx idle.'
           % P99_TARGET))


def _unpinned_line(unpinned, pinned):
    top = max(set(unpinned['ns']) & set(pinned['ns']))
    parts = []
    for mode in MODES:
        u, p = find(unpinned, mode, top), find(pinned, mode, top)
        parts.append('%s: %s unpinned against %s with CPUs reserved' % (
            mode, _ratios(u, NOVA_PROBES + ('echo-rt',)),
            _ratios(p, NOVA_PROBES + ('echo-rt',))))
    return ('Every process on every CPU (nova\'s default), N=%d, p99 '
            'against each phase\'s idle: %s.' % (top, '; '.join(parts)))


def _num(value, digits):
    return '-' if value is None else '%.*f' % (digits, value)


def _gain(pair):
    stock, plugin = pair
    if not stock or not plugin:
        return 'no ratio'
    return 'stock takes %.2fx' % (stock / plugin)


def _cpu_line(name, phase):
    """Where the cores, not the link, decide a figure."""
    top = max(phase['ns'])
    plugin = find(phase, 'plugin', top)
    return (
        '%s phase, plugin at N=%d: TCP echo p99 %s idle, the same at '
        'SCHED_FIFO %s; busy: %s; tbf dropped %d packets on the management '
        'link (both hosts, all rounds). A rise that the real-time probe '
        'does not show, with nothing dropped, is CPU, not the link.'
        % (name.capitalize(), top, x(p99_ratio(plugin, 'echo')),
           x(p99_ratio(plugin, 'echo-rt')), busy_text(plugin),
           plugin['mgmt_tbf_drops']))


def busy_text(group):
    """How busy each CPU was (median of rounds), ``CPU 0 55%, ...``."""
    parts = []
    for cpu, s in group['cpu_busy'].items():
        if s and cpu != 'all':
            parts.append('CPU %s %.0f%%' % (cpu, 100 * s['median']))
    return ', '.join(parts) or '-'
