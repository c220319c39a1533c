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

"""What the migrations' victims see: nova's control plane, and a TCP echo
for reference, over the management link.

The migrations go from compute-b to compute-a, which is also the
controller, so the source's management traffic crosses the link its
migrations stream on (stock), as a compute's traffic to its controllers
does in production. Every probe client runs in compute-b's network
namespace and reaches the controller at its management address; each
sample is ``<time.time() at send> <round trip in µs>``:

``rpc``
    an oslo.messaging ``call()`` through the cloud's RabbitMQ to an RPC
    server on the controller (a topic of the benchmark's own), with the
    oslo.messaging of compute-b's venv: the path nova's RPC takes.
``api``
    nova's ``GET /servers/detail``, with a keystone token, over HTTPS
    through the controller's haproxy as every client of the cloud (one
    kept connection: one TLS handshake, then each request's encryption).
``placement``
    placement's ``GET /resource_providers``.
``heartbeat``
    nova's own service heartbeat: compute-b's nova-compute reports its
    state every ``report_interval`` (:data:`REPORT_INTERVAL` s here,
    against nova's default 10, to get samples), through nova-conductor
    over RPC, and the conductor bumps ``report_count`` of its row in
    nova's ``services`` table. A poller on the controller reads the row
    every :data:`BEAT_POLL` s; a sample is how late a beat landed after
    the one before, against ``report_interval`` (nova's timer keeps the
    interval from each report's start, so a late beat is followed by an
    early one: the p99 is the late ones). Its resolution is the poll's.
``echo``
    a 64-byte TCP request/response to an echo server on the controller
    (TCP_NODELAY, one connection): the floor under every other probe.
``echo-rt``
    the same at SCHED_FIFO priority 50 (``chrt``), client and server:
    where it stays flat and ``echo`` rises, the CPUs, not the link, made
    the difference.

The API probes cost CPU (keystonemiddleware, nova's database queries):
they run every 0.5 s, the others more often.
"""

import os
import subprocess
import threading
import time

import fixtures

from tests.cloud.services import keystone as keystone_
from tests.cloud.services import mysql

# seconds between samples, per probe
INTERVALS = {'rpc': 0.05, 'api': 0.5, 'placement': 0.25, 'echo': 0.01,
             'echo-rt': 0.01}
NAMES = ('rpc', 'api', 'placement', 'heartbeat', 'echo', 'echo-rt')
# nova-compute's [DEFAULT] report_interval in the run (nova's default: 10)
REPORT_INTERVAL = 1
# seconds between two reads of the services row
BEAT_POLL = 0.01
ECHO_PORT = 20000
ECHO_RT_PORT = 20001
PROBE_BYTES = 64
RPC_TOPIC = 'migration-net-bench'
REALTIME_PRIORITY = 50

LOOP = """
import sys, time
def loop(call, interval):
    due = time.monotonic()
    while True:
        start, mono = time.time(), time.monotonic()
        call()
        sys.stdout.write('%.6f %.1f\\n' % (start,
                                          (time.monotonic() - mono) * 1e6))
        sys.stdout.flush()
        due += interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            due = time.monotonic()
"""

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

ECHO_CLIENT = LOOP + """
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

RPC_SERVER = """
import sys, threading
from oslo_config import cfg
import oslo_messaging as messaging
conf = cfg.CONF
conf([])
transport = messaging.get_rpc_transport(conf, url=sys.argv[1])
class Endpoint:
    def ping(self, ctxt, data):
        return data
server = messaging.get_rpc_server(
    transport, messaging.Target(topic=sys.argv[2], server='controller'),
    [Endpoint()], executor='threading')
server.start()
print('ready', flush=True)
threading.Event().wait()
"""

RPC_CLIENT = LOOP + """
from oslo_config import cfg
import oslo_messaging as messaging
conf = cfg.CONF
conf([])
transport = messaging.get_rpc_transport(conf, url=sys.argv[1])
client = messaging.get_rpc_client(
    transport, messaging.Target(topic=sys.argv[2], server='controller'),
    timeout=60)
data = 'x' * 64
deadline = time.monotonic() + 60
while True:
    try:
        client.prepare(timeout=2).call({}, 'ping', data=data)
        break
    except messaging.MessagingTimeout:
        if time.monotonic() > deadline:
            raise
loop(lambda: client.call({}, 'ping', data=data), float(sys.argv[3]))
"""

HTTP_CLIENT = LOOP + """
import http.client, json, ssl, urllib.parse
keystone, password, url, cafile, interval = sys.argv[1:6]
headers = dict(h.split(': ', 1) for h in sys.argv[6:])
context = ssl.create_default_context(cafile=cafile)
def connection(u):
    return http.client.HTTPSConnection(u.hostname, u.port, timeout=120,
                                       context=context)
def token():
    u = urllib.parse.urlparse(keystone + '/auth/tokens')
    body = json.dumps({'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': 'admin', 'domain': {'name': 'Default'},
            'password': password}}},
        'scope': {'project': {'name': 'admin',
                              'domain': {'name': 'Default'}}}}})
    c = connection(u)
    c.request('POST', u.path, body, {'Content-Type': 'application/json'})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit('keystone said %d' % r.status)
    return r.getheader('X-Subject-Token')
