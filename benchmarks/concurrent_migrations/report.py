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

"""From the raw results to figures, verdicts, tables and a plot.

Latencies pool the samples of every round of a mode and N; the idle
baseline pools every idle window of the phase (its start and end, and the
seconds before each batch with its servers up), so that other load on the
machine weighs on it as on the batches. Ratios of plugin to stock pair
the two modes of one round, whose batches ran minutes apart, never
figures of two runs.

A verdict says "met" only where the figure it names was measured and
meets its target; a target at an N the run did not reach is "not
measured".
"""

import os
import statistics

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
                'echo': 'TCP echo', 'echo-rt': 'TCP echo, SCHED_FIFO'}

# Targets (issue 20)
P99_TARGET = 1.5
TARGET_N = 4
SHARE_TARGET = 0.90
CONTROL_PATH_TARGET = 1.02


def latency(rtts):
    """p50, p99 and max (ms) of round trips in seconds."""
    ms = sorted(r * 1000 for r in rtts)
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


def _link_share(batch, mode, phase):
    """Migration goodput on the mode's link as a share of its rate: the
    bytes the source's counters saw on it over the time at least one
    migration streamed (from its ``migrateToURI3`` to its completed job).
    """
    seconds = streaming_seconds(
        (m['uri3'], m['completed']) for m in batch['migrations']
        if m['uri3'] and m['completed'])
    if not seconds:
        return None
    rate = phase['migr_mbit'] if mode == 'plugin' else phase['mgmt_mbit']
    return batch['bytes'][LINKS[mode]] * 8 / seconds / 1e6 / rate


def _overlap(batch):
    """How many migrations streamed at once, on average over the time
    any did: N when all ran together, 1 when one followed another.
    """
    intervals = [(m['uri3'], m['completed']) for m in batch['migrations']
                 if m['uri3'] and m['completed']]
    union = streaming_seconds(intervals)
    return sum(e - s for s, e in intervals) / union if union else None


