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

"""Concurrent real live migrations against a management-plane latency probe.

Run as root from the repository root::

    python -m benchmarks.concurrent_migrations [--quick] [--rate MBIT]
        [--memory MIB] [--n 1,2,4,8] [--realtime-probes]
        [--congestion-control NAME] [--results DIR]

It prints a markdown table and writes it, the results as JSON and a plot
to ``benchmarks/results/concurrent_migrations.{md,json,png}``. The default
run takes about 9 minutes on 2 CPUs; ``--quick`` (N = 1, 2; 64 MiB) about
1.5. matplotlib must be installed.

Why: the spec's problem is that migrations stream to the destination's
hostname, on the management network, so "a wave of concurrent migrations
saturates the management network and RPC heartbeats, API calls and other
tenants suffer". With ``my_live_migration_ip`` set the stream has its own
plane. This measures both on real libvirt and QEMU.

How:

- The two hosts of ``tests.hypervisor.testbed`` (network namespaces, one
  libvirtd each). Both links, ``mgmt0`` and ``migr0``, are shaped to the
  same rate with tbf on the egress of both ends (default 200 Mbit/s, burst
  32 kbit, latency 50 ms: a tail-drop queue of about 1.25 MB, as a switch
  port has).
- What nova hands libvirt is not written here: as
  ``tests/hypervisor/test_planes.py`` does, a server is live-migrated in
  nova's in-process cloud (fake libvirt, the plugin active, computes named
  after the testbed hosts) and the call nova's driver makes to nova's
  ``Guest.migrate`` is recorded; once with ``my_live_migration_ip`` =
  compute-b's migration IPv4 ("plugin"), once with it unset ("stock": the
  plugin is then invisible, nova's stock call byte for byte).
- For N = 1, 2, 4, 8 and each mode, N TCG guests on compute-a fill their
  memory (default 256 MiB each) with noise, checksum it once and halt (idle
  CPU), and are then live-migrated to compute-b at once: one thread and one
  libvirt connection to compute-a per guest, each running nova's own
  ``Guest.migrate`` with the recorded arguments on a copy of the recorded
  guest object whose domain is the real one. Two arguments are translated,
  not changed: the flags (by name, fake libvirt's bits to libvirt's) and
  ``destination_xml`` (the real domain's migratable XML).
- Meanwhile two probes run in compute-a's namespace against compute-b's
  management address, every 10 ms: a 64-byte TCP request/response to an
  echo server in compute-b's namespace (TCP_NODELAY, one connection, as an
  RPC client sees a round trip), and libvirt's ``getHostname()`` on a
  ``qemu+tcp://`` connection to compute-b's libvirtd. The idle baseline
  pools the windows with no migration: at the start, at the end, and
  before each batch (its guests up and halted), so that other load on the
  machine weighs on it as on the batches.
- Per batch: probe percentiles of the samples sent while the migrations
  ran, and their ratio to idle; the wall time from the common start to the
  last migration's end; each migration's downtime, elapsed time and bytes
  from libvirt's completed-job statistics on the destination; the bytes on
  each link (compute-a's kernel counters, received + sent); whether each
  guest runs on compute-b afterwards.

What it does not measure: a real switch (the queue is the sending host's
own qdisc, so TCP small queues and the hosts' congestion control, recorded
in the output, decide how full it gets, and it may stay well below tbf's
limit; a switch buffering for several senders can be worse); oslo.messaging
and RabbitMQ (the echo probe is one TCP round trip, the floor under any
RPC); guests that dirty memory (these are idle, so every migration
converges in one pass and downtime is libvirt's and QEMU's minimum); KVM,
block migration, TLS, or more than one source and destination. Both hosts,
all guests and the probes share this machine's CPUs: CPU contention shows
in both modes, and on a small machine it can dominate the plugin's
numbers. ``--realtime-probes`` runs the probes at real-time priority to
tell the two apart.
"""

import argparse
import collections
import importlib.util
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import unittest

# Native threads: the migrations must really run at once, each blocked in
# libvirt with the GIL released. tests/__init__.py calls patch() with an
# eventlet default; the environment variable makes it agree (see
# benchmarks/control_path.py).
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'true')
from nova import monkey_patch  # noqa: E402
monkey_patch.patch(backend='threading')

import fixtures  # noqa: E402
from nova import version as nova_version  # noqa: E402

from tests import fixtures as mn_fixtures  # noqa: E402
from tests.functional import cloud  # noqa: E402
from tests.hypervisor import test_planes  # noqa: E402
from tests.hypervisor import testbed  # noqa: E402

try:
    import libvirt
except ImportError:
    libvirt = None

WORK_DIR = '/tmp/nova-migration-net-bench'
NETNS_PREFIX = 'nmnb-'
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'results')
RESULTS_NAME = 'concurrent_migrations'

# tbf on each end's egress: a realistic tail-drop queue.
TBF_BURST = '32kbit'
TBF_LATENCY = '50ms'

