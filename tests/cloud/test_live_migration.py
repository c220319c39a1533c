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

"""Live migrations made by real nova-computes, through the API.

Each case runs the two computes as it needs them (plugin installed and
configured or not, the migration IP, the concurrency mode, the migration
transport), boots a noise server on compute-a and live-migrates it to
compute-b with ``os-migrateLive``: a block migration, as the hosts share
no storage, but in the tunnelled case, whose instances directory is the
cloud's GlusterFS volume on both hosts. It passes only if
:meth:`scenario.CloudTestCase.assertMigrated` holds; the transport cases
also count QEMU's streams, or libvirtd's connection
(:mod:`tests.cloud.streams`). They cannot see whether a stream was
encrypted: for native TLS they rely on the source's log.
"""

import os
import re
import shutil
import subprocess
import unittest

from nova_migration_net import early_imports
from tests.cloud import scenario
from tests.cloud.scenario import ipv4
from tests.cloud.scenario import ipv6
from tests.cloud.services import base
from tests.cloud.services import compute
from tests.cloud import streams
from tests.hypervisor import test_planes
from tests.hypervisor import testbed


def migration_cases():
    """The tests that live-migrate (and record a result), in order."""
    return [name for name in test_planes.test_names(TestLiveMigration)
            if 'check_migration' in
            getattr(TestLiveMigration, name).__code__.co_names]


IPV4_PLANE = 'streams over the migration plane to 172.30.0.2'
# What the source says with native TLS: the data to the migration IP, the
# certificate checked against the hostname.
TLS_PLANE = (
    "streams over the migration plane to 172.30.0.2, the destination's "
    "my_live_migration_ip; native TLS verifies the destination's "
    "certificate against its hostname compute-b (libvirt connection on "
    "compute-b, tls.destination compute-b)")
TLS_CALL = 'migrate_uri tcp://172.30.0.2 and tls.destination compute-b.'
# What eventlet patching too late for urllib3 makes of an HTTPS request.
RECURSION = 'RecursionError: maximum recursion depth exceeded'
# Eventlet chosen in a nova command's environment, before it reads nova.conf.
EVENTLET_ENV = compute.CONCURRENCY['eventlet'][1]
# One network list for every host: each takes its own address in it.
MIGRATION_NETWORKS = '172.30.0.0/24, fd00:30::/64'
PARALLEL = 2


def native_tls(host, **kwargs):
    """The plugin with the IPv4 migration IP, and QEMU's native TLS."""
    return ipv4(host)._replace(native_tls=True, **kwargs)


def tunnelled(host):
    """The plugin with the IPv4 migration IP, tunnelled, on the cloud's
    GlusterFS volume (tunnelled migration cannot copy local disks).
    """
    return ipv4(host)._replace(tunnelled=True, shared_storage=True)


def masked(output):
    """``output`` without the time and process id of its log lines."""
    return re.sub(r'^\d{4}-\d\d-\d\d [\d:.]+ \d+ ', '', output,
                  flags=re.M)


