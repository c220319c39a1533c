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

"""HTTPS from nova-compute 34 in eventlet mode with the plugin's lines.

Each case runs nova-compute's own start-up (``nova.cmd.compute``, whose
first line is nova's monkey patching) in a new interpreter on a real
``nova.conf``, then makes the request nova makes to placement: a
keystoneauth session's GET to a local TLS server on 127.0.0.1 that a CA of
the test signed. Without root, without a message bus.

The failure is oslo.config's, not the plugin's (see
:mod:`nova_migration_net.early_imports`): these tests pin it, so that the
day an oslo.config loads only the driver a group names, the first one
fails and says the workaround and the plugin's warning can go.
"""

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import textwrap

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID
import fixtures
import testtools

from nova_migration_net import early_imports
from tests import fixtures as mn_fixtures

NOVA_34 = mn_fixtures.requires_nova(
    34, 'nova 33 has no early parse of nova.conf before monkey patching')

PLUGIN_LINES = """\
[DEFAULT]
config_source = migration_net

[migration_net]
driver = nova_migration_net
"""

# A TLS server on 127.0.0.1 that prints its port and answers every GET
# with a JSON document, as placement's root does.
SERVER = textwrap.dedent("""\
    import http.server, ssl, sys

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"versions": []}'
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """)

# nova-compute's start-up (nova.cmd.compute.main): its configuration and
# logging, then the kind of request its placement client makes first (in
# ComputeManager.__init__), then its driver, where the plugin activates.
# Prints how the request ended, the modules the plugin finds unpatched and
# whether the log already held the plugin's ERROR line before the request.
# The service itself would also wait for nova-conductor on a message bus;
# the cloud tier (tests/cloud) runs the console script against a real one.
CLIENT = textwrap.dedent("""\
    import json, sys
    url, cafile = sys.argv[1], sys.argv[2]
    sys.argv = ['nova-compute', '--config-file', sys.argv[3]]
    from nova.cmd import compute  # noqa: nova's monkey patching first
    from keystoneauth1 import session
    from nova import config
    from nova import monkey_patch
    from nova import objects
    from nova.virt import driver
    from oslo_log import log as logging

    from nova_migration_net import early_imports

    config.parse_args(sys.argv)
    logging.setup(config.CONF, 'nova')
    with open(config.CONF.log_file) as f:
        warned_first = early_imports.MARK in f.read()
    try:
        response = session.Session(verify=cafile).get(url, timeout=30)
        outcome = 'HTTP %d' % response.status_code
    except BaseException as e:
        outcome = type(e).__name__
    objects.register_all()
    try:
        driver.load_compute_driver(None, 'libvirt.LibvirtDriver')
    except SystemExit:
        pass  # without libvirt-python; the plugin activated before that
    print(json.dumps({'eventlet': monkey_patch.is_patched(),
                      'unpatched': early_imports.unpatched(),
                      'warned_first': warned_first,
                      'outcome': outcome}))
    """)


def write_pki(directory):
    """A CA, and a server certificate it signed for 127.0.0.1; the paths
    of the CA's certificate, the server's and its key.
    """
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, key, issuer, issuer_key, extensions):
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name('test CA'), ca_key, name('test CA'), ca_key, [
        (x509.BasicConstraints(ca=True, path_length=None), True)])
    key = ec.generate_private_key(ec.SECP256R1())
    server = certificate(name('127.0.0.1'), key, ca.subject, ca_key, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)])
    paths = [os.path.join(directory, name) for name in
             ('ca.pem', 'server.pem', 'server-key.pem')]
    for path, data in zip(paths, (
            ca.public_bytes(serialization.Encoding.PEM),
            server.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))):
        with open(path, 'wb') as f:
            f.write(data)
    return paths