PROBE_INTERVAL = 0.01
PROBE_BYTES = 64
ECHO_PORT = 20000
# SCHED_FIFO priority of the probes with --realtime-probes.
REALTIME_PRIORITY = 50

DEFAULT = {'n': (1, 2, 4, 8), 'memory': 256, 'idle': 20}
QUICK = {'n': (1, 2), 'memory': 64, 'idle': 5}
# Idle seconds before each batch, its guests up and halted.
IDLE_BEFORE_BATCH = 3

# Targets (reported, not gates).
P99_TARGET = 1.5
GOODPUT_TARGET = 0.90

# ``link``: the link the mode's streams must cross.
Mode = collections.namedtuple('Mode', 'name label link')
PLUGIN = Mode('plugin', 'plugin, my_live_migration_ip set', testbed.MIGR_IF)
STOCK = Mode('stock', 'option unset (stock)', testbed.MGMT_IF)
MODES = (PLUGIN, STOCK)

STARTED = time.monotonic()

# The calls nova made in the cloud, per mode name: {'call': MigrateCall,
# 'guest_call': (guest, args, kwargs)}.
CAPTURED = {}

# Probe programs, run with this Python in a host's namespace. Each client
# prints "<monotonic send time> <round trip in µs>" per sample; the clock
# is the machine's, the same in every process.
ECHO_SERVER = """
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen()
def echo(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = conn.recv(4096)
        if not data:
            return
        conn.sendall(data)
while True:
    threading.Thread(target=echo, args=(srv.accept()[0],),
                     daemon=True).start()
"""

PROBE_LOOP = """
import sys, time
def loop(call, interval):
    due = time.monotonic()
    while True:
        start = time.monotonic()
        call()
        sys.stdout.write('%.6f %.1f\\n' % (start,
                                          (time.monotonic() - start) * 1e6))
        sys.stdout.flush()
        due += interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            due = time.monotonic()
"""

ECHO_CLIENT = PROBE_LOOP + """
import socket
addr, port, interval, size = sys.argv[1:5]
deadline = time.monotonic() + 30
while True:
    try:
        sock = socket.create_connection((addr, int(port)), timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
sock.settimeout(None)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
request = b'x' * int(size)
def round_trip():
    sock.sendall(request)
    got = 0
    while got < len(request):
        data = sock.recv(len(request) - got)
        if not data:
            sys.exit('echo server closed the connection')
        got += len(data)
loop(round_trip, float(interval))
"""

LIBVIRT_CLIENT = PROBE_LOOP + """
import libvirt
libvirt.registerErrorHandler(lambda ctx, error: None, None)
conn = libvirt.open(sys.argv[1])
loop(conn.getHostname, float(sys.argv[2]))
"""


def progress(message):
    print('[%6.1fs] %s' % (time.monotonic() - STARTED, message),
          file=sys.stderr, flush=True)


def shape_links(tb, rate_mbit):
    """tbf on the egress of both ends of both links."""
    for host in tb.hosts:
        for ifname in (testbed.MGMT_IF, testbed.MIGR_IF):
            testbed.netns_exec(
                host, 'tc', 'qdisc', 'replace', 'dev', ifname, 'root',
                'tbf', 'rate', '%gmbit' % rate_mbit, 'burst', TBF_BURST,
                'latency', TBF_LATENCY)


def qdisc_drops(host):
    """``{ifname: packets tbf dropped}`` on ``host``."""
    out = json.loads(testbed.netns_exec(host, 'tc', '-s', '-j', 'qdisc',
                                        'show'))
    return {q['dev']: q.get('drops', 0) for q in out
            if q['kind'] == 'tbf'}


def congestion_control(tb, name=None):
    """Set (if ``name``) and return the hosts' TCP congestion control."""
    key = 'net.ipv4.tcp_congestion_control'
    for host in tb.hosts:
        if name:
            # A namespace other than the machine's may only pick one of
            # net.ipv4.tcp_allowed_congestion_control.
            testbed.netns_exec(host, 'sysctl', '-q', '-w',
                               '%s=%s' % (key, name))
    return sorted({testbed.netns_exec(h, 'sysctl', '-n', key).strip()
                   for h in tb.hosts})


