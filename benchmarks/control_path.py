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

"""What the plugin's hooks add to a live migration's control path.

Run as ``python -m benchmarks.control_path [--quick] [--json PATH]``.

Why: the hooks run inside nova-compute on every live migration, on the
destination's ``pre_live_migration`` and the source's ``live_migration``
and ``_live_migration_operation``. They must not make the control path of a
migration noticeably slower than stock nova's; the target is under 5%.

What: one process plays destination and source of a live migration of an
instance on shared storage, with the real ``LibvirtDriver`` on nova's fake
libvirt, and times, per migration:

1. destination: nova's ``LibvirtDriver.pre_live_migration`` fills the
   ``LibvirtLiveMigrateData`` it returns (with the plugin active, through
   the plugin's wrapper and ``PreLiveMigration.post``, which adds
   ``migration_ip``);
2. the reply crosses RPC: ``NovaObjectSerializer.serialize_entity`` and a
   JSON round trip with oslo.serialization, as oslo.messaging does;
3. the source reads it: ``NovaObjectSerializer.deserialize_entity``;
4. source: nova's ``LibvirtDriver.live_migration`` (with the plugin, its
   wrapper and ``LiveMigration.pre``, which steers ``target_connect_addr``)
   up to where nova spawns the migration thread;
5. source: the libvirt URIs nova's ``_live_migration_operation`` derives,
   with nova's ``_live_migration_uri`` and ``_migrate_uri``; with the
   plugin, through the plugin's wrapper and ``LiveMigrationOperation.pre``
   as the activated method would run.

Three modes: stock (plugin not active, option unset), plugin (activated
through its ``oslo.config.driver`` entry point as a service does,
``my_live_migration_ip = 172.168.1.15``) and plugin with the option unset.
They run in interleaved rounds, the order reversed every round, so all see
the same machine state; each result is the median over rounds of the time
per migration, and the overhead is the median of the per-round ratios.
nova logs at INFO to a file, as nova-compute with ``log_file`` does, so
the INFO line the source hook writes per migration is part of the cost.

What is not measured: RPC transport, neutron, cinder and os-vif work,
libvirt itself. They cost milliseconds per migration, the same with and
without the plugin, so the ratio here is an upper bound of the overhead a
real migration sees.

No socket is opened: importing nova probes the host's addresses as in
every nova process (urllib3 binds a socket to ::1, oslo.utils'
``get_my_ipv4`` connects a UDP socket to 192.0.2.0; neither sends a
packet), and from then on an audit hook refuses any socket.
"""

import argparse
import collections
import gc
import inspect
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

# Start as nova-compute does (nova/cmd/compute.py): monkey_patch before
# anything else of nova, native threading by default. nova's test package,
# imported for the fake libvirt, calls patch() with an eventlet default; the
# environment variable makes it agree. Set it to 0 to measure eventlet.
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'true')
from nova import monkey_patch  # noqa: E402
monkey_patch.patch(backend='threading')

from nova import config as nova_config  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import objects as nova_objects  # noqa: E402
from nova.objects import base as nova_base  # noqa: E402
from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.tests.unit import fake_instance  # noqa: E402
from nova import utils as nova_utils  # noqa: E402
from nova import version as nova_version  # noqa: E402
from nova.virt import fake as fake_virt  # noqa: E402
from nova.virt.libvirt import driver as libvirt_driver  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402
from oslo_serialization import jsonutils  # noqa: E402
import stevedore  # noqa: E402

from nova_migration_net import activation  # noqa: E402
from nova_migration_net import objects as plugin_objects  # noqa: E402
from nova_migration_net import steering  # noqa: E402
from tests.functional import nova_steps  # noqa: E402

CONF = cfg.CONF

MIGRATION_IP = '172.168.1.15'
DEST = 'dest'
TARGET = 0.05

Mode = collections.namedtuple('Mode', 'name plugin migration_ip')
STOCK = Mode('stock', False, None)
PLUGIN = Mode('plugin', True, MIGRATION_IP)
PLUGIN_UNSET = Mode('plugin, option unset', True, None)
MODES = (STOCK, PLUGIN, PLUGIN_UNSET)

