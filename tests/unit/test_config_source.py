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

"""``my_live_migration_ip`` from ``[migration_net] migration_networks``."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import fixtures
import netaddr
from nova import exception
from nova import test
from oslo_config import cfg
from oslo_config import generator
import testtools

from nova_migration_net import activation
from nova_migration_net import conf as mn_conf
from nova_migration_net import config_source
from nova_migration_net import hooks
from tests import fixtures as mn_fixtures

OPT = mn_conf.migration_net_opts[0]
TABLE = mn_fixtures.MIGRATION_HOST_INTERFACES


def write_file(test_case, name, text):
    path = os.path.join(test_case.useFixture(fixtures.TempDir()).path, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def namespace_wrapper(test_case):
    """A command prefix running a command in a network namespace of its own.

    The namespace has lo up with 172.168.1.15/16 and fd00:30::15/64 on it
    besides loopback; the test is skipped where namespaces cannot be made.
    """
    if not (shutil.which('unshare') and shutil.which('ip')):
        test_case.skipTest('needs unshare and ip')
    setup = ('ip link set lo up && ip addr add 172.168.1.15/16 dev lo '
             '&& ip addr add fd00:30::15/64 dev lo && exec "$@"')
    wrapper = ['unshare', '--net', '--map-root-user', 'sh', '-c', setup,
               'sh']
    probe = subprocess.run(wrapper + ['true'], capture_output=True)
    if probe.returncode != 0:
        test_case.skipTest('cannot create a network namespace: %s'
                           % probe.stderr.decode(errors='replace').strip())
    return wrapper


def networks(*cidrs):
    return [netaddr.IPNetwork(c) for c in cidrs]


# A host with a second migration network on eth2.
TWO_NETWORKS = dict(TABLE, eth2=[
    mn_fixtures.interface(4, '172.31.0.15', '255.255.255.0', '172.31.0.255')])


class TestChooseAddresses(testtools.TestCase):

    def test_first_network_holding_a_local_address_comes_first(self):
        self.assertEqual(
            [(netaddr.IPAddress('172.168.1.15'),
              netaddr.IPNetwork('172.168.0.0/16'), 'eth1'),
             (netaddr.IPAddress('fd00:30::15'),
              netaddr.IPNetwork('fd00:30::/64'), 'eth1')],
            config_source.choose_addresses(
                networks('10.20.0.0/16', '172.168.0.0/16', 'fd00:30::/64'),
                TABLE))

    def test_addresses_follow_the_order_of_the_networks(self):
        self.assertEqual(
            ['172.31.0.15', 'fd00:30::15', '172.168.1.15'],
            [str(a) for a, _, _ in config_source.choose_addresses(
                networks('172.31.0.0/24', 'fd00:30::/64', '172.168.0.0/16'),
                TWO_NETWORKS)])

    def test_overlapping_networks_give_an_address_once(self):
        self.assertEqual(
            ['172.168.1.15'],
            [str(a) for a, _, _ in config_source.choose_addresses(
                networks('172.168.1.0/24', '172.168.0.0/16'), TABLE)])

    def test_first_local_address_in_each_network_is_chosen(self):
        table = {
            'eth2': [mn_fixtures.interface(4, '172.168.7.7', '255.255.0.0')],
            'eth1': [mn_fixtures.interface(4, '172.168.1.20', '255.255.0.0'),
                     mn_fixtures.interface(4, '172.168.1.15', '255.255.0.0')],
        }
        [(address, _, name)] = config_source.choose_addresses(
            networks('172.168.0.0/16'), table)
        self.assertEqual(('172.168.7.7', 'eth2'), (str(address), name))

    def test_no_local_address_in_any_network_chooses_nothing(self):
        self.assertEqual([], config_source.choose_addresses(
            networks('10.20.0.0/16', 'fd00:99::/64'), TABLE))

    def test_ipv4_network_never_matches_an_ipv6_address(self):
        table = {'eth1': [mn_fixtures.interface(6, '::ffff:172.168.1.15')]}
        self.assertEqual([], config_source.choose_addresses(
            networks('172.168.0.0/16'), table))

    def test_zone_index_of_a_link_local_address_is_dropped(self):
        self.assertEqual(
            [('eth0', netaddr.IPAddress('fe80::15'))],
            [(n, a) for n, a in config_source.local_addresses(TABLE)
             if a.version == 6 and a.is_link_local()])

    def test_real_interface_table_has_loopback_in_127_0_0_0_8(self):
        # psutil's real table: every Linux host has 127.0.0.1 on lo.
        [(address, network, _)] = config_source.choose_addresses(
            networks('127.0.0.0/8'), config_source.psutil.net_if_addrs())
        self.assertEqual(('127.0.0.1', '127.0.0.0/8'),
                         (str(address), str(network)))


class TestNetworkType(testtools.TestCase):

    def test_accepts_ipv4_and_ipv6_networks(self):
        network = config_source.Network()
        self.assertEqual(netaddr.IPNetwork('172.168.0.0/16'),
                         network(' 172.168.0.0/16'))
        self.assertEqual(netaddr.IPNetwork('fd00:30::/64'),
                         network('fd00:30::/64'))

    def test_refuses_an_address_without_prefix_length(self):
        error = self.assertRaises(ValueError, config_source.Network(),
                                  '172.168.1.15')
        self.assertIn('not a network in CIDR notation', str(error))

    def test_refuses_host_bits_naming_the_network(self):
        error = self.assertRaises(ValueError, config_source.Network(),
                                  '172.168.1.15/16')
        self.assertEqual("'172.168.1.15/16' has host bits set: the network "
                         "is 172.168.0.0/16", str(error))

    def test_refuses_what_is_not_a_network(self):
        for value in ('compute1/24', '172.168.0.0/33', 'fd00:30::/129',
                      '172.168.0.0/16/8'):
            self.assertRaises(ValueError, config_source.Network(), value)


class TestSource(testtools.TestCase):
    """The source's answer, with fixed interface tables."""

    def source(self, cidrs, table=TABLE):
        conf = cfg.ConfigOpts()
        conf.register_opts(config_source.source_opts, group='migration_net')
        conf([])
        if cidrs is not None:
            conf.set_override('migration_networks', cidrs,
                              group='migration_net')
        self.lookups = 0

        def interfaces():
            self.lookups += 1
            if isinstance(table, Exception):
                raise table
            return table

        return config_source.MigrationNetSource(conf, 'migration_net',
                                                interfaces=interfaces)

    def refusal(self, source):
        error = self.assertRaises(cfg.ConfigSourceValueError, source.get,
                                  None, 'my_live_migration_ip', OPT)
        self.assertNotIn('\n', str(error))
        self.assertTrue(str(error).startswith(
            'cannot choose [DEFAULT] my_live_migration_ip from '
            '[migration_net] migration_networks'), error)
        return str(error)

    def test_gives_the_chosen_address_and_where_it_came_from(self):
        source = self.source('10.20.0.0/16, 172.168.0.0/16')
        self.assertEqual(
            ('172.168.1.15', cfg.LocationInfo(
                cfg.Locations.user,
                '[migration_net] migration_networks 172.168.0.0/16, '
                'interface eth1')),
            source.get(None, 'my_live_migration_ip', OPT))

    def test_gives_nothing_for_other_options(self):
        source = self.source('172.168.0.0/16')
        for group, name in ((None, 'my_ip'),
                            ('libvirt', 'my_live_migration_ip'),
                            ('migration_net', 'migration_networks')):
            self.assertIs(config_source.sources._NoValue,
                          source.get(group, name, OPT)[0])
        self.assertEqual(0, self.lookups)

    def test_gives_nothing_without_networks(self):
        source = self.source(None)
        self.assertEqual((config_source.sources._NoValue, None),
                         source.get('DEFAULT', 'my_live_migration_ip', OPT))
        self.assertEqual(0, self.lookups)

    def test_chooses_once_per_process(self):
        source = self.source('172.168.0.0/16')
        for _ in range(3):
            source.get(None, 'my_live_migration_ip', OPT)
        self.assertEqual(1, self.lookups)

    def test_no_local_address_in_the_networks_is_refused_in_one_line(self):
        message = self.refusal(self.source('10.20.0.0/16, fd00:99::/64'))
        self.assertEqual(
            'cannot choose [DEFAULT] my_live_migration_ip from '
            '[migration_net] migration_networks (10.20.0.0/16, '
            'fd00:99::/64): none of the addresses of this host (127.0.0.1, '
            '::1, 192.0.2.15, fe80::15, 172.168.1.15, fd00:30::15) is in '
            'these networks; add the migration network of this host to the '
            'list, or set my_live_migration_ip on this host', message)

    def test_refusal_is_kept_for_every_lookup(self):
        source = self.source('10.20.0.0/16')
        self.refusal(source)
        self.refusal(source)
        self.assertEqual(1, self.lookups)

    def test_chosen_loopback_address_is_refused_as_an_explicit_one_is(self):
        message = self.refusal(self.source('127.0.0.0/8'))
        self.assertIn('the first address in 127.0.0.0/8 is 127.0.0.1, of '
                      'interface lo, and it is a loopback address', message)

    def test_chosen_link_local_address_is_refused(self):
        message = self.refusal(self.source('fe80::/64'))
        self.assertIn('fe80::15, of interface eth0, and it is an IPv6 '
                      'link-local address', message)

    def test_invalid_networks_are_refused_naming_the_option(self):
        path = write_file(self, 'nova.conf', '[migration_net]\n'
                          'migration_networks = 172.168.1.15/16\n')
        conf = cfg.ConfigOpts()
        conf.register_opts(config_source.source_opts, group='migration_net')
        conf([], default_config_files=[path])
        source = config_source.MigrationNetSource(conf, 'migration_net',
                                                  interfaces=lambda: TABLE)
        message = self.refusal(source)
        self.assertIn("'172.168.1.15/16' has host bits set: the network is "
                      "172.168.0.0/16", message)

    def test_unreadable_interface_table_is_refused(self):
        message = self.refusal(self.source(
            '172.168.0.0/16', PermissionError(13, 'Permission denied')))
        self.assertTrue(message.endswith(
            '(172.168.0.0/16): cannot list the interfaces of this host: '
            '[Errno 13] Permission denied'), message)