def warm_up(tb):
    """Have each libvirtd probe QEMU's capabilities now.

    A fresh libvirtd does that on first use, which takes seconds; the
    first migration to compute-b would pay for it.
    """
    def probe(host):
        conn = libvirt.open(tb.uri(host))
        try:
            conn.getDomainCapabilities()
        finally:
            conn.close()
    threads = [threading.Thread(target=probe, args=(h,)) for h in tb.hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# Capturing nova's calls

class Capture(cloud.LiveMigrationCloud):
    """nova's ``Guest.migrate`` call for a migration compute-a to -b.

    As ``test_planes.TestMigrationPlanes``, without its testbed: the one in
    ``testbed`` (a class attribute set before the run) is used for the
    destination's interfaces.
    """

    SOURCE = testbed.HOSTS[0].name
    DESTINATION = testbed.HOSTS[1].name
    testbed = None

    def setUp(self):
        super().setUp()
        self.destination = self.testbed.hosts[1]
        # The destination's start-up checks see its real interfaces.
        self.useFixture(mn_fixtures.InterfacesFixture(
            test_planes.psutil_interfaces(
                self.testbed.addresses(self.destination))))
        self.guest_calls = []
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.guest.Guest.migrate', self._record_migrate))

    def _record_migrate(self, guest, *args, **kwargs):
        self.guest_calls.append((guest, args, kwargs))
        return test_planes.NOVA_GUEST_MIGRATE(guest, *args, **kwargs)

    def capture(self, mode, **start_computes_kwargs):
        self.start_computes(**start_computes_kwargs)
        call = self.live_migrate_server()
        self.assertEqual(1, len(self.guest_calls))
        CAPTURED[mode.name] = {'call': call,
                               'guest_call': self.guest_calls[0]}

    def test_plugin(self):
        self.capture(PLUGIN,
                     dest_migration_ip=self.destination.migration_ipv4)

    def test_stock(self):
        self.capture(STOCK)


def capture_calls(tb):
    """Run the capture in nova's cloud; nova's logs go to a file."""
    Capture.testbed = tb
    root = logging.getLogger()
    root.handlers = [logging.FileHandler(os.path.join(tb.work_dir,
                                                      'nova.log'))]
    suite = unittest.TestSuite([Capture('test_plugin'),
                                Capture('test_stock')])
    excepthook = sys.excepthook
    with open(os.path.join(tb.work_dir, 'capture.txt'), 'w+') as out:
        result = unittest.TextTestRunner(stream=out, verbosity=2).run(suite)
        sys.excepthook = excepthook
        if not result.wasSuccessful():
            out.seek(0)
            raise RuntimeError('capturing nova\'s calls failed:\n'
                               + out.read())
    # What the modes must have made nova do; the link counters check the
    # rest.
    dest = tb.hosts[1]
    plugin = CAPTURED[PLUGIN.name]['call']
    stock = CAPTURED[STOCK.name]['call']
    if (dest.migration_ipv4 not in plugin.dconnuri or
            dest.migration_ipv4 not in plugin.params.get('migrate_uri', '')):
        raise RuntimeError('with the option set nova did not use %s: %s %s'
                           % (dest.migration_ipv4, plugin.dconnuri,
                              plugin.params.get('migrate_uri')))
    if dest.name not in stock.dconnuri or 'migrate_uri' in stock.params:
        raise RuntimeError('with the option unset nova did not use the '
                           'hostname: %s %s' % (stock.dconnuri,
                                                stock.params))


# Probes

class Probe:
    """A probe client in ``host``'s namespace; its samples as they come."""

    def __init__(self, name, host, script, *args, log_dir, realtime):
        self.name = name
        self.samples = []
        self._log = open(os.path.join(log_dir, name + '.err'), 'w+')
        self.proc = _start_in_netns(host, script, args, self._log,
                                    stdout=subprocess.PIPE,
                                    realtime=realtime)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            start, micros = line.split()
            self.samples.append((float(start), float(micros) / 1e6))

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while not self.samples and time.monotonic() < deadline:
            self.check()
            time.sleep(0.1)
        if not self.samples:
            raise RuntimeError('probe %s sent nothing in %ds'
                               % (self.name, timeout))

    def check(self):
        if self.proc.poll() is not None:
            self._log.seek(0)
            raise RuntimeError('probe %s exited %d:\n%s'
                               % (self.name, self.proc.returncode,
                                  self._log.read()))

    def window(self, start, end):
        """Round trips (s) of the samples sent in ``[start, end]``."""
        return [rtt for sent, rtt in list(self.samples)
                if start <= sent <= end]

    def stop(self):
        _stop(self.proc)
        self._log.close()


def _start_in_netns(host, script, args, log, stdout=subprocess.DEVNULL,
                    realtime=False):
    # Real-time scheduling takes the machine's CPU contention out of the
    # probes' numbers, leaving the links'.
    chrt = ['chrt', '--fifo', str(REALTIME_PRIORITY)] if realtime else []
    return subprocess.Popen(
        ['ip', 'netns', 'exec', host.netns] + chrt +
        [sys.executable, '-u', '-c', script] + [str(a) for a in args],
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=log, text=True,
        start_new_session=True)


def _stop(proc):
    """Stop a process this benchmark started, by its id."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Probes(fixtures.Fixture):
    """The echo server on compute-b; echo and libvirt clients on -a."""

    def __init__(self, tb, realtime=False):
        super().__init__()
        self.tb = tb
        self.realtime = realtime

    def _setUp(self):
        source, dest = self.tb.hosts
        self._server_log = open(os.path.join(self.tb.work_dir,
                                             'echo-server.err'), 'w')
        self.addCleanup(self._server_log.close)
        server = _start_in_netns(dest, ECHO_SERVER,
                                 (dest.mgmt_ip, ECHO_PORT), self._server_log,
                                 realtime=self.realtime)
        self.addCleanup(_stop, server)
        self.echo = Probe('echo', source, ECHO_CLIENT, dest.mgmt_ip,
                          ECHO_PORT, PROBE_INTERVAL, PROBE_BYTES,
                          log_dir=self.tb.work_dir, realtime=self.realtime)
        self.addCleanup(self.echo.stop)
        self.libvirt = Probe('libvirt', source, LIBVIRT_CLIENT,
                             'qemu+tcp://%s/system' % dest.mgmt_ip,
                             PROBE_INTERVAL, log_dir=self.tb.work_dir,
                             realtime=self.realtime)
        self.addCleanup(self.libvirt.stop)
        self.echo.wait_ready()
        self.libvirt.wait_ready()

    def summary(self, *windows):
        """Latencies of the samples sent in the ``(start, end)`` windows."""
        for probe in (self.echo, self.libvirt):
            probe.check()
        return {probe.name: latency([rtt for start, end in windows
                                     for rtt in probe.window(start, end)])
                for probe in (self.echo, self.libvirt)}


def latency(rtts):
    """p50, p99 and max (ms) of round trips in seconds."""
    ms = sorted(r * 1000 for r in rtts)
    if len(ms) < 2:
        return {'samples': len(ms)}
    cuts = statistics.quantiles(ms, n=100, method='inclusive')
    return {'samples': len(ms), 'p50_ms': cuts[49], 'p99_ms': cuts[98],
            'max_ms': ms[-1]}


def idle_window(seconds):
    """Wait ``seconds`` with no migration; the window."""
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


# Migrations

class Migration(threading.Thread):
    """One guest's migration: nova's ``Guest.migrate``, as recorded."""

    def __init__(self, tb, name, guest_call, barrier):
        super().__init__(name='migrate-' + name, daemon=True)
        self.tb = tb
        self.domain_name = name
        self.guest_call = guest_call
        self.barrier = barrier
        self.started = self.ended = None
        self.error = None

    def run(self):
        conn = libvirt.open(self.tb.uri(self.tb.hosts[0]))
        try:
            domain = conn.lookupByName(self.domain_name)
            guest, args, kwargs = self.guest_call
            guest = test_planes.guest_on(guest, domain)
            kwargs = dict(kwargs,
                          flags=test_planes.libvirt_flags(kwargs['flags']))
            kwargs['destination_xml'] = domain.XMLDesc(
                libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        except Exception as exc:
            self.error = 'not started: %s' % exc
            self.barrier.abort()
            conn.close()
            return
        try:
            self.barrier.wait()
            self.started = time.monotonic()
            test_planes.NOVA_GUEST_MIGRATE(guest, *args, **kwargs)
        except threading.BrokenBarrierError:
            self.error = self.error or 'not started: another guest failed'
        except Exception as exc:
            self.error = str(exc)
        finally:
            self.ended = time.monotonic()
            conn.close()


def start_guests(tb, names, memory_mib, kernel):
    conn = libvirt.open(tb.uri(tb.hosts[0]))
    try:
        for name in names:
            conn.defineXML(tb.guest_xml(name, memory_mib=memory_mib,
                                        kernel=kernel)).create()
    finally:
        conn.close()
    for name in names:
        tb.wait_for_checksums(tb.hosts[0], name, timeout=300)


def remove_guests(tb, names):
    for name in names:
        tb.remove_guest(name)


def abort_jobs(tb, names):
    """Abort the running migrations of ``names`` (on interrupt)."""
    conn = libvirt.open(tb.uri(tb.hosts[0]))
    try:
        for name in names:
            try:
                conn.lookupByName(name).abortJob()
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


def run_batch(tb, probes, mode, n, memory_mib, kernel):
    """N guests of ``mode`` migrated at once; what it measured."""
    source = tb.hosts[0]
    names = ['%s-n%d-%d' % (mode.name, n, i) for i in range(n)]
    start_guests(tb, names, memory_mib, kernel)
    idle = idle_window(IDLE_BEFORE_BATCH)
    guest_call = CAPTURED[mode.name]['guest_call']
    barrier = threading.Barrier(n + 1)
    threads = [Migration(tb, name, guest_call, barrier) for name in names]
    drops_before = qdisc_drops(source)
    with tb.bytes_moved(source) as moved:
        try:
            # nova's guest module on real libvirt, as in test_planes.replay.
            with fixtures.MonkeyPatch('nova.virt.libvirt.guest.libvirt',
                                      libvirt):
                for t in threads:
                    t.start()
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
                start = time.monotonic()
                while any(t.is_alive() for t in threads):
                    time.sleep(0.1)
        except BaseException:
            abort_jobs(tb, names)
            raise
    end = max([t.ended for t in threads if t.ended] or [start])
    drops_after = qdisc_drops(source)
    result = {
        'mode': mode.name, 'n': n, 'wall_s': end - start,
        'idle_before': idle, 'window': (start, end),
        'probes': probes.summary((start, end)),
        'bytes': moved,
        'tbf_drops': {ifname: drops_after.get(ifname, 0)
                      - drops_before.get(ifname, 0)
                      for ifname in (testbed.MGMT_IF, testbed.MIGR_IF)},
        'migrations': [migration_result(tb, t) for t in threads],
    }
    remove_guests(tb, names)
    return result


def migration_result(tb, thread):
    """The guest's job statistics on compute-b, and where it runs."""
    result = {'name': thread.domain_name, 'error': thread.error,
              'seconds': (thread.ended - thread.started
                          if thread.started else None)}
    conn = libvirt.open(tb.uri(tb.hosts[1]))
    try:
        domain = conn.lookupByName(thread.domain_name)
        result['runs_on_destination'] = (
            domain.isActive() == 1 and
            domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING)
        stats = domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError as exc:
        result['runs_on_destination'] = False
        result['stats_error'] = str(exc)
        return result
    finally:
        conn.close()
    for key in ('downtime', 'time_elapsed', 'setup_time', 'data_processed',
                'memory_processed', 'memory_bps', 'memory_iteration'):
        result[key] = stats.get(key)
    if stats.get('time_elapsed'):
        result['goodput_mbit'] = (stats['data_processed'] * 8
                                  / (stats['time_elapsed'] / 1000) / 1e6)
    return result


# Summaries

def summarize(batch, idle, rate_mbit, mode):
    """Derived numbers of one batch, for the table and the verdicts."""
    migrations = batch['migrations']
    ok = [m for m in migrations if not m['error']]
    summary = {
        'failed': len(migrations) - len(ok),
        'on_destination': sum(1 for m in migrations
                              if m.get('runs_on_destination')),
        'expected_link_share': test_planes.share(batch['bytes'],
                                                 mode.link),
        'aggregate_goodput_mbit': (
            sum(m.get('data_processed') or 0 for m in ok) * 8
            / batch['wall_s'] / 1e6),
    }
    summary['goodput_share_of_rate'] = (summary['aggregate_goodput_mbit']
                                        / rate_mbit)
    for key in ('downtime', 'goodput_mbit'):
        values = [m[key] for m in ok if m.get(key) is not None]
        summary[key] = ({'median': statistics.median(values),
                         'max': max(values), 'min': min(values)}
                        if values else None)
    ratios = {}
    for probe in ('echo', 'libvirt'):
        for key in ('p50_ms', 'p99_ms', 'max_ms'):
            base = idle[probe].get(key)
            value = batch['probes'][probe].get(key)
            if base and value is not None:
                ratios['%s_%s' % (probe, key[:-3])] = value / base
    summary['ratio_to_idle'] = ratios
    return summary


def ms(value):
    return '-' if value is None else '%.3f' % value


def render(results):
    meta = results['meta']
    idle = results['idle']
    out = ['## Concurrent live migrations vs the management plane', '']
    out.append(
        'Real libvirt %(libvirt)s / QEMU %(qemu)s (TCG) in two network '
        'namespaces, nova %(nova)s; both links shaped with tbf to '
        '%(rate_mbit)g Mbit/s (burst %(tbf_burst)s, latency '
        '%(tbf_latency)s) on both ends; TCP congestion control %(cc)s; '
        'guests of %(memory_mib)d MiB of noise, idle; probes every '
        '%(probe_interval_ms)g ms from compute-a to compute-b\'s management '
        'address, scheduling %(probe_scheduling)s; %(cpus)d CPUs; run took '
        '%(run_s).0f s.' % meta)
    out.append('')
    for mode in MODES:
        call = results['captured'][mode.name]
        out.append('- %s: nova calls `migrateToURI3(%s, migrate_uri=%s, '
                   'flags=%s)`' % (mode.label, call['dconnuri'],
                                   call['migrate_uri'] or '(none)',
                                   '|'.join(call['flags'])))
    out.append('')
    out.append('| mode | N | echo p50 ms (x idle) | echo p99 ms (x idle) | '
               'echo max ms (x idle) | getHostname p50 / p99 ms | '
               'all N migrated in s | downtime ms (median / max) | '
               'goodput per migration Mbit/s (median) | '
               'aggregate goodput Mbit/s (% of rate) | management link MB | '
               'migration link MB | on compute-b |')
    out.append('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
               '---:|---:|')
    e, lv = idle['echo'], idle['libvirt']
    out.append('| idle (no migration) | 0 | %s | %s | %s | %s / %s | - | - '
               '| - | - | - | - | - |'
               % (ms(e.get('p50_ms')), ms(e.get('p99_ms')),
                  ms(e.get('max_ms')), ms(lv.get('p50_ms')),
                  ms(lv.get('p99_ms'))))
    for batch in results['batches']:
        s = batch['summary']
        r = s['ratio_to_idle']
        e, lv = batch['probes']['echo'], batch['probes']['libvirt']
        mode = {m.name: m for m in MODES}[batch['mode']]
        downtime = ('%.0f / %.0f' % (s['downtime']['median'],
                                     s['downtime']['max'])
                    if s['downtime'] else '-')
        goodput = ('%.1f' % s['goodput_mbit']['median']
                   if s['goodput_mbit'] else '-')
        out.append(
            '| %s | %d | %s (%.1fx) | %s (%.1fx) | %s (%.1fx) | %s / %s | '
            '%.1f | %s | %s | %.1f (%.0f%%) | %.1f | %.1f | %d/%d |'
            % (mode.label, batch['n'],
               ms(e.get('p50_ms')), r.get('echo_p50', 0),
               ms(e.get('p99_ms')), r.get('echo_p99', 0),
               ms(e.get('max_ms')), r.get('echo_max', 0),
               ms(lv.get('p50_ms')), ms(lv.get('p99_ms')),
               batch['wall_s'], downtime, goodput,
               s['aggregate_goodput_mbit'],
               100 * s['goodput_share_of_rate'],
               batch['bytes'][testbed.MGMT_IF] / 1e6,
               batch['bytes'][testbed.MIGR_IF] / 1e6,
               s['on_destination'], batch['n']))
    out.append('')
    p99s = [w['echo']['p99_ms'] for w in results['idle_windows']
            if 'p99_ms' in w['echo']]
    out.append('Idle: %d windows with no migration (%.0f s in all: %d s at '
               'the start and the end, %d s before each batch with its '
               'guests up and halted), pooled; their echo p99s ranged from '
               '%s to %s ms. Goodput: bytes libvirt reports migrated '
               '(completed job on the destination) x 8 / time; per '
               'migration over its own job time, aggregate over the wall '
               'time of the batch. Link MB: received + sent on compute-a.'
               % (idle['windows'], idle['seconds'], meta['idle_s'],
                  IDLE_BEFORE_BATCH, ms(min(p99s)), ms(max(p99s))))
    problems = results['problems']
    if problems:
        out.append('')
        out.extend('PROBLEM: %s' % p for p in problems)
    out.append('')
    out.extend(results['verdicts'])
    return '\n'.join(out)


def verdicts(results, rate_mbit):
    """One line per target, said as it is."""
    by_key = {(b['mode'], b['n']): b for b in results['batches']}
    ns = sorted({b['n'] for b in results['batches']})
    top = 8 if 8 in ns else ns[-1]
    note = '' if top == 8 else ' (N=8 was not run; at N=%d)' % top
    lines = []
    plugin = by_key.get((PLUGIN.name, top))
    if plugin:
        s = plugin['summary']
        p99 = s['ratio_to_idle'].get('echo_p99', float('inf'))
        share = s['goodput_share_of_rate']
        met = (p99 <= P99_TARGET and share >= GOODPUT_TARGET
               and not s['failed'])
        lines.append(
            'Verdict (plugin)%s: management p99 %.3f ms = %.2fx idle '
            '(target <= %.1fx: %s) while the migrations got %.1f Mbit/s = '
            '%.0f%% of the %g Mbit/s migration link (target >= %.0f%%: %s): '
            'target %s.'
            % (note, plugin['probes']['echo'].get('p99_ms', 0), p99,
               P99_TARGET, 'met' if p99 <= P99_TARGET else 'NOT met',
               s['aggregate_goodput_mbit'], 100 * share, rate_mbit,
               100 * GOODPUT_TARGET,
               'met' if share >= GOODPUT_TARGET else 'NOT met',
               'MET' if met else 'NOT MET'))
    stock = by_key.get((STOCK.name, top))
    if stock:
        s = stock['summary']
        p99 = s['ratio_to_idle'].get('echo_p99', 0)
        shown = p99 > P99_TARGET and s['expected_link_share'] >= 0.5
        versus = ''
        if plugin:
            versus = '; %.1fx the plugin\'s p99 at the same N' % (
                stock['probes']['echo']['p99_ms']
                / plugin['probes']['echo']['p99_ms'])
        lines.append(
            'Verdict (stock)%s: the streams crossed the management link '
            '(%.0f%% of the bytes) and its p99 rose to %.3f ms = %.1fx idle'
            '%s; getHostname p99 %.3f ms: the degradation the spec '
            'describes is %s.'
            % (note, 100 * s['expected_link_share'],
               stock['probes']['echo'].get('p99_ms', 0), p99, versus,
               stock['probes']['libvirt'].get('p99_ms', 0),
               'SHOWN' if shown else 'NOT SHOWN'))
    return lines


def check(results):
    """What would make the numbers unreliable; empty when nothing."""
    problems = []
    for batch in results['batches']:
        mode = {m.name: m for m in MODES}[batch['mode']]
        s = batch['summary']
        where = '%s N=%d' % (mode.label, batch['n'])
        for m in batch['migrations']:
            if m['error']:
                problems.append('%s: %s failed: %s' % (where, m['name'],
                                                       m['error']))
            elif not m.get('runs_on_destination'):
                problems.append('%s: %s does not run on compute-b'
                                % (where, m['name']))
        if s['expected_link_share'] < test_planes.MIN_SHARE:
            problems.append('%s: only %.1f%% of the bytes on %s'
                            % (where, 100 * s['expected_link_share'],
                               mode.link))
    return problems


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    fig, (lat, wall) = pyplot.subplots(1, 2, figsize=(11, 4.5))
    idle_p99 = results['idle']['echo']['p99_ms']
    for mode, style in ((PLUGIN, 'o-'), (STOCK, 's-')):
        batches = [b for b in results['batches'] if b['mode'] == mode.name]
        ns = [b['n'] for b in batches]
        lat.plot(ns, [b['probes']['echo']['p99_ms'] for b in batches],
                 style, label=mode.label)
        wall.plot(ns, [b['wall_s'] for b in batches], style,
                  label=mode.label)
    lat.axhline(idle_p99, color='grey', linestyle='--', label='idle')
    lat.axhline(idle_p99 * P99_TARGET, color='grey', linestyle=':',
                label='%.1fx idle (target)' % P99_TARGET)
    lat.set_yscale('log')
    # Head room for the legend above the curves.
    lat.set_ylim(top=8 * max(b['probes']['echo']['p99_ms']
                             for b in results['batches']))
    lat.set_title('management-plane TCP round trip, p99')
    lat.set_ylabel('ms')
    wall.set_title('all N migrations, wall time')
    wall.set_ylabel('s')
    wall.set_ylim(bottom=0)
    ns = sorted({b['n'] for b in results['batches']})
    for ax in (lat, wall):
        ax.set_xscale('log', base=2)
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel('concurrent migrations N')
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize='small', loc='upper left')
    meta = results['meta']
    fig.suptitle('%g Mbit/s links (tbf), %d MiB guests, TCP %s; nova %s, '
                 'libvirt %s, QEMU %s (TCG)'
                 % (meta['rate_mbit'], meta['memory_mib'], meta['cc'],
                    meta['nova'], meta['libvirt'], meta['qemu']))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def versions(tb):
    conn = libvirt.open(tb.uri(tb.hosts[0]))
    try:
        def dotted(v):
            return '%d.%d.%d' % (v // 1000000, v // 1000 % 1000, v % 1000)
        return dotted(conn.getLibVersion()), dotted(conn.getVersion())
    finally:
        conn.close()


def run(args):
    """The whole benchmark; the results."""
    results = {'batches': []}
    with testbed.Testbed(work_dir=WORK_DIR,
                         netns_prefix=NETNS_PREFIX) as tb:
        progress('testbed up (%s)' % ', '.join(h.netns for h in tb.hosts))
        libvirt.registerErrorHandler(lambda ctx, error: None, None)
        shape_links(tb, args.rate)
        cc = congestion_control(tb, args.congestion_control)
        warm_up(tb)
        progress('links shaped to %g Mbit/s; capturing nova\'s calls'
                 % args.rate)
        capture_calls(tb)
        results['captured'] = {
            name: {'dconnuri': c['call'].dconnuri,
                   'migrate_uri': c['call'].params.get('migrate_uri'),
                   'flags': test_planes.flag_names(c['call'].flags)}
            for name, c in CAPTURED.items()}
        kernel = tb.build_guest_kernel(args.memory, passes=1)
        libvirt_version, qemu_version = versions(tb)
        with Probes(tb, args.realtime_probes) as probes:
            progress('probes up; idle for %ds' % args.idle)
            idle = [idle_window(args.idle)]
            for i, n in enumerate(args.n):
                # Alternate which mode goes first.
                for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                    progress('%s: %d x %d MiB' % (mode.label, n,
                                                  args.memory))
                    batch = run_batch(tb, probes, mode, n, args.memory,
                                      kernel)
                    idle.append(batch['idle_before'])
                    results['batches'].append(batch)
                    progress('  %.1f s, echo p99 %s ms'
                             % (batch['wall_s'], ms(
                                 batch['probes']['echo'].get('p99_ms'))))
            progress('idle again for %ds' % args.idle)
            idle.append(idle_window(args.idle))
            # The baseline: every idle window of the run, so that the
            # machine's other load weighs on it as on the batches.
            results['idle'] = dict(probes.summary(*idle), windows=len(idle),
                                   seconds=sum(e - s for s, e in idle))
            results['idle_windows'] = [
                dict(probes.summary(w), window=w) for w in idle]
    for batch in results['batches']:
        mode = {m.name: m for m in MODES}[batch['mode']]
        batch['summary'] = summarize(batch, results['idle'], args.rate,
                                     mode)
    results['batches'].sort(key=lambda b: (b['n'], b['mode'] != 'plugin'))
    results['meta'] = {
        'nova': nova_version.version_string(), 'libvirt': libvirt_version,
        'qemu': qemu_version, 'kernel': platform.release(),
        'python': platform.python_version(), 'cpus': os.cpu_count(),
        'load_average_at_end': os.getloadavg(),
        'cc': '/'.join(cc), 'rate_mbit': args.rate,
        'tbf_burst': TBF_BURST, 'tbf_latency': TBF_LATENCY,
        'memory_mib': args.memory, 'n': list(args.n),
        'idle_s': args.idle, 'probe_interval_ms': PROBE_INTERVAL * 1000,
        'probe_bytes': PROBE_BYTES,
        'probe_scheduling': ('SCHED_FIFO %d' % REALTIME_PRIORITY
                             if args.realtime_probes else 'default'),
        'run_s': time.monotonic() - STARTED,
    }
    results['problems'] = check(results)
    results['verdicts'] = verdicts(results, args.rate)
    return results


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.concurrent_migrations',
        description='Concurrent real live migrations on shaped links, '
                    'plugin vs stock, against a management-plane latency '
                    'probe. Needs root.')
    parser.add_argument('--rate', type=float, default=200,
                        help='rate of both links, Mbit/s (default 200)')
    parser.add_argument('--memory', type=int,
                        help='guest memory, MiB (default %d; --quick %d)'
                        % (DEFAULT['memory'], QUICK['memory']))
    parser.add_argument('--n', help='concurrent migrations per batch, '
                        'comma-separated (default 1,2,4,8; --quick 1,2)')
    parser.add_argument('--idle', type=int,
                        help='idle seconds at the start and at the end '
                        '(default %d; --quick %d)'
                        % (DEFAULT['idle'], QUICK['idle']))
    parser.add_argument('--congestion-control', metavar='NAME',
                        help='TCP congestion control on both hosts (one of '
                        'net.ipv4.tcp_allowed_congestion_control); default: '
                        'the namespaces\' default')
    parser.add_argument('--realtime-probes', action='store_true',
                        help='run the probes at SCHED_FIFO priority %d, so '
                        'that their numbers show the management link\'s '
                        'queueing without the CPU contention of a small '
                        'machine' % REALTIME_PRIORITY)
    parser.add_argument('--results', metavar='DIR', default=RESULTS_DIR,
                        help='where to write %s.{md,json,png} (default '
                        'benchmarks/results)' % RESULTS_NAME)
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: N=1,2 and 64 MiB guests')
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT
    args.memory = args.memory or sizes['memory']
    args.idle = args.idle or sizes['idle']
    try:
        args.n = (tuple(int(n) for n in args.n.split(',')) if args.n
                  else sizes['n'])
    except ValueError:
        parser.error('--n takes integers, e.g. 1,2,4,8')
    if min(args.n) < 1 or args.memory < 16 or args.rate <= 0:
        parser.error('N >= 1, --memory >= 16 and --rate > 0, please')
    return args