STEPS = ('1 destination pre_live_migration',
         '2 serialize + JSON round trip',
         '3 deserialize on the source',
         '4 source live_migration',
         '5 libvirt URIs')

DEFAULT = {'rounds': 20, 'iterations': 2000}
QUICK = {'rounds': 5, 'iterations': 300}


NETWORK_EVENTS = frozenset((
    'socket.__new__', 'socket.bind', 'socket.connect', 'socket.getaddrinfo',
    'socket.gethostbyname', 'socket.sendmsg', 'socket.sendto'))


# Set only while the probe is timed against a loopback listener.
_LOOPBACK = threading.Event()


def refuse_sockets(event, args):
    """Audit hook: nothing the benchmark runs may use the network; while
    the probe is timed, loopback only.
    """
    if event not in NETWORK_EVENTS:
        return
    if _LOOPBACK.is_set() and _loopback_only(event, args):
        return
    raise RuntimeError('the benchmark must not use the network: %s%r'
                       % (event, args))


def _loopback_only(event, args):
    if event == 'socket.__new__':
        return True
    if event == 'socket.getaddrinfo':
        return args[0] == '127.0.0.1'
    if event in ('socket.connect', 'socket.bind'):
        return args[1][0] == '127.0.0.1'
    return False


def measure_probe(iterations):
    """µs per probe of an address that answers: a loopback listener.

    What a second migration address (or fallback_to_management) adds to a
    migration whose first address works: one TCP handshake and close to
    the port libvirt connects to. Loopback has no wire; the real cloud's
    links give the figure with one.
    """
    _LOOPBACK.set()
    listener = socket.socket()
    try:
        listener.bind(('127.0.0.1', 0))
        listener.listen(128)
        port = listener.getsockname()[1]

        def accept():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                conn.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        times = []
        for _ in range(iterations):
            start = time.perf_counter_ns()
            if steering.probe('127.0.0.1', port) is not None:
                raise RuntimeError('the loopback listener did not answer')
            times.append((time.perf_counter_ns() - start) / 1000)
    finally:
        listener.close()
        _LOOPBACK.clear()
    times.sort()
    return {'iterations': iterations,
            'median_us': statistics.median(times),
            'p99_us': times[int(len(times) * 0.99) - 1]}


def _live_migration_operation(self, context, instance, dest,
                              block_migration, migrate_data, guest,
                              device_names):
    """The URIs nova's ``_live_migration_operation`` hands libvirt.

    nova's own lines (non-tunnelled, nova's default) and URI builders; the
    rest of that method drives libvirt and is not timed. Same signature, so
    the plugin's wrapper binds the same arguments as around nova's method.
    """
    return nova_steps.libvirt_uris(self, dest, migrate_data)


def incoming_migrate_data():
    """The data the destination's pre_live_migration receives.

    Filled by the destination's and the source's checks for an instance on
    shared storage, as nova's check_can_live_migrate_* do.
    """
    return nova_objects.LibvirtLiveMigrateData(
        **nova_steps.DESTINATION_CHECKS, **nova_steps.SOURCE_CHECKS)