class TestLiveMigration(scenario.CloudTestCase):
    """One migration per case."""

    # The cases

    def test_ipv4_migration_ip_streams_over_the_migration_link(self):
        self.check_migration(
            testbed.MIGR_IF, ipv4(self.a), ipv4(self.b),
            'streams over the migration plane to 172.30.0.2')

    def test_ipv4_migration_ip_in_eventlet_mode(self):
        self.check_migration(
            testbed.MIGR_IF, ipv4(self.a, 'eventlet'),
            ipv4(self.b, 'eventlet'),
            'streams over the migration plane to 172.30.0.2')

    def test_ipv6_migration_ip_streams_over_the_migration_link(self):
        self.check_migration(
            testbed.MIGR_IF, ipv6(self.a), ipv6(self.b),
            'streams over the migration plane to fd00:30::2')

    def test_option_unset_streams_over_the_management_link(self):
        self.check_migration(
            testbed.MGMT_IF, scenario.PLUGIN_UNSET, scenario.PLUGIN_UNSET,
            'streams over the management plane to its hostname')

    def test_control_plane_runs_stock_with_the_plugin_lines(self):
        """nova-api, -conductor and -scheduler started with the plugin
        installed and its lines in their nova.conf: the plugin registered
        its option there and activated nowhere.
        """
        self.computes(ipv4(self.a), ipv4(self.b))
        nova = self.cloud.nova
        for service in ('api', 'conductor', 'scheduler'):
            with open(nova.log(service)) as f:
                log = f.read()
            self.assertRegex(log, r'my_live_migration_ip +=',
                             'the plugin registered no option in nova-%s'
                             % service)
            self.assertNotIn('nova-migration-net is active', log)
            for bad in scenario.BAD_START_UP + (scenario.IMPORTED_EARLY,):
                self.assertNotIn(bad, log)

    def test_nova_manage_and_status_exit_as_stock_with_the_plugin_lines(
            self):
        """nova-manage's commands here make no HTTPS request; nova-status's
        Placement check does, so it runs in eventlet mode chosen in its
        environment, as nova-compute does
        (:meth:`test_nova_status_choosing_eventlet_itself_fails_over_https`).
        """
        self.computes(ipv4(self.a), ipv4(self.b))
        with_plugin = self.cloud.nova.conf
        without = os.path.join(self.cloud.work_dir, 'nova-stock.conf')
        self.stock_copy(with_plugin, without)
        commands = (('nova-manage', 'cell_v2', 'list_cells'),
                    ('nova-manage', 'db', 'version'),
                    ('nova-manage', 'api_db', 'version'),
                    ('nova-status', 'upgrade', 'check'))
        for command, *args in commands:
            env = EVENTLET_ENV if command == 'nova-status' else {}
            stock = self.nova_command(command, without, *args, env=env)
            plugin = self.nova_command(command, with_plugin, *args, env=env)
            self.assertEqual(masked(stock.stdout), masked(plugin.stdout),
                             command)
            self.assertEqual(stock.returncode, plugin.returncode,
                             '%s %s: %s' % (command, args, plugin.stderr))
            for bad in scenario.BAD_START_UP:
                self.assertNotIn(bad, plugin.stderr)
            if command == 'nova-manage':
                self.assertEqual(0, stock.returncode, stock.stderr)

    @staticmethod
    def stock_copy(conf, path):
        """``conf`` without the plugin's lines, at ``path``."""
        shutil.copy(conf, path)
        for section, option in compute.PLUGIN_LINES:
            base.iniunset(path, section, option)

    def nova_command(self, command, conf, *args, env=None):
        """``command --config-file conf args`` on compute-a, from its nova
        venv (the plugin installed), with ``env`` in its environment.
        """
        return subprocess.run(
            self.cloud.nsenter(self.a)
            + [self.cloud.nova.bin(command), '--config-file', conf]
            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, timeout=120, env=dict(base.BASE_ENV, **(env or {})))

    def test_nova_status_choosing_eventlet_itself_fails_over_https(self):
        """A known hazard, pinned as measured: nova-status, like
        nova-manage, runs in eventlet mode unless its environment says
        otherwise, and chooses in nova 34's early parse of nova.conf. With
        the plugin's ``config_source`` there, oslo.config has imported
        urllib3 by then (see
        :meth:`test_eventlet_mode_imports_nothing_before_patching`), and
        ``upgrade check`` dies in its Placement check, its first HTTPS
        request, with nova bug 1808951's RecursionError: exit status 255
        and the traceback. The stock nova.conf runs every check.
        """
        self.computes(ipv4(self.a), ipv4(self.b))
        with_plugin = self.cloud.nova.conf
        without = os.path.join(self.cloud.work_dir, 'nova-stock.conf')
        self.stock_copy(with_plugin, without)
        stock = self.nova_command('nova-status', without, 'upgrade', 'check')
        self.assertIn('Check: Placement API', stock.stdout)
        self.assertNotIn(RECURSION, stock.stdout)
        plugin = self.nova_command('nova-status', with_plugin, 'upgrade',
                                   'check')
        self.assertEqual(255, plugin.returncode, plugin.stdout)
        self.assertIn(RECURSION, plugin.stdout)
        self.assertIn('create_urllib3_context', plugin.stdout)
        self.assertIn(scenario.IMPORTED_EARLY, plugin.stderr)

    @unittest.expectedFailure
    def test_eventlet_mode_imports_nothing_before_patching(self):
        """Known failure: with ``config_source`` in nova.conf, nova's early
        parse (``nova.monkey_patch``, before it patches) makes oslo.config
        load every ``oslo.config.driver`` entry point to validate
        ``[migration_net] driver``: castellan's imports oslo_log and
        oslo_context, oslo.config's remote_file imports requests and
        urllib3. nova then warns that oslo_context.context and urllib3
        were imported before monkey patching (oslo_context's thread-local
        request store is then not green). Stock nova.conf: no warning.
        The plugin is loaded by that very parse and cannot prevent it; what
        the imports break behind TLS is pinned by
        :meth:`test_nova_status_choosing_eventlet_itself_fails_over_https`
        and
        :meth:`test_eventlet_from_nova_conf_dies_from_the_environment_migrates`.
        """
        self.computes(ipv4(self.a), ipv4(self.b))
        stock = os.path.join(self.cloud.work_dir, 'nova-stock.conf')
        self.stock_copy(self.cloud.nova.conf, stock)
        self.assertNotIn(scenario.IMPORTED_EARLY, self.nova_command(
            'nova-manage', stock, 'db', 'version').stderr)
        self.assertNotIn(scenario.IMPORTED_EARLY, self.nova_command(
            'nova-manage', self.cloud.nova.conf, 'db', 'version').stderr)

    def test_eventlet_from_nova_conf_dies_from_the_environment_migrates(
            self):
        """nova-compute 34 with the plugin on compute-b, in eventlet mode
        chosen two ways. ``concurrency_backend = eventlet`` in nova.conf:
        nova's early parse chose it after oslo.config had imported urllib3,
        and the service exits at start-up on its first HTTPS request, the
        version discovery of the placement client it makes before it loads
        its driver, with RecursionError (nova bug 1808951); the plugin's
        ERROR line (:mod:`nova_migration_net.early_imports`), logged when
        nova-compute starts its compute manager, came first and says why.
        ``OS_NOVA_DISABLE_EVENTLET_PATCHING=false`` instead: the same host
        starts clean, with no word of early imports, and takes a migration
        on the plane.
        """
        with self.logs_on_failure():
            node = self.node(self.b)
            with self.assertRaises(base.Died):
                self.start_eventlet_from_nova_conf()
            log = node.log_text()
            self.assertIn('CRITICAL nova', log)
            self.assertIn(RECURSION, log)
            # The plugin said why, once, before nova-compute died.
            [line] = [line for line in log.splitlines()
                      if early_imports.MARK in line]
            self.assertIn(' ERROR nova_migration_net.early_imports ', line)
            self.assertIn('OS_NOVA_DISABLE_EVENTLET_PATCHING=false in '
                          'nova-compute\'s environment', line)
            self.assertLess(log.index(line), log.index('CRITICAL nova'))
            self.assertIn('report.SchedulerReportClient()', log)
            self.assertIn('create_urllib3_context', log)
            self.assertIn(scenario.IMPORTED_EARLY, node.output_text())
        self.check_migration(testbed.MIGR_IF, ipv4(self.a),
                             ipv4(self.b, 'eventlet'), IPV4_PLANE)
        for text in (node.log_text(), node.output_text()):
            self.assertNotIn(early_imports.MARK, text)
            self.assertNotIn(RECURSION, text)

    def start_eventlet_from_nova_conf(self):
        """Start compute-b with the plugin and ``concurrency_backend =
        eventlet`` in nova.conf, and wait for it up; at clean-up, start it
        as the cloud came up if it died.
        """
        self.computes(ipv4(self.a), ipv4(self.b))
        node = self.node(self.b)
        self.addCleanup(self.restart_if_dead, node, ipv4(self.b))
        compute.restart_all([(node, ipv4(self.b, 'eventlet-conf'))])

    def restart_if_dead(self, node, spec):
        """Start ``node`` as ``spec`` says if its nova-compute exited."""
        if not node.daemon.alive():
            compute.restart_all([(node, spec)])

    def test_stock_computes_stream_over_the_management_link(self):
        self.check_migration(testbed.MGMT_IF, compute.STOCK, compute.STOCK)

    def test_stock_computes_in_eventlet_mode(self):
        self.check_migration(testbed.MGMT_IF, scenario.EVENTLET_STOCK,
                             scenario.EVENTLET_STOCK)

    # Transports

    def streams(self, ports=streams.MIGRATION_PORTS):
        """A :class:`streams.StreamCounter` of compute-a's connections to
        compute-b's ``ports`` (QEMU's migration ports by default) over the
        migration link.
        """
        return streams.counting(self.cloud.host_pid(self.a),
                                self.b.migration_ipv4, ports)

    def test_native_tls_streams_over_the_migration_link(self):
        """Certificates that name the hosts by hostname only (libvirt's
        QEMU finds them in ``migrate_tls_x509_cert_dir``, the testbed's
        qemu.conf): QEMU checks compute-b's against ``compute-b``.
        """
        self.assertEqual('DNS:compute-b',
                         self.cloud.testbed.certificate_names(self.b))
        with self.streams() as counter:
            self.check_migration(testbed.MIGR_IF, native_tls(self.a),
                                 native_tls(self.b), TLS_PLANE)
        self.assertIn(TLS_CALL, self.node(self.a).log_text())
        self.assertEqual(1, counter.peak)

    def test_native_tls_with_parallel_connections(self):
        with self.streams() as counter:
            self.check_migration(
                testbed.MIGR_IF, native_tls(self.a, parallel=PARALLEL),
                native_tls(self.b, parallel=PARALLEL), TLS_PLANE)
        self.assertIn(TLS_CALL, self.node(self.a).log_text())
        self.assertEqual(1 + PARALLEL, counter.peak)

    def test_parallel_connections_stream_over_the_migration_link(self):
        """nova's multifd: the main stream and one per connection, all to
        the migration IP.
        """
        with self.streams() as counter:
            self.check_migration(
                testbed.MIGR_IF, ipv4(self.a)._replace(parallel=PARALLEL),
                ipv4(self.b)._replace(parallel=PARALLEL), IPV4_PLANE)
        self.assertEqual(1 + PARALLEL, counter.peak)

    def test_tunnelled_migration_rides_libvirtd_over_the_migration_link(self):
        """``[libvirt] live_migration_tunnelled`` (deprecated since nova
        23.0.0, still in nova 34): QEMU opens no stream, its memory rides
        the source libvirtd's connection to the destination's libvirtd,
        which nova opens at ``target_connect_addr``, the migration IP.

        Tunnelled migration cannot copy local disks (nova drops
        ``VIR_MIGRATE_NON_SHARED_INC``), so both hosts' instances
        directory is the cloud's GlusterFS volume: nova finds it shared
        and migrates without the disk, and libvirt knows
        ``fuse.glusterfs`` as shared storage (a directory bind-mounted on
        both hosts it refuses as unsafe).
        """
        with self.streams() as qemu, self.streams(
                streams.LIBVIRTD_PORTS) as libvirtd:
            self.check_migration(testbed.MIGR_IF, tunnelled(self.a),
                                 tunnelled(self.b), IPV4_PLANE)
        self.assertEqual((0, 1), (qemu.peak, libvirtd.peak))

    def test_migration_networks_stream_over_the_migration_link(self):
        """One configuration for both hosts, no my_live_migration_ip:
        each advertises its own address in the networks.
        """
        spec = compute.Spec(True, migration_networks=MIGRATION_NETWORKS)
        self.check_migration(testbed.MIGR_IF, spec, spec, IPV4_PLANE)
        for host in (self.a, self.b):
            self.assertIn(
                'will stream to this host at %s' % host.migration_ipv4,
                self.node(host).log_text())