NOVA_CONF = """\
[DEFAULT]
config_source = migration_net
%(explicit)s

[migration_net]
driver = nova_migration_net
migration_networks = %(networks)s
"""


class TestNovaConf(test.NoDBTestCase):
    """The driver as oslo.config opens it from a ``nova.conf``.

    nova's test base refuses real interface tables; the host's table is
    :data:`tests.fixtures.MIGRATION_HOST_INTERFACES`.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(mn_fixtures.InterfacesFixture())
        self.addCleanup(activation.deactivate)

    def parse(self, networks, explicit=''):
        [path] = self.create_tempfiles(
            [('nova', NOVA_CONF % {'networks': networks,
                                   'explicit': explicit})])
        conf = cfg.ConfigOpts()
        mn_conf.register_opts(conf)
        conf([], default_config_files=[path])
        return conf, path

    def test_networks_give_my_live_migration_ip(self):
        conf, _ = self.parse('10.20.0.0/16, 172.168.0.0/16')
        self.assertEqual('172.168.1.15', conf.my_live_migration_ip)
        self.assertEqual(
            '[migration_net] migration_networks 172.168.0.0/16, interface '
            'eth1', conf.get_location('my_live_migration_ip').detail)

    def test_explicit_my_live_migration_ip_wins_over_networks(self):
        conf, path = self.parse('172.168.0.0/16',
                                'my_live_migration_ip = 172.168.9.9')
        self.assertEqual('172.168.9.9', conf.my_live_migration_ip)
        self.assertEqual(path,
                         conf.get_location('my_live_migration_ip').detail)

    def test_networks_advertise_their_first_addresses_in_order(self):
        self.useFixture(mn_fixtures.InterfacesFixture(TWO_NETWORKS))
        conf, _ = self.parse(
            '10.20.0.0/16, 172.31.0.0/24, fd00:30::/64, 172.168.0.0/16')
        self.assertEqual(['172.31.0.15', 'fd00:30::15', '172.168.1.15'],
                         hooks.advertised_addresses(conf))
        self.assertEqual('172.31.0.15', conf.my_live_migration_ip)

    def test_unusable_later_address_is_not_advertised(self):
        conf, _ = self.parse('172.168.0.0/16, fe80::/64')
        self.assertEqual(['172.168.1.15'], hooks.advertised_addresses(conf))

    def test_explicit_option_advertises_that_address_alone(self):
        conf, _ = self.parse('172.168.0.0/16, fd00:30::/64',
                             'my_live_migration_ip = 172.168.9.9')
        self.assertEqual(['172.168.9.9'], hooks.advertised_addresses(conf))

    def test_explicit_value_wins_even_where_networks_match_nothing(self):
        conf, _ = self.parse('10.20.0.0/16',
                             'my_live_migration_ip = 172.168.1.15')
        self.assertEqual('172.168.1.15', hooks.configured_migration_ip(conf))

    def test_no_match_stops_start_up_with_one_line(self):
        conf, _ = self.parse('10.20.0.0/16')
        error = self.assertRaises(exception.InvalidConfiguration,
                                  hooks.configured_migration_ip, conf)
        self.assertEqual(
            'Invalid [DEFAULT] my_live_migration_ip: cannot choose [DEFAULT] '
            'my_live_migration_ip from [migration_net] migration_networks '
            '(10.20.0.0/16): none of the addresses of this host (127.0.0.1, '
            '::1, 192.0.2.15, fe80::15, 172.168.1.15, fd00:30::15) is in '
            'these networks; add the migration network of this host to the '
            'list, or set my_live_migration_ip on this host', str(error))

    def test_invalid_networks_stop_start_up_naming_the_option(self):
        conf, _ = self.parse('172.168.0.0')
        error = self.assertRaises(exception.InvalidConfiguration,
                                  hooks.configured_migration_ip, conf)
        self.assertIn('[migration_net] migration_networks', str(error))
        self.assertIn("'172.168.0.0' is not a network in CIDR notation",
                      str(error))

    def test_option_is_listed_for_the_config_generator(self):
        groups = dict(generator._list_opts(
            ['nova_migration_net.config_source']))
        [(group, opts)] = groups['nova_migration_net.config_source']
        self.assertEqual('migration_net', group)
        self.assertEqual(['migration_networks', 'fallback_to_management'],
                         [o.name for o in opts])

    def test_driver_declares_the_option_for_discovery(self):
        self.assertEqual(
            ['migration_networks', 'fallback_to_management'],
            [o.name for o in
             config_source.MigrationNetDriver().list_options_for_discovery()])


# nova's own parse_args on a nova.conf, as nova-compute runs it, with the
# real interface table; prints what nova's CONF reports for the option.
PROBE = textwrap.dedent("""\
    import json, sys
    from nova import config
    config.parse_args(['nova-compute', '--config-file', sys.argv[1]],
                      configure_db=False, init_rpc=False)
    from oslo_config import cfg
    try:
        report = {'value': cfg.CONF.my_live_migration_ip}
    except cfg.ConfigSourceValueError as err:
        report = {'error': str(err)}
    print(json.dumps(report))
    """)


class TestNovaConfInSubprocess(testtools.TestCase):
    """A real ``nova.conf`` and this host's real interfaces."""

    def run_probe(self, networks, wrapper=()):
        path = write_file(self, 'nova.conf',
                          NOVA_CONF % {'networks': networks, 'explicit': ''})
        env = dict(os.environ, PYTHONWARNINGS='ignore')
        result = subprocess.run(
            list(wrapper) + [sys.executable, '-c', PROBE, path], env=env,
            capture_output=True, text=True, timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.splitlines()[-1])

    def test_loopback_network_chooses_127_0_0_1_which_is_refused(self):
        # Every host has 127.0.0.1; the option refuses loopback addresses,
        # chosen or explicit.
        report = self.run_probe('127.0.0.0/8')
        self.assertIn('error', report)
        self.assertIn('the first address in 127.0.0.0/8 is 127.0.0.1, of '
                      'interface lo, and it is a loopback address',
                      report['error'])

    def test_network_namespace_address_becomes_my_live_migration_ip(self):
        wrapper = namespace_wrapper(self)
        self.assertEqual({'value': '172.168.1.15'},
                         self.run_probe('10.20.0.0/16, 172.168.0.0/16',
                                        wrapper))
        self.assertEqual({'value': 'fd00:30::15'},
                         self.run_probe('fd00:30::/64, 172.168.0.0/16',
                                        wrapper))