class ControlPath:
    """One nova-compute playing destination and source."""

    def __init__(self, workdir):
        # nova's own configuration, with no file: an empty config dir keeps
        # the host's /etc/nova out. INFO logging to a file.
        nova_config.parse_args(
            ['nova-compute', '--config-dir', workdir,
             '--log-file', os.path.join(workdir, 'nova-compute.log')],
            default_config_files=[], configure_db=False, init_rpc=False)
        logging.setup(CONF, 'nova')
        if activation.is_active():
            raise RuntimeError('the plugin is active before the benchmark '
                               'activates it')
        nova_objects.register_all()
        self.libvirt = nova_fixtures.LibvirtFixture()
        self.libvirt.setUp()
        self.ctxt = nova_context.get_admin_context()
        self.instance = fake_instance.fake_instance_obj(
            self.ctxt, uuid=nova_steps.INSTANCE_UUID, host='src', node='src')
        self.serializer = nova_base.NovaObjectSerializer()
        self.driver = libvirt_driver.LibvirtDriver(fake_virt.FakeVirtAPI(),
                                                   False)
        # The source stops where nova spawns the migration thread.
        self.driver._live_migration = lambda *args: None
        self.incoming = jsonutils.dumps(self.serializer.serialize_entity(
            self.ctxt, incoming_migrate_data()))
        self._plugin_operation = self._wrapped_operation()
        self.operation = _live_migration_operation

    @staticmethod
    def _wrapped_operation():
        """The stand-in for nova's method, wrapped as activation wraps it."""
        nova_method = libvirt_driver.LibvirtDriver._live_migration_operation
        if (inspect.signature(nova_method).parameters.keys() !=
                inspect.signature(_live_migration_operation).parameters
                .keys()):
            raise RuntimeError('LibvirtDriver._live_migration_operation '
                               'changed its signature')
        hooks = stevedore.ExtensionManager(activation.HOOK_NAMESPACE,
                                           invoke_on_load=True)
        return activation._wrap(_live_migration_operation,
                                hooks['_live_migration_operation'].obj)

    def enter(self, mode):
        """Switch this process to ``mode``."""
        if mode.plugin:
            # As a service opening [DEFAULT] config_source does.
            manager = stevedore.driver.DriverManager(
                'oslo.config.driver', 'nova_migration_net',
                invoke_on_load=True)
            manager.driver.open_source_from_opt_group(CONF, 'migration_net')
            # The source only arms the plugin: it activates when nova
            # makes its driver, which this process did before. Activate
            # as that trap would.
            if activation.is_armed():
                activation.activate()
            if not activation.is_active():
                raise RuntimeError('nova-migration-net refused to activate')
            self.operation = self._plugin_operation
        else:
            activation.deactivate()
            self.operation = _live_migration_operation
        if mode.migration_ip is not None:
            CONF.set_override('my_live_migration_ip', mode.migration_ip)
        elif 'my_live_migration_ip' in CONF:
            CONF.clear_override('my_live_migration_ip')

    def fresh_inputs(self, count):
        """``count`` objects as the destination reads them off RPC."""
        return [self.serializer.deserialize_entity(
                self.ctxt, jsonutils.loads(self.incoming))
                for _ in range(count)]

    def run(self, inputs):
        """Migrate each input; per-step and total nanoseconds."""
        clock = time.perf_counter_ns
        ctxt, instance, driver = self.ctxt, self.instance, self.driver
        serializer, operation = self.serializer, self.operation
        dumps, loads = jsonutils.dumps, jsonutils.loads
        s1 = s2 = s3 = s4 = s5 = 0
        gc.collect()
        start = clock()
        for data in inputs:
            t0 = clock()
            data = driver.pre_live_migration(ctxt, instance, None, [], None,
                                             data)
            t1 = clock()
            wire = loads(dumps(serializer.serialize_entity(ctxt, data)))
            t2 = clock()
            data = serializer.deserialize_entity(ctxt, wire)
            t3 = clock()
            driver.live_migration(ctxt, instance, DEST, None, None, False,
                                  data)
            t4 = clock()
            operation(driver, ctxt, instance, DEST, False, data, None, [])
            t5 = clock()
            s1 += t1 - t0
            s2 += t2 - t1
            s3 += t3 - t2
            s4 += t4 - t3
            s5 += t5 - t4
        total = clock() - start
        return total, (s1, s2, s3, s4, s5)

    def observe(self):
        """What one migration does in the current mode (not timed)."""
        data = self.driver.pre_live_migration(
            self.ctxt, self.instance, None, [], None, self.fresh_inputs(1)[0])
        primitive = self.serializer.serialize_entity(self.ctxt, data)
        data = self.serializer.deserialize_entity(
            self.ctxt, jsonutils.loads(jsonutils.dumps(primitive)))
        self.driver.live_migration(self.ctxt, self.instance, DEST, None,
                                   None, False, data)
        dconnuri, migrate_uri = self.operation(
            self.driver, self.ctxt, self.instance, DEST, False, data, None,
            [])
        return {'wire_version': primitive['nova_object.version'],
                'wire_bytes': len(jsonutils.dumps(primitive)),
                'migration_ip': primitive['nova_object.data'].get(
                    'migration_ip'),
                'dconnuri': dconnuri, 'migrate_uri': migrate_uri}

    def close(self):
        activation.deactivate()
        self.libvirt.cleanUp()


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method='inclusive')
    return q1, q3


