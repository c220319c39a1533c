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
``nova.conf``, up to its compute manager, whose placement client asks a
local TLS server on 127.0.0.1, signed by a CA of the test, for placement's
versions: nova-compute's first HTTPS request. Without root, without a
message bus.

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

# A TLS server on 127.0.0.1 that prints its port and answers every GET with
# placement's root document, the version discovery nova's placement client
# makes as soon as it is created.
SERVER = textwrap.dedent("""\
    import http.server, json, ssl, sys

    VERSIONS = {'versions': [{
        'id': 'v1.0', 'min_version': '1.0', 'max_version': '1.39',
        'status': 'CURRENT', 'links': [{'rel': 'self', 'href': ''}]}]}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(VERSIONS).encode()
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
# logging, then its compute manager, whose placement client asks the TLS
# server for placement's versions (nova-compute's first HTTPS request), then
# loads the libvirt driver, where the plugin activates. Prints how the
# manager ended and the modules the plugin finds unpatched. The service
# itself would wait for nova-conductor on a message bus first; the cloud
# tier (tests/cloud) runs the console script against a real one.
CLIENT = textwrap.dedent("""\
    import json, sys
    sys.argv = ['nova-compute', '--config-file', sys.argv[1]]
    from nova.cmd import compute  # noqa: nova's monkey patching first
    from nova.compute import manager
    from nova import config
    from nova import monkey_patch
    from nova import objects
    from oslo_log import log as logging

    from nova_migration_net import early_imports

    config.parse_args(sys.argv)
    logging.setup(config.CONF, 'nova')
    objects.register_all()
    try:
        manager.ComputeManager()
        outcome = 'past placement'
    except SystemExit:
        # load_compute_driver without libvirt-python: after placement.
        outcome = 'past placement'
    except BaseException as e:
        outcome = type(e).__name__
    print(json.dumps({'eventlet': monkey_patch.is_patched(),
                      'unpatched': early_imports.unpatched(),
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

    def start(self, nova_conf, environment=None):
        """nova-compute's start-up on ``nova_conf`` with placement at the
        TLS server; what :data:`CLIENT` printed, and the plugin's ERROR
        lines in the log.
        """
        path = os.path.join(self.directory, 'nova.conf')
        log = os.path.join(self.directory, 'nova.log')
        with open(path, 'w') as f:
            f.write(nova_conf)
            f.write(textwrap.dedent("""\
                [DEFAULT]
                log_file = %s
                compute_driver = libvirt.LibvirtDriver

                [placement]
                auth_type = none
                endpoint_override = %s
                cafile = %s
                """) % (log, self.url, self.cafile))
        env = dict(os.environ)
        env.pop(early_imports.ENVIRONMENT, None)
        env.update(environment or {})
        result = subprocess.run([sys.executable, '-c', CLIENT, path],
                                env=env, capture_output=True, text=True,
                                timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)
        with open(log) as f:
            self.log = f.read()
        found = json.loads(result.stdout.splitlines()[-1])
        if found['outcome'] == 'past placement' and 'config_source' in (
                nova_conf):
            # The plugin activated when nova loaded the driver.
            self.assertIn('nova-migration-net is active', self.log)
        found['warned'] = [line.split(' ', 3)[3] for line in
                           self.log.splitlines() if early_imports.MARK in line]
        return found

    @NOVA_34
    def test_eventlet_in_nova_conf_breaks_https(self):
        found = self.start('[DEFAULT]\nconcurrency_backend = eventlet\n'
                           + PLUGIN_LINES)
        self.assertTrue(found['eventlet'])
        self.assertEqual('RecursionError', found['outcome'],
                         'placement over HTTPS works with '
                         'concurrency_backend = eventlet and '
                         'config_source: has oslo.config stopped '
                         'importing every oslo.config.driver? Then the '
                         'plugin\'s early_imports warning and the '
                         'workaround in the docs can go.')
        self.assertEqual(['urllib3', 'oslo_context.context'],
                         found['unpatched'])
        # Once, at ERROR, from the plugin's logger, with the cause and the
        # fix, although nova-compute died at its first request.
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
        found = self.start(
            '[DEFAULT]\nconcurrency_backend = eventlet\n' + PLUGIN_LINES,
            {early_imports.ENVIRONMENT: 'false'})
        self.assertEqual({'eventlet': True, 'unpatched': [], 'warned': [],
                          'outcome': 'past placement'}, found)

    @NOVA_34
    def test_eventlet_in_nova_conf_without_config_source_keeps_https(self):
        found = self.start('[DEFAULT]\nconcurrency_backend = eventlet\n')
        self.assertEqual({'eventlet': True, 'unpatched': [], 'warned': [],
                          'outcome': 'past placement'}, found)

    @NOVA_34
    def test_native_threading_keeps_https(self):
        found = self.start('[DEFAULT]\nconcurrency_backend = threading\n'
                           + PLUGIN_LINES)
        self.assertEqual({'eventlet': False, 'unpatched': [], 'warned': [],
                          'outcome': 'past placement'}, found)
