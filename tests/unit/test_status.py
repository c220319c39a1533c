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

"""``nova-migration-net-status upgrade check``.

Every connection these tests make goes to 127.0.0.0/8; the interface table
is a fixed one (nova's test base refuses the real one).
"""

import datetime
import importlib.metadata
import ipaddress
import json
import os
import socket
import subprocess
import sys
import textwrap

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import NameOID
import fixtures
from nova import test
from oslo_config import cfg
from oslo_upgradecheck import upgradecheck

from nova_migration_net import activation
from nova_migration_net.cmd import status
from nova_migration_net import early_imports
from tests import fixtures as mn_fixtures
from tests.unit import test_config_source

SUCCESS = upgradecheck.Code.SUCCESS
WARNING = upgradecheck.Code.WARNING
FAILURE = upgradecheck.Code.FAILURE

PLUGIN = """\
[DEFAULT]
config_source = migration_net

[migration_net]
driver = nova_migration_net
"""


def make_certificate(path, ips=(), names=(), days=30, common_name='dest'):
    """A self-signed PEM certificate with this subjectAltName and CN."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=60))
               .not_valid_after(now + datetime.timedelta(days=days)))
    entries = ([x509.IPAddress(ipaddress.ip_address(i)) for i in ips] +
               [x509.DNSName(n) for n in names])
    if entries:
        builder = builder.add_extension(x509.SubjectAlternativeName(entries),
                                        critical=False)
    cert = builder.sign(key, hashes.SHA256())
    with open(path, 'wb') as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return path


class StatusTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.interfaces = mn_fixtures.MIGRATION_HOST_INTERFACES
        # Opening the plugin's config source activates it in this process.
        self.addCleanup(activation.deactivate)

    def checks(self, nova_conf='', args=()):
        [path] = self.create_tempfiles([('nova', nova_conf)])
        conf = cfg.ConfigOpts()
        status.register_opts(conf)
        conf(list(args), default_config_files=[path])
        return status.Checks(conf, interfaces=self.table)

    def table(self):
        if isinstance(self.interfaces, Exception):
            raise self.interfaces
        return self.interfaces

    def assertResult(self, code, details, result):
        self.assertEqual((code, details), (result.code, result.details))


class TestOptionCheck(StatusTestCase):

    def test_unset_without_the_plugin_is_stock(self):
        self.assertResult(
            SUCCESS, '[DEFAULT] my_live_migration_ip is unset: live '
            'migrations to this host use its hostname, as stock nova does.',
            self.checks()._check_option())

    def test_unset_with_the_plugin_enabled_warns(self):
        result = self.checks(PLUGIN)._check_option()
        self.assertEqual(WARNING, result.code)
        self.assertIn('use its hostname (the management network)',
                      result.details)

    def test_explicit_value_is_reported_with_its_file(self):
        checks = self.checks(PLUGIN + '[DEFAULT]\n'
                             'my_live_migration_ip = 172.168.1.15\n')
        [path] = checks.conf.default_config_files
        self.assertResult(
            SUCCESS, '[DEFAULT] my_live_migration_ip is 172.168.1.15 (from '
            '%s).' % path, checks._check_option())

    def test_value_from_networks_is_reported_with_network_and_interface(self):
        self.useFixture(mn_fixtures.InterfacesFixture())
        checks = self.checks(PLUGIN + 'migration_networks = 172.168.0.0/16\n')
        self.assertResult(
            SUCCESS, '[DEFAULT] my_live_migration_ip is 172.168.1.15 (from '
            '[migration_net] migration_networks 172.168.0.0/16, interface '
            'eth1).', checks._check_option())

    def test_invalid_value_fails_as_nova_compute_would(self):
        checks = self.checks('[DEFAULT]\nmy_live_migration_ip = compute1\n')
        result = checks._check_option()
        self.assertEqual(FAILURE, result.code)
        self.assertTrue(result.details.startswith(
            "Invalid [DEFAULT] my_live_migration_ip 'compute1': "),
            result.details)
        self.assertTrue(result.details.endswith(
            'nova-compute refuses to start with it: fix the value.'))

    def test_networks_matching_no_local_address_fail(self):
        self.useFixture(mn_fixtures.InterfacesFixture())
        result = self.checks(
            PLUGIN + 'migration_networks = 10.20.0.0/16\n')._check_option()
        self.assertEqual(FAILURE, result.code)
        self.assertIn('none of the addresses of this host', result.details)


class TestInterfaceCheck(StatusTestCase):

    def test_address_on_an_interface_succeeds_naming_it(self):
        self.assertResult(
            SUCCESS, '172.168.1.15 is assigned to eth1.',
            self.checks('[DEFAULT]\nmy_live_migration_ip = 172.168.1.15\n')
            ._check_interface())

    def test_ipv6_address_on_an_interface_succeeds(self):
        self.assertResult(
            SUCCESS, 'fd00:30::15 is assigned to eth1.',
            self.checks('[DEFAULT]\nmy_live_migration_ip = fd00:30::15\n')
            ._check_interface())

    def test_address_on_no_interface_warns_as_nova_compute_does(self):
        result = self.checks(
            '[DEFAULT]\nmy_live_migration_ip = 172.168.1.99\n'
        )._check_interface()
        self.assertEqual(WARNING, result.code)
        self.assertTrue(result.details.startswith(
            '[DEFAULT] my_live_migration_ip 172.168.1.99: it is not assigned '
            'to any interface of this host. nova-compute starts with it and '
            'warns; '), result.details)

    def test_broadcast_address_of_a_local_network_fails(self):
        result = self.checks(
            '[DEFAULT]\nmy_live_migration_ip = 172.168.255.255\n'
        )._check_interface()
        self.assertEqual(FAILURE, result.code)
        self.assertIn('broadcast address of interface eth1', result.details)

    def test_unreadable_interface_table_warns(self):
        self.interfaces = PermissionError(13, 'Permission denied')
        result = self.checks(
            '[DEFAULT]\nmy_live_migration_ip = 172.168.1.15\n'
        )._check_interface()
        self.assertEqual(WARNING, result.code)
        self.assertIn('Permission denied', result.details)

    def test_unset_option_is_not_checked(self):
        result = self.checks()._check_interface()
        self.assertResult(
            SUCCESS, 'Not checked: no usable [DEFAULT] my_live_migration_ip.',
            result)


class TestInboundAddrCheck(StatusTestCase):

    def check(self, ip=None, inbound=None):
        text = '[DEFAULT]\n'
        if ip:
            text += 'my_live_migration_ip = %s\n' % ip
        if inbound:
            text += '[libvirt]\nlive_migration_inbound_addr = %s\n' % inbound
        return self.checks(text)._check_inbound_addr()

    def test_inbound_addr_unset_succeeds(self):
        self.assertEqual(SUCCESS, self.check(ip='172.168.1.15').code)

    def test_only_inbound_addr_set_succeeds(self):
        self.assertEqual(SUCCESS, self.check(inbound='172.168.1.15').code)

    def test_same_address_in_both_succeeds(self):
        self.assertResult(
            SUCCESS, '[libvirt] live_migration_inbound_addr and [DEFAULT] '
            'my_live_migration_ip are both fd00:30::15.',
            self.check(ip='fd00:30::15', inbound='fd00:30:0::15'))

    def test_different_addresses_warn_which_sources_use_which(self):
        self.assertResult(
            WARNING, '[DEFAULT] my_live_migration_ip (172.168.1.15) and '
            '[libvirt] live_migration_inbound_addr (192.0.2.15) differ: '
            'sources running nova-migration-net stream to 172.168.1.15, '
            'sources without it to 192.0.2.15. Set one of them, or both to '
            'the same address.',
            self.check(ip='172.168.1.15', inbound='192.0.2.15'))

    def test_host_name_as_inbound_addr_warns(self):
        self.assertEqual(WARNING, self.check(ip='172.168.1.15',
                                             inbound='dest.example.org').code)


class TestColdMigrationsCheck(StatusTestCase):

    def check(self, ip=None, inbound=None):
        text = '[DEFAULT]\nmy_ip = 192.0.2.2\n'
        if ip:
            text += 'my_live_migration_ip = %s\n' % ip
        if inbound:
            text += '[libvirt]\nmigration_inbound_addr = %s\n' % inbound
        return self.checks(text)._check_cold_migrations()

    def test_migration_address_carries_disks_unless_inbound_addr_is_set(self):
        self.assertResult(
            SUCCESS, 'Cold migrations, resizes and evacuations to this host '
            'copy their disks to 172.168.1.15, its migration address: '
            '[libvirt] migration_inbound_addr is not set, so nova-compute '
            'gives it that address. Source hosts connect there with nova\'s '
            'ssh: their known_hosts must accept this host under that '
            'address.', self.check(ip='172.168.1.15'))

    def test_inbound_addr_the_operator_set_is_left_alone(self):
        self.assertResult(
            SUCCESS, 'Cold migrations, resizes and evacuations to this host '
            'copy their disks to 192.0.2.9: [libvirt] migration_inbound_addr '
            'is set, and the plugin leaves it alone.',
            self.check(ip='172.168.1.15', inbound='192.0.2.9'))

    def test_option_unset_is_stock(self):
        self.assertResult(
            SUCCESS, 'Cold migrations, resizes and evacuations to this host '
            'copy their disks to 192.0.2.2, [libvirt] migration_inbound_addr, '
            'as stock nova does.', self.check())


class TestActivationCheck(StatusTestCase):

    def test_missing_activation_lines_warn_with_the_lines_to_add(self):
        result = self.checks()._check_activation()
        self.assertEqual(WARNING, result.code)
        self.assertIn('"config_source = migration_net"', result.details)
        self.assertIn('"driver = nova_migration_net"', result.details)

    def test_group_without_the_plugin_driver_does_not_count(self):
        # oslo.config logs that [other] sets no driver and goes on.
        result = self.checks('[DEFAULT]\nconfig_source = other\n'
                             )._check_activation()
        self.assertEqual(WARNING, result.code)

    def test_activation_lines_succeed(self):
        self.assertResult(
            SUCCESS, '[DEFAULT] config_source enables the plugin '
            '([migration_net]); it can hook this nova.',
            self.checks(PLUGIN)._check_activation())

    def test_any_group_name_with_the_driver_counts(self):
        result = self.checks(
            '[DEFAULT]\nconfig_source = mignet\n'
            '[mignet]\ndriver = nova_migration_net\n')._check_activation()
        self.assertEqual(SUCCESS, result.code)
        self.assertIn('([mignet])', result.details)

    def test_nova_the_plugin_cannot_hook_fails(self):
        self.useFixture(mn_fixtures.UnknownNovaFixture())
        result = self.checks(PLUGIN)._check_activation()
        self.assertEqual(FAILURE, result.code)
        self.assertIn('cannot hook this nova (LibvirtDriver.live_migration('
                      'self, context, instance, dest, post_method, '
                      'recover_method, block_migration, migrate_data, '
                      'new_argument) instead of', result.details)


NOVA_34 = mn_fixtures.requires_nova(
    34, 'nova 33 chooses eventlet before it parses nova.conf')

EVENTLET = '[DEFAULT]\nconcurrency_backend = eventlet\n'


class TestEarlyImportsCheck(StatusTestCase):
    """The check runs nova's own early parse of the host's nova.conf."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.EnvironmentVariable(
            early_imports.ENVIRONMENT))

    @NOVA_34
    def test_eventlet_in_nova_conf_with_config_source_fails(self):
        result = self.checks(EVENTLET + PLUGIN)._check_early_imports()
        self.assertEqual(FAILURE, result.code)
        self.assertTrue(result.details.startswith(
            '[DEFAULT] concurrency_backend is eventlet, and nova-compute\'s '
            'early parse of nova.conf imports oslo_context.context and '
            'urllib3 before eventlet patches them'), result.details)
        # The advice of nova-compute's own ERROR line.
        self.assertIn(early_imports.FIX, result.details)
        self.assertIn('fail with RecursionError', result.details)

    def test_the_environment_variable_chooses_before_the_parse(self):
        self.useFixture(fixtures.EnvironmentVariable(
            early_imports.ENVIRONMENT, 'false'))
        self.assertResult(
            SUCCESS, 'OS_NOVA_DISABLE_EVENTLET_PATCHING=false in this '
            'environment: nova-compute started with it chooses its '
            'concurrency mode before it parses nova.conf, so config_source '
            'imports nothing before monkey patching.',
            self.checks(EVENTLET + PLUGIN)._check_early_imports())

    @NOVA_34
    def test_native_threading_succeeds(self):
        self.assertResult(
            SUCCESS, '[DEFAULT] concurrency_backend is auto: nova-compute 34 '
            'runs in native threading mode and patches nothing.',
            self.checks(PLUGIN)._check_early_imports())

    def test_without_config_source_nothing_is_imported(self):
        result = self.checks(EVENTLET)._check_early_imports()
        self.assertEqual(SUCCESS, result.code)
        self.assertIn('config_source is empty', result.details)