headers['X-Auth-Token'] = token()
headers['Accept'] = 'application/json'
u = urllib.parse.urlparse(url)
conn = connection(u)
def get():
    for attempt in range(2):
        conn.request('GET', u.path + ('?' + u.query if u.query else ''),
                     headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status == 401 and not attempt:
            headers['X-Auth-Token'] = token()
            continue
        if r.status != 200:
            sys.exit('GET %s said %d' % (url, r.status))
        return
loop(get, float(interval))
"""


HEARTBEAT = """
import sys, time
import pymysql
user, password, host, interval, poll = sys.argv[1:6]
interval, poll = float(interval), float(poll)
db = pymysql.connect(host='127.0.0.1', user=user, password=password,
                     database='nova', autocommit=True)
count = landed = None
while True:
    with db.cursor() as cur:
        cur.execute("SELECT report_count FROM services WHERE host = %s "
                    "AND topic = 'compute' AND deleted = 0", (host,))
        row = cur.fetchone()
    now = time.time()
    if row and row[0] != count:
        if count is not None and row[0] == count + 1:
            sys.stdout.write('%.6f %.1f\\n' % (
                landed, (now - landed - interval) * 1e6))
            sys.stdout.flush()
        count, landed = row[0], now
    time.sleep(poll)
"""


class Probe:
    """A probe client; its ``(sent, round trip s)`` samples as they come."""

    def __init__(self, name, argv, log_dir):
        self.name = name
        self.samples = []
        self._log = open(os.path.join(log_dir, 'probe-%s.err' % name), 'w+')
        self.proc = _start(argv, self._log, stdout=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            sent, micros = line.split()
            self.samples.append((float(sent), float(micros) / 1e6))

    def wait_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        while not self.samples and time.monotonic() < deadline:
            self.check()
            time.sleep(0.2)
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


def _start(argv, log, stdout=subprocess.DEVNULL):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=log, text=True, start_new_session=True)


def _stop(proc):
    """Stop a process this benchmark started, by its id."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def realtime(argv):
    return ['chrt', '--fifo', str(REALTIME_PRIORITY)] + argv


class Probes(fixtures.Fixture):
    """The probes' servers on the controller and clients on compute-b."""

    def __init__(self, cloud):
        super().__init__()
        self.cloud = cloud

    def python(self, host, script, *args):
        """``script`` with ``host``'s venv's Python, in its namespaces."""
        python = os.path.join(self.cloud.venvs[host.name], 'bin', 'python')
        return self.cloud.nsenter(host) + [
            python, '-u', '-c', script] + [str(a) for a in args]

    def _server(self, name, argv):
        log = open(os.path.join(self.cloud.log_dir, 'probe-%s-server.err'
                                % name), 'w')
        self.addCleanup(log.close)
        proc = _start(argv, log)
        self.addCleanup(_stop, proc)
        return proc

    def _setUp(self):
        cloud = self.cloud
        controller, b = cloud.testbed.hosts
        ip = controller.mgmt_ip
        transport = cloud.rabbitmq.transport_url
        keystone = cloud.keystone
        self._server('echo', self.python(controller, ECHO_SERVER, ip,
                                         ECHO_PORT))
        self._server('echo-rt', realtime(self.python(
            controller, ECHO_SERVER, ip, ECHO_RT_PORT)))
        self._server('rpc', self.python(controller, RPC_SERVER, transport,
                                        RPC_TOPIC))
        argv = {
            'rpc': self.python(b, RPC_CLIENT, transport, RPC_TOPIC,
                               INTERVALS['rpc']),
            'api': self.python(b, HTTP_CLIENT, keystone.url,
                               keystone_.ADMIN_PASSWORD, cloud.nova.url +
                               '/servers/detail', cloud.tls.ca_file,
                               INTERVALS['api']),
            'placement': self.python(
                b, HTTP_CLIENT, keystone.url, keystone_.ADMIN_PASSWORD,
                cloud.placement.url + '/resource_providers',
                cloud.tls.ca_file, INTERVALS['placement']),
            'heartbeat': self.python(
                controller, HEARTBEAT, mysql.USER, mysql.PASSWORD, b.name,
                REPORT_INTERVAL, BEAT_POLL),
            'echo': self.python(b, ECHO_CLIENT, ip, ECHO_PORT,
                                INTERVALS['echo'], PROBE_BYTES),
            'echo-rt': realtime(self.python(
                b, ECHO_CLIENT, ip, ECHO_RT_PORT, INTERVALS['echo-rt'],
                PROBE_BYTES)),
        }
        self.probes = {}
        for name in NAMES:
            self.probes[name] = Probe(name, argv[name], cloud.log_dir)
            self.addCleanup(self.probes[name].stop)
        for probe in self.probes.values():
            probe.wait_ready()

    def check(self):
        for probe in self.probes.values():
            probe.check()

    def samples(self, *windows):
        """``{probe: [round trip s]}`` of the samples sent in the
        ``(start, end)`` windows (``time.time()``).
        """
        self.check()
        return {name: [rtt for start, end in windows
                       for rtt in probe.window(start, end)]
                for name, probe in self.probes.items()}