def measure(bench, rounds, iterations, progress):
    """Interleaved rounds; per mode, per round: µs per migration."""
    per_round = {m.name: [] for m in MODES}
    steps = {m.name: [] for m in MODES}
    observed = {}
    for mode in MODES:
        # Warm up each mode once, and record what it does.
        bench.enter(mode)
        bench.run(bench.fresh_inputs(max(iterations // 4, 10)))
        observed[mode.name] = bench.observe()
    for rnd in range(rounds):
        order = MODES if rnd % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            bench.enter(mode)
            inputs = bench.fresh_inputs(iterations)
            total, parts = bench.run(inputs)
            per_round[mode.name].append(total / iterations / 1000)
            steps[mode.name].append([p / iterations / 1000 for p in parts])
        progress('round %d/%d' % (rnd + 1, rounds))
    bench.enter(STOCK)
    return per_round, steps, observed


def summarize(per_round, steps):
    stock = per_round[STOCK.name]
    modes = {}
    for mode in MODES:
        times = per_round[mode.name]
        ratios = [t / s for t, s in zip(times, stock)]
        modes[mode.name] = {
            'per_round_us': times,
            'median_us': statistics.median(times),
            'iqr_us': quartiles(times),
            'ratios': ratios,
            'ratio_median': statistics.median(ratios),
            'ratio_iqr': quartiles(ratios),
            'steps_median_us': {
                name: statistics.median(r[i] for r in steps[mode.name])
                for i, name in enumerate(STEPS)},
        }
    return modes


def verdict(modes):
    plugin = modes[PLUGIN.name]
    added = plugin['ratio_median'] - 1
    low, high = (r - 1 for r in plugin['ratio_iqr'])
    met = 'within' if high < TARGET else (
        'NOT within' if low >= TARGET else 'NOT clearly within')
    extra = plugin['median_us'] - modes[STOCK.name]['median_us']
    return ('Verdict: with my_live_migration_ip set, the hooks add %+.1f%% '
            '(per-round IQR %+.1f%% to %+.1f%%; %+.0f µs per migration) to '
            'the control path: %s the %d%% target.'
            % (added * 100, low * 100, high * 100, extra, met, TARGET * 100))


def render(modes, observed, meta):
    out = []
    out.append('## Live migration control path: plugin vs stock')
    out.append('')
    out.append('nova %(nova)s, LibvirtLiveMigrateData %(stock_version)s / '
               'plugin %(plugin_version)s, Python %(python)s, '
               '%(concurrency)s; %(rounds)d rounds x %(iterations)d '
               'migrations per mode, interleaved, order reversed every '
               'round; nova logs at INFO to a file.' % meta)
    out.append('')
    out.append('| mode | µs per migration (median) | IQR of rounds (µs) | '
               'vs stock (median per-round ratio) | IQR of ratios |')
    out.append('|---|---:|---:|---:|---:|')
    for mode in MODES:
        m = modes[mode.name]
        ratio = ('1 (baseline)' if mode is STOCK
                 else '%.3f (%+.1f%%)' % (m['ratio_median'],
                                          (m['ratio_median'] - 1) * 100))
        spread = ('' if mode is STOCK
                  else '%.3f to %.3f' % m['ratio_iqr'])
        out.append('| %s | %.1f | %.1f to %.1f | %s | %s |'
                   % ((mode.name, m['median_us']) + m['iqr_us'] +
                      (ratio, spread)))
    out.append('')
    out.append('Per step, median over rounds (µs per migration):')
    out.append('')
    out.append('| step | stock | plugin | plugin - stock | '
               'plugin, option unset | unset - stock |')
    out.append('|---|---:|---:|---:|---:|---:|')
    for name in STEPS:
        s = modes[STOCK.name]['steps_median_us'][name]
        p = modes[PLUGIN.name]['steps_median_us'][name]
        u = modes[PLUGIN_UNSET.name]['steps_median_us'][name]
        out.append('| %s | %.1f | %.1f | %+.1f | %.1f | %+.1f |'
                   % (name, s, p, p - s, u, u - s))
    out.append('')
    out.append('What one migration did in each mode:')
    out.append('')
    out.append('| mode | object on the wire | bytes | dconnuri | '
               'migrate_uri |')
    out.append('|---|---|---:|---|---|')
    for mode in MODES:
        o = observed[mode.name]
        wire = 'LibvirtLiveMigrateData %s' % o['wire_version']
        if o['migration_ip']:
            wire += ', migration_ip %s' % o['migration_ip']
        out.append('| %s | %s | %d | %s | %s |'
                   % (mode.name, wire, o['wire_bytes'], o['dconnuri'],
                      o['migrate_uri'] or '(not set)'))
    out.append('')
    out.append(verdict(modes))
    return '\n'.join(out)


def check(observed):
    """Refuse to report numbers for a run that did not do its job."""
    expected = {
        STOCK.name: ('qemu+tcp://%s/system' % DEST, None),
        PLUGIN.name: ('qemu+tcp://%s/system' % MIGRATION_IP,
                      'tcp://%s' % MIGRATION_IP),
        PLUGIN_UNSET.name: ('qemu+tcp://%s/system' % DEST, None),
    }
    for name, uris in expected.items():
        got = (observed[name]['dconnuri'], observed[name]['migrate_uri'])
        if got != uris:
            raise RuntimeError('%s migrated with %s, expected %s'
                               % (name, got, uris))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.control_path',
        description='Time the live migration control path, stock nova vs '
                    'nova-migration-net, in one process.')
    parser.add_argument('--quick', action='store_true',
                        help='a short run (%(rounds)d rounds x '
                             '%(iterations)d)' % QUICK)
    parser.add_argument('--rounds', type=int,
                        help='rounds (default %(rounds)d)' % DEFAULT)
    parser.add_argument('--iterations', type=int,
                        help='migrations per mode and round (default '
                             '%(iterations)d)' % DEFAULT)
    parser.add_argument('--json', metavar='PATH',
                        help='also write the results to PATH as JSON')
    parser.add_argument('--markdown', metavar='PATH',
                        help='also write the tables to PATH')
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else DEFAULT)
    if args.rounds:
        sizes['rounds'] = args.rounds
    if args.iterations:
        sizes['iterations'] = args.iterations

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    sys.addaudithook(refuse_sockets)
    workdir = tempfile.mkdtemp(prefix='nova-migration-net-bench-')
    started = time.monotonic()
    bench = ControlPath(workdir)
    try:
        per_round, steps, observed = measure(
            bench, sizes['rounds'], sizes['iterations'], progress)
        probe = measure_probe(sizes['iterations'])
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    check(observed)
    modes = summarize(per_round, steps)
    meta = dict(
        sizes, nova=nova_version.version_string(),
        stock_version=plugin_objects.StockLibvirtLiveMigrateData.VERSION,
        plugin_version=plugin_objects.LibvirtLiveMigrateData.VERSION,
        python=platform.python_version(),
        concurrency=('native threading'
                     if nova_utils.concurrency_mode_threading()
                     else 'eventlet'),
        seconds=round(time.monotonic() - started, 1))
    report = render(modes, observed, meta) + (
        '\n\nA destination with a second migration address, or a source '
        'with fallback_to_management, adds one probe of the first address '
        'to each migration (a TCP handshake and close, on the port libvirt '
        'connects to): %.1f µs median, %.1f µs p99 over %d probes of a '
        'loopback listener. A real link adds its round trip.'
        % (probe['median_us'], probe['p99_us'], probe['iterations']))
    print(report)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(report + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'meta': meta, 'target': TARGET, 'steps': STEPS,
                       'observed': observed, 'modes': modes,
                       'probe': probe,
                       'verdict': verdict(modes)}, f, indent=2)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