def main(argv=None):
    # oslo.log's hook, installed on import, would log an uncaught error to
    # nova's log file instead of the terminal.
    sys.excepthook = sys.__excepthook__
    args = parse_args(argv)
    if monkey_patch.is_patched():
        sys.exit('eventlet is patched in (OS_NOVA_DISABLE_EVENTLET_PATCHING='
                 '%s): the migrations need native threads; unset it'
                 % os.environ['OS_NOVA_DISABLE_EVENTLET_PATCHING'])
    if importlib.util.find_spec('matplotlib') is None:
        sys.exit('matplotlib is missing: the plot needs it; install it '
                 'into this Python (%s -m pip install matplotlib)'
                 % sys.executable)
    reason = testbed.why_unavailable()
    if reason:
        sys.exit('cannot run: %s' % reason)
    if libvirt is None:
        sys.exit('libvirt-python is missing; run "python -m '
                 'tests.hypervisor.testbed prepare"')
    try:
        results = run(args)
    except KeyboardInterrupt:
        # The with blocks aborted the migrations and removed the testbed.
        progress('interrupted; the testbed is removed')
        return 130
    report = render(results)
    print(report)
    os.makedirs(args.results, exist_ok=True)
    base = os.path.join(args.results, RESULTS_NAME)
    with open(base + '.md', 'w') as f:
        f.write(report + '\n')
    with open(base + '.json', 'w') as f:
        json.dump(results, f, indent=1)
        f.write('\n')
    plot(results, base + '.png')
    progress('wrote %s.md, .json and .png' % base)
    return 1 if results['problems'] else 0


if __name__ == '__main__':
    sys.exit(main())