def _group(phase, mode, n, idle):
    batches = [b for b in phase['batches']
               if b['mode'] == mode and b['n'] == n]
    migrations = [m for b in batches for m in b['migrations']]
    probes = {name: latency(rtts) for name, rtts in
              _pooled(b['probes'] for b in batches).items()}
    ratio = {}
    for name, figures in probes.items():
        for key in ('p50', 'p99', 'max'):
            base = idle[name].get(key)
            if base and key in figures:
                ratio.setdefault(name, {})[key] = figures[key] / base
    tbf = [b['tbf'].get(host, {}).get(testbed.MGMT_IF, {}).get('drops', 0)
           for b in batches for host in b['tbf']]
    return {
        'mode': mode, 'n': n, 'rounds': len(batches), 'probes': probes,
        'ratio_to_idle': ratio,
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
        'cpu_busy': spread(b['cpu_busy'] for b in batches),
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


def _find(phase, mode, n):
    for g in phase['groups']:
        if (g['mode'], g['n']) == (mode, n):
            return g
    return None


def _x(value):
    return '-' if value is None else '%.2fx' % value


def verdicts(summary):
    """One line per target, said as it is."""
    lines = []
    same = summary['phases'].get('same')
    if not same:
        return ['No phase with both links at the same rate ran: no '
                'verdict.']
    top = max(same['ns'])
    measured = top >= TARGET_N
    at = ('N=%d' % top if measured
          else 'N=%d (N=%d not run)' % (top, TARGET_N))
    plugin, stock = _find(same, 'plugin', top), _find(same, 'stock', top)
    parts, ok = [], True
    for probe in ('rpc', 'api'):
        ratio = plugin['ratio_to_idle'].get(probe, {}).get('p99')
        ok = ok and ratio is not None and ratio <= P99_TARGET
        parts.append('%s p99 %s idle' % (PROBE_LABELS[probe], _x(ratio)))
    if not measured:
        state = 'not measured (within %.1fx at N=%d: %s)' % (
            P99_TARGET, top, 'yes' if ok else 'no')
    else:
        state = 'met' if ok else 'NOT met'
    lines.append('Verdict, plugin, management RPC and API at %s: %s '
                 '(target <= %.1fx idle at N=%d): %s.'
                 % (at, ', '.join(parts), P99_TARGET, TARGET_N, state))
    parts, shown = [], True
    for probe in ('rpc', 'api', 'placement', 'echo', 'echo-rt'):
        s = stock['ratio_to_idle'].get(probe, {}).get('p99')
        vs = (stock['probes'][probe].get('p99', 0)
              / plugin['probes'][probe]['p99']
              if plugin['probes'][probe].get('p99') else None)
        if probe in ('rpc', 'api'):
            shown = shown and bool(s and vs) and s > P99_TARGET and vs > 1
        parts.append('%s p99 %s idle, %s the plugin\'s'
                     % (PROBE_LABELS[probe], _x(s), _x(vs)))
    lines.append('Verdict, stock, degradation at N=%d: %s: %s.'
                 % (top, '; '.join(parts),
                    'shown (RPC and API p99 over %.1fx idle and over the '
                    'plugin\'s)' % P99_TARGET if shown else 'NOT shown'))
    share = (plugin['link_share_of_rate'] or {}).get('median')
    lines.append(
        'Verdict, plugin, migration link at N=%d: the migrations got %s of '
        'its %g Mbit/s (median of rounds; target >= %.0f%%): %s.'
        % (top, '-' if share is None else '%.0f%%' % (100 * share),
           same['migr_mbit'], 100 * SHARE_TARGET,
           'met' if share is not None and share >= SHARE_TARGET
           else 'NOT met'))
    cp = same['control_path']
    for key, what in (('to_uri3_s', 'API request to migrateToURI3'),
                      ('to_completed_s', 'API request to completion')):
        s = cp[key]
        if not s:
            lines.append('Verdict, control path, %s: not measured.' % what)
            continue
        lines.append(
            'Verdict, control path, %s: plugin / stock = %.3f (median of '
            '%d round-and-N pairs, %.3f to %.3f; target <= %.2f): %s.'
            % (what, s['median'], s['count'], s['min'], s['max'],
               CONTROL_PATH_TARGET,
               'met' if s['median'] <= CONTROL_PATH_TARGET else 'NOT met'))
    fast = summary['phases'].get('fast')
    if fast:
        ftop = max(fast['ns'])
        fp, fs = _find(fast, 'plugin', ftop), _find(fast, 'stock', ftop)
        wall = [(g['wall_s'] or {}).get('median') for g in (fs, fp)]
        down = [(g['downtime_ms'] or {}).get('median') for g in (fs, fp)]
        lines.append(
            'Migration link %gx the management link, N=%d: all migrated in '
            '%s s stock, %s s with the plugin (%s); downtime median %s ms '
            'stock, %s ms with the plugin (%s).'
            % (fast['migr_mbit'] / fast['mgmt_mbit'], ftop,
               _num(wall[0], 1), _num(wall[1], 1),
               _gain(wall), _num(down[0], 0), _num(down[1], 0),
               _gain(down)))
    lines.append(_cpu_line(same, top))
    return lines


def _num(value, digits):
    return '-' if value is None else '%.*f' % (digits, value)


def _gain(pair):
    stock, plugin = pair
    if not stock or not plugin:
        return 'no ratio'
    return 'stock takes %.2fx' % (stock / plugin)


def _cpu_line(same, top):
    """Where the machine's two cores, not the link, decide a figure."""
    plugin = _find(same, 'plugin', top)
    echo = plugin['ratio_to_idle'].get('echo', {}).get('p99')
    rt = plugin['ratio_to_idle'].get('echo-rt', {}).get('p99')
    busy = (plugin['cpu_busy'] or {}).get('median')
    return (
        'Two cores, plugin at N=%d: TCP echo p99 %s idle, the same at '
        'SCHED_FIFO %s; CPUs %s busy; tbf dropped %d packets on the '
        'management link (both hosts, all rounds). A rise that the '
        'real-time probe does not show, with nothing dropped, is CPU, not '
        'the link.' % (top, _x(echo), _x(rt),
                       '-' if busy is None else '%.0f%%' % (100 * busy),
                       plugin['mgmt_tbf_drops']))


# Tables

def _f(ms):
    """Milliseconds to three significant digits or so."""
    return '%.*f' % (3 if ms < 1 else 2 if ms < 10 else 1, ms)


def _ms(figures):
    if 'p99' not in figures:
        return '-'
    return ' / '.join(_f(figures[k]) for k in ('p50', 'p99', 'max'))


def _probe_cell(group, probe):
    cell = _ms(group['probes'][probe])
    ratio = group['ratio_to_idle'].get(probe, {}).get('p99')
    return cell if ratio is None else '%s (%.2fx)' % (cell, ratio)


def probe_table(phase):
    header = ['mode', 'N'] + ['%s p50 / p99 / max ms (p99 x idle)'
                              % PROBE_LABELS[p] for p in probes_.NAMES]
    rows = [['idle (no migration)', '0'] +
            [_ms(phase['idle'][p]) for p in probes_.NAMES]]
    for g in phase['groups']:
        rows.append([LABELS[g['mode']], str(g['n'])] +
                    [_probe_cell(g, p) for p in probes_.NAMES])
    return header, rows


def _med(s, scale=1, digits=1):
    if not s:
        return '-'
    return '%.*f' % (digits, s['median'] * scale)


def _range(s, scale=1, digits=1):
    if not s:
        return '-'
    if s['count'] == 1:
        return _med(s, scale, digits)
    return '%.*f (%.*f to %.*f)' % (digits, s['median'] * scale, digits,
                                    s['min'] * scale, digits,
                                    s['max'] * scale)


def migration_table(summary):
    header = ['phase', 'mode', 'N', 'all N migrated in s (rounds)',
              'downtime ms median / max', 'API to migrateToURI3 s',
              'API to completed s', 'streaming at once (of N)',
              'goodput, % of its link\'s rate while streaming',
              'management / migration link MB', 'tbf drops, management',
              'CPUs busy %', 'completed']
    rows = []
    for name, phase in summary['phases'].items():
        label = '%g / %g Mbit/s' % (phase['mgmt_mbit'], phase['migr_mbit'])
        for g in phase['groups']:
            down = g['downtime_ms']
            rows.append([
                label, LABELS[g['mode']], str(g['n']), _range(g['wall_s']),
                '-' if not down else '%.0f / %.0f' % (down['median'],
                                                      down['max']),
                _med(g['to_uri3_s'], digits=2),
                _med(g['to_completed_s']), _med(g['overlap'], digits=2),
                _range(g['link_share_of_rate'], 100, 0),
                '%s / %s' % (_med(g['mgmt_mb']), _med(g['migr_mb'])),
                str(g['mgmt_tbf_drops']), _med(g['cpu_busy'], 100, 0),
                '%d/%d' % (g['completed'], g['migrations'])])
    return header, rows


def control_table(phase):
    header = ['N', 'API to migrateToURI3 s, plugin / stock (median)',
              'API to completed s, plugin / stock (median)']
    rows = []
    for n in phase['ns']:
        p, s = _find(phase, 'plugin', n), _find(phase, 'stock', n)
        rows.append([str(n), '%s / %s' % (_med(p['to_uri3_s'], digits=3),
                                          _med(s['to_uri3_s'], digits=3)),
                     '%s / %s' % (_med(p['to_completed_s'], digits=2),
                                  _med(s['to_completed_s'], digits=2))])
    cp = phase['control_path']
    rows.append(['ratio plugin / stock, per round and N',
                 _range(cp['to_uri3_s'], digits=3),
                 _range(cp['to_completed_s'], digits=3)])
    return header, rows


def _md_table(header, rows):
    out = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
    out.extend('| ' + ' | '.join(row) + ' |' for row in rows)
    return out


def _rst_table(header, rows):
    out = ['.. list-table::', '   :header-rows: 1', '']
    for row in [header] + rows:
        out.append('   * - ' + _rst_cell(row[0]))
        out.extend('     - ' + _rst_cell(cell) for cell in row[1:])
    return out


def _rst_cell(text):
    return '\\-' if text == '-' else text.replace('*', '\\*')


def _setting(summary):
    m = summary['meta']
    same = summary['phases']['same']
    return (
        'nova %(nova)s on the real-cloud tier (libvirt %(libvirt)s, QEMU '
        '%(qemu)s, TCG); guests of %(memory_mb)d MB keeping %(dirty_mib)d '
        'MiB dirty, migrated compute-a to compute-b through nova\'s API; '
        '%(rounds)d rounds per mode and N; TCP congestion control %(cc)s; '
        'tbf burst %(tbf_burst)s, latency %(tbf_latency)s; %(cpus)d CPUs; '
        'taken %(date)s in %(run_s).0f s (cloud up in %(cloud_up_s).0f s)'
        % m + '%s. Idle: %d windows, %.0f s, pooled.'
        % (' (--quick)' if m['quick'] else '', same['idle_windows'],
           same['idle_s']))


def _tables(summary, table, heading):
    """Every table with its heading, as lines; ``table`` renders one."""
    out = []
    sections = [('Probes, management %g Mbit/s, migration %g Mbit/s'
                 % (phase['mgmt_mbit'], phase['migr_mbit']),
                 probe_table(phase))
                for phase in summary['phases'].values()]
    sections.append(('Migrations', migration_table(summary)))
    sections.append(('Control path, both links at the same rate',
                     control_table(summary['phases']['same'])))
    for title, (header, rows) in sections:
        out.extend([heading(title), ''] + table(header, rows) + [''])
    return out


def _findings(summary):
    return ['PROBLEM: %s' % p for p in summary['problems']] + \
        summary['verdicts']


def markdown(summary):
    out = ['## Concurrent live migrations on the real cloud', '',
           _setting(summary), '']
    out.extend(_tables(summary, _md_table, lambda t: '### ' + t))
    out.extend(_findings(summary))
    return '\n'.join(out)


def rst(summary):
    """The include ``doc/source/benchmarks.rst`` shows."""
    out = ['.. This file is written by python -m benchmarks.'
           'concurrent_migrations.', '', _setting(summary), '']
    out.extend(_tables(summary, _rst_table, lambda t: t + ':'))
    out.append('.. image:: ../../benchmarks/results/%s.png' % NAME)
    out.append('   :alt: p99 of each management probe and migration time '
               'vs N, plugin and stock')
    out.append('')
    for line in _findings(summary):
        out.extend([line, ''])
    return '\n'.join(out)


def plot(summary, path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    same = summary['phases']['same']
    fig, axes = pyplot.subplots(2, 3, figsize=(14, 8))
    for ax, probe in zip(axes.flat, ('rpc', 'api', 'placement', 'echo',
                                     'echo-rt')):
        for mode, style in (('plugin', 'o-'), ('stock', 's-')):
            groups = [g for g in same['groups'] if g['mode'] == mode
                      and 'p99' in g['probes'][probe]]
            ax.plot([g['n'] for g in groups],
                    [g['probes'][probe]['p99'] for g in groups], style,
                    label=LABELS[mode])
        base = same['idle'][probe].get('p99')
        if base:
            ax.axhline(base, color='grey', linestyle='--', label='idle')
            ax.axhline(base * P99_TARGET, color='grey', linestyle=':',
                       label='%.1fx idle' % P99_TARGET)
        ax.set_yscale('log')
        ax.set_title('%s, p99' % PROBE_LABELS[probe], fontsize='medium')
        ax.set_ylabel('ms')
    wall = axes.flat[5]
    for name, phase in summary['phases'].items():
        for mode, style in (('plugin', 'o-'), ('stock', 's-')):
            groups = [g for g in phase['groups'] if g['mode'] == mode
                      and g['wall_s']]
            wall.plot([g['n'] for g in groups],
                      [g['wall_s']['median'] for g in groups],
                      style if name == 'same' else style[0] + ':',
                      label='%s, %g/%g Mbit/s' % (mode, phase['mgmt_mbit'],
                                                  phase['migr_mbit']))
    wall.set_title('all N migrated (API to last completion)',
                   fontsize='medium')
    wall.set_ylabel('s')
    wall.set_ylim(bottom=0)
    for ax in axes.flat:
        ax.set_xscale('log', base=2)
        ax.set_xticks(same['ns'])
        ax.set_xticklabels([str(n) for n in same['ns']])
        ax.set_xlabel('concurrent migrations N')
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize='x-small', loc='upper left')
    m = summary['meta']
    fig.suptitle('%g Mbit/s links (tbf), %d MB guests keeping %d MiB '
                 'dirty; nova %s, libvirt %s (TCG); %s%s'
                 % (m['rate_mbit'], m['memory_mb'], m['dirty_mib'],
                    m['nova'], m['libvirt'], m['date'],
                    ', --quick' if m['quick'] else ''))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)


def write(summary, results_dir, doc):
    """The markdown, the summary as JSON, the plot, the doc's include."""
    import json
    base = os.path.join(results_dir, NAME)
    with open(base + '.md', 'w') as f:
        f.write(markdown(summary) + '\n')
    with open(base + '.json', 'w') as f:
        json.dump(summary, f, indent=1)
        f.write('\n')
    plot(summary, base + '.png')
    with open(doc, 'w') as f:
        f.write(rst(summary) + '\n')