# nova-compute's own main() with a fixed interface table.
COMPUTE = textwrap.dedent("""\
    import collections, socket, sys
    import psutil
    Address = collections.namedtuple(
        'Address', 'family address netmask broadcast ptp')
    psutil.net_if_addrs = lambda: {
        'lo': [Address(socket.AF_INET, '127.0.0.1', '255.0.0.0', None,
                       None)],
        'eth1': [Address(socket.AF_INET, '172.168.1.15', '255.255.0.0',
                         None, None)]}
    from nova.cmd import compute
    sys.argv = ['nova-compute', '--config-file', sys.argv[1]]
    compute.main()
    """)


class TestNovaComputeStartUp(testtools.TestCase):

    @mn_fixtures.requires_nova(
        34, 'only nova 34 runs nova-compute in threading mode, where it logs '
        'its options, and so stops on them, before the service starts')
    def test_no_match_stops_nova_compute_naming_the_option(self):
        # In threading mode nova-compute logs its options before it starts
        # the service, so the lookup fails there, before init_host.
        path = write_file(self, 'nova.conf', textwrap.dedent("""\
            [DEFAULT]
            config_source = migration_net
            transport_url = fake:/
            concurrency_backend = threading
            compute_driver = libvirt.LibvirtDriver

            [migration_net]
            driver = nova_migration_net
            migration_networks = 10.20.0.0/16
            """))
        # As an operator starts it: nothing in the environment chooses the
        # concurrency mode.
        env = dict(os.environ, PYTHONWARNINGS='ignore')
        env.pop('OS_NOVA_DISABLE_EVENTLET_PATCHING', None)
        result = subprocess.run([sys.executable, '-c', COMPUTE, path],
                                env=env, capture_output=True, text=True,
                                timeout=120)
        # oslo.log writes to stdout unless use_stderr is set.
        output = result.stdout + result.stderr
        self.assertNotEqual(0, result.returncode, output)
        self.assertIn(
            'CRITICAL nova [-] Unhandled error: '
            'oslo_config.cfg.ConfigSourceValueError: cannot choose [DEFAULT] '
            'my_live_migration_ip from [migration_net] migration_networks '
            '(10.20.0.0/16): none of the addresses of this host (127.0.0.1, '
            '172.168.1.15) is in these networks', output)
