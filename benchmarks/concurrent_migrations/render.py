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

"""The summary of :mod:`.report` as people read it: Markdown, the
reStructuredText include of ``doc/source/benchmarks.rst``, JSON, and one
plot (p99 over idle against N for each probe, plugin and stock, CPUs
reserved and not).
"""

import json
import os

from benchmarks.concurrent_migrations import probes as probes_
from benchmarks.concurrent_migrations import report

LABELS = report.LABELS
PHASE_LABELS = {'pinned': 'CPUs reserved', 'pinned-fast':
                'CPUs reserved, migration link faster',
                'unpinned': 'every process on every CPU'}


def _f(ms):
    """Milliseconds to three significant digits or so."""
    if abs(ms) < 1:
        return '%.3f' % ms
    return '%.*f' % (2 if abs(ms) < 10 else 1, ms)


def _ms(figures):
    if 'p99' not in figures:
        return '-'
    return ' / '.join(_f(figures[k]) for k in ('p50', 'p99', 'max'))


def _probe_cell(group, probe):
    cell = _ms(group['probes'][probe])
    ratio = report.p99_ratio(group, probe)
    return cell if ratio is None else '%s (%.2fx)' % (cell, ratio)


def probe_table(phase):
    header = ['mode', 'N'] + ['%s p50 / p99 / max ms (p99 x idle)'
                              % report.PROBE_LABELS[p]
                              for p in probes_.NAMES]
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
              'busy, per CPU', 'completed']
    rows = []
    for name, phase in summary['phases'].items():
        label = '%s, %g / %g Mbit/s' % (name, phase['mgmt_mbit'],
                                        phase['migr_mbit'])
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
                str(g['mgmt_tbf_drops']), report.busy_text(g),
                '%d/%d' % (g['completed'], g['migrations'])])
    return header, rows


def affinity_table(summary):
    header = ['phase', 'services may run on (threads)',
              'QEMU threads may run on', 'migration thread on', 'held']
    rows = []
    for name, phase in summary['phases'].items():
        a = phase['affinity']
        rows.append([
            name, ', '.join('CPU %s (%d)' % item
                            for item in sorted(a['services'].items())),
            ', '.join('%s: %s' % (kind, ' or '.join(lists))
                      for kind, lists in sorted(a['qemu'].items())),
            ' or '.join(a['migration_thread'] or ['not seen']),
            'yes' if not a['problems'] else 'NO: ' + '; '.join(
                a['problems'])])
    return header, rows


def control_table(phase):
    header = ['N', 'API to migrateToURI3 s, plugin / stock (median)',
              'API to completed s, plugin / stock (median)']
    rows = []
    for n in phase['ns']:
        p, s = report.find(phase, 'plugin', n), report.find(phase, 'stock',
                                                            n)
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
    return (
        'nova %(nova)s on the real-cloud tier (libvirt %(libvirt)s, QEMU '
        '%(qemu)s, TCG); guests of %(memory_mb)d MB keeping %(dirty_mib)d '
        'MiB dirty, migrated compute-b to compute-a (the controller) '
        'through nova\'s API; %(rounds)d rounds per mode and N with CPUs '
        'reserved, %(fast_rounds)d in the fast phase, %(unpinned_rounds)d '
        'with every process on every CPU; nova-compute report_interval '
        '%(report_interval_s)d s, its row read every %(beat_poll_s)g s; '
        'TCP congestion control %(cc)s; tbf burst %(tbf_burst)s, latency '
        '%(tbf_latency)s; %(cpus)d CPUs; taken %(date)s in %(run_s).0f s '
        '(cloud up in %(cloud_up_s).0f s)' % m
        + '%s. Idle: each phase\'s windows pooled (%s).' % (
            ' (--quick)' if m['quick'] else '',
            ', '.join('%s %d windows, %.0f s'
                      % (name, p['idle_windows'], p['idle_s'])
                      for name, p in summary['phases'].items())))


def _tables(summary, table, heading):
    """Every table with its heading, as lines; ``table`` renders one."""
    sections = [('Where the threads were allowed to run',
                 affinity_table(summary))]
    sections += [('Probes, %s, management %g Mbit/s, migration %g Mbit/s'
                  % (PHASE_LABELS.get(name, name), phase['mgmt_mbit'],
                     phase['migr_mbit']), probe_table(phase))
                 for name, phase in summary['phases'].items()]
    sections.append(('Migrations', migration_table(summary)))
    if 'pinned' in summary['phases']:
        sections.append(('Control path, CPUs reserved, both links at the '
                         'same rate',
                         control_table(summary['phases']['pinned'])))
    out = []
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
    out.append('.. image:: ../../benchmarks/results/%s.png' % report.NAME)
    out.append('   :alt: p99 over idle of each management probe against N, '
               'plugin and stock, CPUs reserved and not')
    out.append('')
    for line in _findings(summary):
        out.extend([line, ''])
    return '\n'.join(out)


def plot(summary, path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    phases = [(name, phase) for name, phase in summary['phases'].items()
              if phase['migr_mbit'] == phase['mgmt_mbit']]
    ns = sorted({n for _, phase in phases for n in phase['ns']})
    fig, axes = pyplot.subplots(2, 3, figsize=(14, 8))
    for ax, probe in zip(axes.flat, probes_.NAMES):
        for name, phase in phases:
            line = '-' if phase['pinned'] else '--'
            for mode, marker in (('plugin', 'o'), ('stock', 's')):
                groups = [g for g in phase['groups'] if g['mode'] == mode
                          and report.p99_ratio(g, probe) is not None]
                ax.plot([g['n'] for g in groups],
                        [report.p99_ratio(g, probe) for g in groups],
                        marker + line, label='%s, %s' % (
                            mode, PHASE_LABELS.get(name, name)))
        ax.axhline(1, color='grey', linestyle='--', linewidth=0.8)
        ax.axhline(report.P99_TARGET, color='grey', linestyle=':',
                   label='%.1fx idle' % report.P99_TARGET)
        ax.set_yscale('log')
        ax.set_title('%s, p99 / idle p99' % report.PROBE_LABELS[probe],
                     fontsize='medium')
        ax.set_xscale('log', base=2)
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel('concurrent migrations N')
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize='x-small', loc='upper left')
    m = summary['meta']
    fig.suptitle('p99 over idle; %g Mbit/s links (tbf), %d MB guests '
                 'keeping %d MiB dirty; nova %s, libvirt %s (TCG), %d CPUs; '
                 '%s%s' % (m['rate_mbit'], m['memory_mb'], m['dirty_mib'],
                           m['nova'], m['libvirt'], m['cpus'], m['date'],
                           ', --quick' if m['quick'] else ''))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)


def write(summary, results_dir, doc):
    """The markdown, the summary as JSON, the plot, the doc's include."""
    base = os.path.join(results_dir, report.NAME)
    with open(base + '.md', 'w') as f:
        f.write(markdown(summary) + '\n')
    with open(base + '.json', 'w') as f:
        json.dump(summary, f, indent=1)
        f.write('\n')
    plot(summary, base + '.png')
    with open(doc, 'w') as f:
        f.write(rst(summary) + '\n')
