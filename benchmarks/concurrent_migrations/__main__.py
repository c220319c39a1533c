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

"""``python -m benchmarks.concurrent_migrations``: run, then report."""

import argparse
import importlib.util
import json
import os
import sys

# Native threads: the probes' readers block in reads of their pipes, and
# the requests must go out at once. tests/__init__.py calls patch() with
# an eventlet default; the environment variable makes it agree (as
# benchmarks/control_path.py does).
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'true')
from nova import monkey_patch  # noqa: E402
monkey_patch.patch(backend='threading')

from benchmarks.concurrent_migrations import cpus  # noqa: E402
from benchmarks.concurrent_migrations import render  # noqa: E402
from benchmarks.concurrent_migrations import report  # noqa: E402
from benchmarks.concurrent_migrations import run  # noqa: E402
from tests.cloud import cloud as cloud_  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'results')
DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'doc', 'source',
    'concurrent-migrations-results.inc')

DEFAULT = {'n': (1, 2, 4), 'rounds': 2, 'fast_n': (4,), 'fast_rounds': 2,
           'unpinned_rounds': 2, 'idle': 20, 'idle_before': 5}
QUICK = {'n': (1, 2), 'rounds': 1, 'fast_n': (2,), 'fast_rounds': 1,
         'unpinned_rounds': 1, 'idle': 5, 'idle_before': 3}


def _ns(text):
    return tuple(int(n) for n in text.split(','))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.concurrent_migrations',
        description='N concurrent live migrations through nova\'s API on '
                    'the real-cloud tier\'s cloud, links shaped with tbf, '
                    'CPUs reserved for the services and not, plugin vs '
                    'stock in interleaved rounds, against RPC, API, '
                    'placement, heartbeat and TCP probes over the '
                    'management link. Needs root.')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: N=1,2, 1 round per phase; the '
                        'fast phase at N=2')
    parser.add_argument('--rate', type=float, default=200,
                        help='rate of both links, Mbit/s (default 200)')
    parser.add_argument('--n', type=_ns, help='concurrent migrations per '
                        'batch (default 1,2,4; --quick 1,2)')
    parser.add_argument('--rounds', type=int,
                        help='rounds per mode with CPUs reserved (default '
                        '2; --quick 1)')
    parser.add_argument('--unpinned-rounds', type=int,
                        help='rounds per mode of the phase with every '
                        'process on every CPU (default 2; --quick 1; 0: '
                        'no such phase)')
    parser.add_argument('--fast-factor', type=float, default=4,
                        help='migration link this many times the '
                        'management link in the fast phase, CPUs reserved '
                        '(default 4; 0: no fast phase)')
    parser.add_argument('--fast-n', type=_ns, help='N of the fast phase '
                        '(default 4; --quick 2)')
    parser.add_argument('--fast-rounds', type=int,
                        help='rounds of the fast phase (default 2; '
                        '--quick 1)')
    parser.add_argument('--memory', type=int, default=128,
                        help='guest memory, MB (default 128)')
    parser.add_argument('--dirty', type=int, default=1,
                        help='MiB each guest keeps dirty (default 1)')
    parser.add_argument('--idle', type=int, help='idle seconds at the start '
                        'and the end of each phase (default 20; --quick 5)')
    parser.add_argument('--idle-before', type=int, help='idle seconds '
                        'before each batch, its servers up (default 5; '
                        '--quick 3)')
    parser.add_argument('--congestion-control', metavar='NAME',
                        help='TCP congestion control on both hosts')
    parser.add_argument('--results', metavar='DIR', default=RESULTS_DIR,
                        help='where to write %s.{md,json,png,raw.json} '
                        '(default benchmarks/results)' % report.NAME)
    parser.add_argument('--doc', default=DOC, help='the reStructuredText '
                        'include to write (default %(default)s)')
    parser.add_argument('--report-only', metavar='RAW',
                        help='only render the report of an earlier run\'s '
                        '.raw.json')
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.n + args.fast_n) < 1 or args.rounds < 1:
        parser.error('N >= 1 and --rounds >= 1, please')
    if len(cpus.CPUS) < 2:
        parser.error('CPUs for the services and others for the guests: '
                     'this process may run on %d' % len(cpus.CPUS))
    return args


def main(argv=None):
    args = parse_args(argv)
    if importlib.util.find_spec('matplotlib') is None:
        sys.exit('matplotlib is missing: the plot needs it (tox -e bench '
                 'installs it)')
    os.makedirs(args.results, exist_ok=True)
    raw = os.path.join(args.results, report.NAME + '.raw.json')
    if args.report_only:
        with open(args.report_only) as f:
            results = json.load(f)
    else:
        reason = cloud_.why_unavailable()
        if reason:
            sys.exit('cannot run: %s' % reason)
        try:
            results = run.run(args, raw)
        except KeyboardInterrupt:
            run.progress('interrupted; the cloud is torn down; what ran '
                         'is in %s (--report-only)' % raw)
            return 130
    summary = report.summarize(results)
    render.write(summary, args.results, args.doc)
    print(render.markdown(summary))
    run.progress('wrote %s/%s.{md,json,png} and %s'
                 % (args.results, report.NAME, args.doc))
    return 1 if summary['problems'] else 0


if __name__ == '__main__':
    sys.exit(main())