class TestTLSCertificateCheck(StatusTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(mn_fixtures.fixtures.TempDir()).path
        self.libvirt_cert = os.path.join(self.dir, 'servercert.pem')
        self.qemu_cert = os.path.join(self.dir, 'server-cert.pem')

    def check(self, libvirt_conf, ip='172.168.1.15', host=None):
        text = '[DEFAULT]\n'
        if ip:
            text += 'my_live_migration_ip = %s\n' % ip
        if host:
            text += 'host = %s\n' % host
        text += '[libvirt]\n' + libvirt_conf
        return self.checks(text, [
            '--libvirt-server-cert', self.libvirt_cert,
            '--qemu-server-cert', self.qemu_cert])._check_tls_certificate()

    def test_without_tls_nothing_is_checked(self):
        result = self.check('live_migration_scheme = tcp\n')
        self.assertEqual(SUCCESS, result.code)
        self.assertTrue(result.details.startswith('Not checked: '))

    def test_tls_scheme_with_the_ip_in_subject_alt_name_succeeds(self):
        make_certificate(self.libvirt_cert, ips=['192.0.2.15', '172.168.1.15'],
                         names=['dest'])
        self.assertResult(
            SUCCESS, '%s name 172.168.1.15 in subjectAltName.'
            % self.libvirt_cert, self.check('live_migration_scheme = tls\n'))

    def test_tls_scheme_without_the_ip_fails_naming_what_it_has(self):
        make_certificate(self.libvirt_cert, ips=['192.0.2.15'],
                         names=['dest', '172.168.1.15'])
        self.assertResult(
            FAILURE, "libvirtd's certificate %s has no IP:172.168.1.15 in "
            "subjectAltName (it has: IP:192.0.2.15, DNS:dest, "
            "DNS:172.168.1.15): reissue it with IP:172.168.1.15 added. "
            "Sources refuse TLS connections to 172.168.1.15 until then."
            % self.libvirt_cert, self.check('live_migration_scheme = tls\n'))

    def test_certificate_without_subject_alt_name_fails(self):
        make_certificate(self.libvirt_cert)
        result = self.check('live_migration_scheme = tls\n')
        self.assertEqual(FAILURE, result.code)
        self.assertIn('(it has: none)', result.details)

    def test_native_tls_needs_the_hostname_not_the_ip(self):
        # Stock certificates: the host's name, no migration IP.
        make_certificate(self.qemu_cert, ips=['192.0.2.15'],
                         names=['dest.example.org'])
        # No libvirtd certificate: the tcp scheme does not need one.
        self.assertResult(
            SUCCESS, 'Native TLS: sources running nova-migration-net '
            "connect libvirt to this host's name dest.example.org, stream "
            'to fd00:30::15 and have TLS verify dest.example.org '
            '(tls.destination, libvirt 6.0.0 or later on the source). %s '
            'cover dest.example.org; the certificates need not name '
            'fd00:30::15.' % self.qemu_cert,
            self.check('live_migration_with_native_tls = true\n',
                       ip='fd00:30::15', host='dest.example.org'))

    def test_native_tls_certificate_with_only_the_ip_fails(self):
        make_certificate(self.qemu_cert, ips=['172.168.1.15'],
                         common_name='other')
        self.assertResult(
            FAILURE, 'Native TLS: sources running nova-migration-net '
            "connect libvirt to this host's name dest, stream to "
            '172.168.1.15 and have TLS verify dest (tls.destination, '
            "libvirt 6.0.0 or later on the source). QEMU's certificate %s "
            "does not cover this host's name dest (it has: IP:172.168.1.15, "
            'CN:other): reissue it with DNS:dest in subjectAltName, or set '
            '[DEFAULT] host to the name it has. Sources refuse TLS '
            'connections to this host until then.' % self.qemu_cert,
            self.check('live_migration_with_native_tls = true\n',
                       host='dest'))

    def test_native_tls_common_name_counts_without_dns_entries(self):
        make_certificate(self.qemu_cert, ips=['192.0.2.15'],
                         common_name='dest')
        self.assertEqual(SUCCESS, self.check(
            'live_migration_with_native_tls = true\n', host='dest').code)

    def test_native_tls_common_name_ignored_when_dns_entries_exist(self):
        make_certificate(self.qemu_cert, names=['other'], common_name='dest')
        self.assertEqual(FAILURE, self.check(
            'live_migration_with_native_tls = true\n', host='dest').code)

    def test_native_tls_wildcard_covers_one_label(self):
        make_certificate(self.qemu_cert, names=['*.example.org'])
        self.assertEqual(SUCCESS, self.check(
            'live_migration_with_native_tls = true\n',
            host='Dest.Example.org').code)
        self.assertEqual(FAILURE, self.check(
            'live_migration_with_native_tls = true\n',
            host='dest.rack1.example.org').code)

    def test_tls_scheme_and_native_tls_check_both_for_the_hostname(self):
        # The libvirt connection stays on the hostname too.
        make_certificate(self.libvirt_cert, ips=['172.168.1.15'],
                         common_name='172.168.1.15')
        make_certificate(self.qemu_cert, names=['dest'])
        result = self.check('live_migration_scheme = tls\n'
                            'live_migration_with_native_tls = true\n',
                            host='dest')
        self.assertEqual(FAILURE, result.code)
        self.assertIn("libvirtd's certificate %s does not cover this host's "
                      "name dest" % self.libvirt_cert, result.details)
        self.assertNotIn('QEMU', result.details)
        make_certificate(self.libvirt_cert, names=['dest'])
        self.assertEqual(SUCCESS, self.check(
            'live_migration_scheme = tls\n'
            'live_migration_with_native_tls = true\n', host='dest').code)

    def test_missing_certificate_fails(self):
        self.assertResult(
            FAILURE, "Cannot read libvirtd's certificate %s: No such file "
            "or directory. Sources refuse TLS connections to 172.168.1.15 "
            "until then." % self.libvirt_cert,
            self.check('live_migration_scheme = tls\n'))

    def test_file_that_is_not_a_certificate_fails(self):
        with open(self.libvirt_cert, 'w') as f:
            f.write('not a certificate\n')
        result = self.check('live_migration_scheme = tls\n')
        self.assertEqual(FAILURE, result.code)
        self.assertIn('is not a PEM certificate', result.details)

    def test_expired_certificate_fails(self):
        make_certificate(self.libvirt_cert, ips=['172.168.1.15'], days=-1)
        result = self.check('live_migration_scheme = tls\n')
        self.assertEqual(FAILURE, result.code)
        self.assertIn('expired on', result.details)

    def test_without_migration_ip_nothing_is_checked(self):
        result = self.check('live_migration_scheme = tls\n', ip=None)
        self.assertEqual(SUCCESS, result.code)
        self.assertIn('against the hostname', result.details)

    def test_standard_certificate_paths_are_the_defaults(self):
        checks = self.checks()
        self.assertEqual(
            ('/etc/pki/libvirt/servercert.pem',
             '/etc/pki/qemu/server-cert.pem'),
            (checks.conf.libvirt_server_cert, checks.conf.qemu_server_cert))


class Listener:
    """A TCP listener on a free port of ``host`` (loopback only)."""

    def __init__(self, test_case, host='127.0.0.1'):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        test_case.addCleanup(self.socket.close)
        self.socket.bind((host, 0))
        self.socket.listen(8)
        self.port = self.socket.getsockname()[1]

    def accepted_from(self):
        self.socket.settimeout(5)
        connection, address = self.socket.accept()
        connection.close()
        return address[0]


def closed_port():
    """A loopback port with nobody listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class TestPeersCheck(StatusTestCase):

    def check(self, args, libvirt_conf=''):
        return self.checks('[libvirt]\n' + libvirt_conf,
                           args)._check_peers()

    def test_without_peers_nothing_is_checked(self):
        result = self.check([])
        self.assertEqual(SUCCESS, result.code)
        self.assertTrue(result.details.startswith('Not checked: no --peer'))

    def test_peer_answering_on_the_port_succeeds(self):
        listener = Listener(self)
        self.assertResult(
            SUCCESS, '127.0.0.1 answered on port %d.' % listener.port,
            self.check(['--peer', '127.0.0.1',
                        '--libvirt-port', str(listener.port)]))

    def test_peer_not_answering_fails_naming_peer_port_and_error(self):
        port = closed_port()
        result = self.check(['--peer', '127.0.0.1', '--libvirt-port',
                             str(port), '--peer-timeout', '2'])
        self.assertEqual(FAILURE, result.code)
        self.assertTrue(result.details.startswith(
            'No answer from 127.0.0.1 port %d: Connection refused. Check '
            'that libvirtd listens' % port), result.details)

    def test_every_peer_is_checked(self):
        listener = Listener(self)
        result = self.check(['--peer', '127.0.0.1', '--peer', 'dest',
                             '--libvirt-port', str(listener.port)])
        self.assertEqual(FAILURE, result.code)
        self.assertEqual(
            "No answer from dest port %d: not an IP address (give the "
            "peer's migration address). Check that libvirtd listens on the "
            "peers' migration addresses, and the routes and firewalls "
            "between the migration addresses." % listener.port,
            result.details)

    def test_port_follows_the_live_migration_scheme(self):
        # Nobody may listen there; the message names the port either way.
        for scheme, port in (('tcp', 16509), ('tls', 16514)):
            result = self.check(['--peer', '127.0.0.1', '--peer-timeout',
                                 '2'],
                                'live_migration_scheme = %s\n' % scheme)
            self.assertIn('port %d' % port, result.details)

    def test_native_tls_probes_libvirtd_on_the_peer_hostname(self):
        listener = Listener(self)
        result = self.checks(
            '[DEFAULT]\nmy_live_migration_ip = 127.0.0.2\n'
            '[libvirt]\nlive_migration_with_native_tls = true\n',
            ['--peer', 'localhost', '--libvirt-port', str(listener.port)]
        )._check_peers()
        self.assertEqual(SUCCESS, result.code)
        self.assertTrue(result.details.startswith(
            "localhost answered on port %d. With native TLS, libvirtd's "
            "connection goes to the destination's hostname" % listener.port),
            result.details)
        # Over the management network: not from the migration address.
        self.assertEqual('127.0.0.1', listener.accepted_from())

    def test_connection_starts_from_the_migration_address(self):
        listener = Listener(self)
        self.assertIsNone(status.connect_problem(
            '127.0.0.1', listener.port, source='127.0.0.2'))
        self.assertEqual('127.0.0.2', listener.accepted_from())

    def test_source_address_of_the_other_ip_version_is_not_used(self):
        listener = Listener(self)
        self.assertIsNone(status.connect_problem(
            '127.0.0.1', listener.port, source='fd00:30::15'))
        self.assertEqual('127.0.0.1', listener.accepted_from())


# The command as an operator runs it: nova-migration-net-status's main().
COMMAND = textwrap.dedent("""\
    import sys
    from nova_migration_net.cmd import status
    sys.exit(status.main(sys.argv[1:]))
    """)


class TestExitCode(StatusTestCase):
    """The worst result is the exit code, as oslo.upgradecheck defines."""

    def test_everything_ready_is_success(self):
        checks = self.checks(PLUGIN + '[DEFAULT]\n'
                             'my_live_migration_ip = 172.168.1.15\n')
        self.assertEqual(SUCCESS, checks.check())

    def test_a_warning_is_the_worst_result(self):
        checks = self.checks('[DEFAULT]\n'
                             'my_live_migration_ip = 172.168.1.15\n')
        self.assertEqual(WARNING, checks.check())

    def test_a_failure_is_the_worst_result(self):
        checks = self.checks(PLUGIN + '[DEFAULT]\n'
                             'my_live_migration_ip = 172.168.255.255\n')
        self.assertEqual(FAILURE, checks.check())


class TestCommand(test.NoDBTestCase):
    """The command in a process of its own, as an operator runs it."""

    def run_command(self, nova_conf, *args):
        [path] = self.create_tempfiles([('nova', nova_conf)])
        env = dict(os.environ, PYTHONWARNINGS='ignore')
        return subprocess.run(
            [sys.executable, '-c', COMMAND, '--config-file', path] +
            list(args) + ['upgrade', 'check', '--json'],
            env=env, capture_output=True, text=True, timeout=120)

    def results(self, process):
        report = json.loads(process.stdout.splitlines()[-1])
        return {c['check']: c['result'] for c in report['checks']}

    def test_console_script_entry_point_is_main(self):
        [entry_point] = [
            e for e in importlib.metadata.entry_points(
                group='console_scripts')
            if e.name == 'nova-migration-net-status']
        self.assertIs(status.main, entry_point.load())

    def test_ready_host_exits_0(self):
        # In a network namespace holding 172.168.1.15, this host's real
        # interface table is the namespace's.
        wrapper = test_config_source.namespace_wrapper(self)
        [path] = self.create_tempfiles([('nova', PLUGIN + (
            'migration_networks = 172.168.0.0/16\n'))])
        process = subprocess.run(
            wrapper + [sys.executable, '-c', COMMAND, '--config-file', path,
                       'upgrade', 'check', '--json'],
            env=dict(os.environ, PYTHONWARNINGS='ignore'),
            capture_output=True, text=True, timeout=120)
        self.assertEqual(0, process.returncode, process.stdout)
        self.assertEqual(
            {'Migration address option': 0,
             'Migration address on this host': 0,
             'live_migration_inbound_addr': 0, 'Plugin activation': 0,
             'Cold migrations and resizes': 0,
             'Eventlet and config_source': 0, 'TLS certificate': 0,
             'Peers on the migration plane': 0},
            self.results(process))

    def test_missing_activation_lines_exit_1(self):
        process = self.run_command('')
        self.assertEqual(1, process.returncode, process.stdout)
        self.assertEqual(1, self.results(process)['Plugin activation'])

    def test_invalid_address_exits_2(self):
        process = self.run_command(
            PLUGIN + '[DEFAULT]\nmy_live_migration_ip = 127.0.0.1\n')
        self.assertEqual(2, process.returncode, process.stdout)
        self.assertEqual(2, self.results(process)['Migration address option'])

    @NOVA_34
    def test_eventlet_in_nova_conf_exits_2_until_the_environment_says(self):
        conf = EVENTLET + PLUGIN + 'my_live_migration_ip = 172.168.1.15\n'
        self.useFixture(fixtures.EnvironmentVariable(
            early_imports.ENVIRONMENT))
        process = self.run_command(conf)
        self.assertEqual(2, process.returncode, process.stdout)
        self.assertEqual(2,
                         self.results(process)['Eventlet and config_source'])
        self.useFixture(fixtures.EnvironmentVariable(
            early_imports.ENVIRONMENT, 'false'))
        self.assertEqual(0, self.results(self.run_command(conf))[
            'Eventlet and config_source'])

    def test_peer_answering_on_loopback_exits_0_in_the_table(self):
        listener = Listener(self)
        [path] = self.create_tempfiles([('nova', '')])
        process = subprocess.run(
            [sys.executable, '-c', COMMAND, '--config-file', path, '--peer',
             '127.0.0.1', '--libvirt-port', str(listener.port), 'upgrade',
             'check'],
            env=dict(os.environ, PYTHONWARNINGS='ignore'),
            capture_output=True, text=True, timeout=120)
        # Only the missing activation lines warn.
        self.assertEqual(1, process.returncode, process.stdout)
        self.assertIn('| Check: Peers on the migration plane', process.stdout)
        self.assertIn('127.0.0.1 answered on port %d.' % listener.port,
                      process.stdout)