class TestHTTPSInEventletMode(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.directory = self.useFixture(fixtures.TempDir()).path
        self.cafile, cert, key = write_pki(self.directory)
        server = subprocess.Popen(
            [sys.executable, '-c', SERVER, cert, key],
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(server.wait, 30)
        self.addCleanup(server.kill)
        self.url = 'https://127.0.0.1:%s/' % server.stdout.readline().strip()

    def request(self, nova_conf, environment=None):
        """nova-compute's start-up on ``nova_conf``, then one request; what
        :data:`CLIENT` printed, and the ERROR lines of the plugin's
        warning in the log.
        """
        path = os.path.join(self.directory, 'nova.conf')
        log = os.path.join(self.directory, 'nova.log')
        with open(path, 'w') as f:
            f.write('[DEFAULT]\nlog_file = %s\n' % log)
            f.write(nova_conf)
        env = dict(os.environ)
        env.pop(early_imports.ENVIRONMENT, None)
        env.update(environment or {})
        result = subprocess.run(
            [sys.executable, '-c', CLIENT, self.url, self.cafile, path],
            env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)
        with open(log) as f:
            self.log = f.read()
        if 'config_source' in nova_conf:
            # The plugin activated when nova loaded the driver.
            self.assertIn('nova-migration-net is active', self.log)
        found = json.loads(result.stdout.splitlines()[-1])
        found['warned'] = [line.split(' ', 3)[3] for line in
                           self.log.splitlines() if early_imports.MARK in line]
        return found

    @NOVA_34
    def test_eventlet_in_nova_conf_breaks_https(self):
        found = self.request('[DEFAULT]\nconcurrency_backend = eventlet\n'
                             + PLUGIN_LINES)
        self.assertTrue(found['eventlet'])
        self.assertEqual('RecursionError', found['outcome'],
                         'HTTPS works with concurrency_backend = eventlet '
                         'and config_source: has oslo.config stopped '
                         'importing every oslo.config.driver? Then the '
                         'plugin\'s early_imports warning and the '
                         'workaround in the docs can go.')
        self.assertEqual(['urllib3', 'oslo_context.context'],
                         found['unpatched'])
        # Once, at ERROR, from the plugin's logger, with the cause and the
        # fix, as soon as logging was set up: before the first request.
        self.assertTrue(found['warned_first'])
        [line] = found['warned']
        self.assertTrue(line.startswith(
            'ERROR nova_migration_net.early_imports [-] urllib3 and '
            'oslo_context.context %s: [DEFAULT] config_source made '
            'oslo.config import every installed oslo.config.driver'
            % early_imports.MARK), line)
        self.assertIn('HTTPS requests to placement, neutron, glance, '
                      'cinder and keystone fail with RecursionError', line)
        self.assertIn('OS_NOVA_DISABLE_EVENTLET_PATCHING=false in '
                      'nova-compute\'s environment', line)
        self.assertIn('native threading mode', line)

    @NOVA_34
    def test_eventlet_from_the_environment_keeps_https(self):
        found = self.request(
            '[DEFAULT]\nconcurrency_backend = eventlet\n' + PLUGIN_LINES,
            {early_imports.ENVIRONMENT: 'false'})
        self.assertEqual({'eventlet': True, 'unpatched': [], 'warned': [],
                          'warned_first': False,
                          'outcome': 'HTTP 200'}, found)

    @NOVA_34
    def test_eventlet_in_nova_conf_without_config_source_keeps_https(self):
        found = self.request('[DEFAULT]\nconcurrency_backend = eventlet\n')
        self.assertEqual({'eventlet': True, 'unpatched': [], 'warned': [],
                          'warned_first': False,
                          'outcome': 'HTTP 200'}, found)

    @NOVA_34
    def test_native_threading_keeps_https(self):
        found = self.request('[DEFAULT]\nconcurrency_backend = threading\n'
                             + PLUGIN_LINES)
        self.assertEqual({'eventlet': False, 'unpatched': [], 'warned': [],
                          'warned_first': False,
                          'outcome': 'HTTP 200'}, found)
