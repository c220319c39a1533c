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

"""Bad configuration, hostile peers, and the hooks' error phase."""

import inspect

import ddt
import fixtures
from nova import context as nova_context
from nova import exception
from nova import objects as nova_objects
from nova.objects import base as nova_base
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit import fake_instance
from nova.virt.libvirt import driver as libvirt_driver
from oslo_config import cfg
import testtools

from nova_migration_net import activation
from nova_migration_net import conf as mn_conf
from nova_migration_net import hooks
from nova_migration_net import objects
from nova_migration_net import steering
from tests import fixtures as mn_fixtures

# Not an IP address: the service must not start.
NOT_AN_ADDRESS = {
    'typo': '172.168.1.155.1',
    'comma': '172,168.1.15',
    'short_ipv4': '172.168.1',
    'leading_zero': '172.168.01.15',
    'cidr': '172.168.1.15/16',
    'ipv6_cidr': 'fd00:30::15/64',
    'hostname': 'compute1.example.org',
    'empty': '',
    'ipv6_with_zone': 'fe80::1%eth0',
    'global_ipv6_with_zone': 'fd00:30::15%eth1',
    'bracketed_ipv6': '[fd00:30::15]',
    'with_port': '172.168.1.15:16509',
}
# IP addresses no source can connect to: the service must not start either.
UNUSABLE = {
    'unspecified_ipv4': '0.0.0.0',
    'unspecified_ipv6': '::',
    'loopback_ipv4': '127.0.0.1',
    'loopback_ipv4_other': '127.1.2.3',
    'loopback_ipv6': '::1',
    'loopback_ipv4_mapped': '::ffff:127.0.0.1',
    'multicast_ipv4': '224.0.0.1',
    'multicast_ipv6': 'ff02::1',
    'broadcast': '255.255.255.255',
    'link_local_ipv6': 'fe80::15',
}
# What a hostile or broken peer may put into the serialized object.
HOSTILE = dict(NOT_AN_ADDRESS, **UNUSABLE, **{
    'uri_fragment': '172.168.1.15#x',
    'uri_path': '172.168.1.15/system',
    'uri_query': '172.168.1.15?no_verify=1',
    'uri_userinfo': 'root@172.168.1.15',
    'uri': 'qemu+ssh://evil/system',
    'leading_space': ' 172.168.1.15',
    'trailing_newline': '172.168.1.15\n',
    'tab': '172.168.1.15\t',
    'nul': '172.168.1.15\x00',
    'log_line': '172.168.1.15\n2026-01-01 00:00:00,000 INFO forged',
    'bracketed_ipv6_port': '[fd00:30::15]:49152',
    'fullwidth_digits': '\uff11\uff17\uff12.168.1.15',
    'over_long': '1' * 10000,
    'over_long_ipv6ish': 'fd00:' * 20 + '15',
    'integer': 2896691471,
    'float': 172.168,
    'boolean': True,
    'bytes': b'172.168.1.15',
    'list': ['172.168.1.15'],
    'dict': {'address': '172.168.1.15'},
})


class Case(tuple):
    """``(name, value)`` for ddt; tests are named after ``name``."""

    def __new__(cls, name, value):
        case = super().__new__(cls, (name, value))
        case.__name__ = name
        return case


def cases(table):
    return [Case(name, value) for name, value in sorted(table.items())]


def config_file_value(test_case, value):
    """``my_live_migration_ip`` as nova reads it from ``nova.conf``."""
    [path] = test_case.create_tempfiles(
        [('nova', '[DEFAULT]\nmy_live_migration_ip = %s\n' % value)])
    conf = cfg.ConfigOpts()
    mn_conf.register_opts(conf)
    conf([], default_config_files=[path])
    return conf


@ddt.ddt
class TestInvalidConfiguration(test.NoDBTestCase):
    """A bad value stops nova-compute with one line naming it."""

    def assert_refused_in_one_line(self, conf, quoted):
        error = self.assertRaises(exception.InvalidConfiguration,
                                  hooks.configured_migration_ip, conf)
        message = str(error)
        self.assertNotIn('\n', message)
        self.assertTrue(message.startswith(
            'Invalid [DEFAULT] my_live_migration_ip %s: ' % quoted), message)
        return message

    @ddt.data(*cases(NOT_AN_ADDRESS))
    @ddt.unpack
    def test_not_an_address_stops_start_up_naming_it(self, case, value):
        self.assert_refused_in_one_line(config_file_value(self, value),
                                        repr(value))

    @ddt.data(*cases(UNUSABLE))
    @ddt.unpack
    def test_unusable_address_stops_start_up_naming_it(self, case, value):
        message = self.assert_refused_in_one_line(
            config_file_value(self, value), repr(value))
        self.assertIn('address', message.split(': ', 1)[1])

    def test_quoted_empty_string_is_refused_as_empty(self):
        # oslo.config strips the quotes: the value is the empty string.
        message = self.assert_refused_in_one_line(
            config_file_value(self, '""'), "''")
        self.assertTrue(message.endswith('it is empty'), message)

    def test_multi_line_value_is_refused_in_one_line(self):
        # An indented next line continues the value in oslo.config files.
        self.assert_refused_in_one_line(
            config_file_value(self, '172.168.1.15\n  evil'),
            repr('172.168.1.15\nevil'))

    def test_cidr_is_told_to_drop_the_prefix(self):
        message = self.assert_refused_in_one_line(
            config_file_value(self, '172.168.1.15/16'), "'172.168.1.15/16'")
        self.assertIn('CIDR', message)

    def test_value_from_the_environment_is_refused_naming_it(self):
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_DEFAULT__MY_LIVE_MIGRATION_IP', 'compute1'))
        conf = cfg.ConfigOpts()
        mn_conf.register_opts(conf)
        conf([], default_config_files=[])
        self.assert_refused_in_one_line(conf, "'compute1'")

    def test_set_override_refuses_unusable_address(self):
        conf = cfg.ConfigOpts()
        mn_conf.register_opts(conf)
        conf([], default_config_files=[])
        self.assertRaises(ValueError, conf.set_override,
                          'my_live_migration_ip', '127.0.0.1')

    def test_canonical_and_written_out_forms_are_accepted(self):
        for value in ('172.168.1.15', 'fd00:30::15', 'FD00:30:0::15',
                      '169.254.1.15', '::ffff:172.168.1.15'):
            self.assertEqual(value, hooks.configured_migration_ip(
                config_file_value(self, value)))


class TestStartUpInterfaceCheck(test.NoDBTestCase):
    """nova-compute compares the option with the host's interfaces."""

    def setUp(self):
        super().setUp()
        self.useFixture(mn_fixtures.MigrationNetFixture())

    def init_host(self):
        original = libvirt_driver.LibvirtDriver.init_host.__wrapped__
        call = inspect.signature(original).bind(None, 'dest')
        hooks.InitHost().pre(call)

    def test_option_unset_does_not_read_the_interfaces(self):
        # nova's test base makes psutil.net_if_addrs() fail when called.
        self.init_host()
        self.assertIn('my_live_migration_ip is unset',
                      self.stdlog.logger.output)

    def test_address_on_an_interface_starts_quietly(self):
        self.useFixture(mn_fixtures.InterfacesFixture())
        for address in ('172.168.1.15', 'FD00:30::15'):
            self.flags(my_live_migration_ip=address)
            self.init_host()
        self.assertNotIn('WARNING [nova_migration_net',
                         self.stdlog.logger.output)

    def test_address_on_no_interface_warns_and_starts(self):
        self.useFixture(mn_fixtures.InterfacesFixture())
        self.flags(my_live_migration_ip='172.168.1.16')
        self.init_host()
        self.assertIn('WARNING [nova_migration_net.hooks] [DEFAULT] '
                      'my_live_migration_ip 172.168.1.16: it is not assigned '
                      'to any interface of this host.',
                      self.stdlog.logger.output)
        self.assertIn('will stream to this host at 172.168.1.16',
                      self.stdlog.logger.output)

    def test_ipv4_address_only_on_an_ipv6_interface_is_not_local(self):
        self.useFixture(mn_fixtures.InterfacesFixture({
            'eth1': [mn_fixtures.interface(6, '::ffff:172.168.1.15')]}))
        self.flags(my_live_migration_ip='172.168.1.15')
        self.init_host()
        self.assertIn('not assigned to any interface',
                      self.stdlog.logger.output)

    def test_link_local_zone_in_the_table_is_ignored(self):
        self.useFixture(mn_fixtures.InterfacesFixture({
            'eth1': [mn_fixtures.interface(6, 'fe80::15%eth1'),
                     mn_fixtures.interface(6, 'fd00:30::15')]}))
        self.flags(my_live_migration_ip='fd00:30::15')
        self.init_host()
        self.assertNotIn('WARNING [nova_migration_net',
                         self.stdlog.logger.output)

    def test_unreadable_interface_table_warns_and_starts(self):
        self.useFixture(mn_fixtures.InterfacesFixture(
            PermissionError(13, 'Permission denied')))
        self.flags(my_live_migration_ip='172.168.1.15')
        self.init_host()
        self.assertIn('WARNING [nova_migration_net.hooks] Cannot list the '
                      'interfaces of this host to check [DEFAULT] '
                      'my_live_migration_ip 172.168.1.15: [Errno 13] '
                      'Permission denied', self.stdlog.logger.output)
        self.assertIn('will stream to this host at 172.168.1.15',
                      self.stdlog.logger.output)

    def test_broadcast_address_of_a_local_network_stops_start_up(self):
        self.useFixture(mn_fixtures.InterfacesFixture())
        self.flags(my_live_migration_ip='172.168.255.255')
        error = self.assertRaises(exception.InvalidConfiguration,
                                  self.init_host)
        self.assertEqual(
            "Invalid [DEFAULT] my_live_migration_ip '172.168.255.255': it is "
            "the broadcast address of interface eth1", str(error))


@ddt.ddt
class TestHostilePeer(test.NoDBTestCase):
    """A peer's ``migration_ip`` is read only if it is a usable address."""

    def setUp(self):
        super().setUp()
        self.useFixture(mn_fixtures.MigrationNetFixture())
        self.ctxt = nova_context.get_admin_context()
        self.serializer = nova_base.NovaObjectSerializer()

    def receive(self, value):
        """The source's RPC client reads data carrying ``value``."""
        data = objects.LibvirtLiveMigrateData.from_stock(
            nova_objects.LibvirtLiveMigrateData(target_connect_addr=None),
            '172.168.1.15')
        primitive = self.serializer.serialize_entity(self.ctxt, data)
        primitive['nova_object.data']['migration_ip'] = value
        return self.serializer.deserialize_entity(self.ctxt, primitive)

    def test_plain_addresses_are_read_canonical(self):
        for value, canonical in (('172.168.1.15', '172.168.1.15'),
                                 ('FD00:30:0::15', 'fd00:30::15'),
                                 ('::ffff:172.168.1.15',
                                  '::ffff:172.168.1.15')):
            self.assertEqual(canonical,
                             str(self.receive(value).migration_ip))

    def test_null_is_read_as_no_migration_ip(self):
        self.assertFalse(self.receive(None).has_migration_ip)

    @ddt.data(*cases(HOSTILE))
    @ddt.unpack
    def test_hostile_value_is_refused_when_read(self, case, value):
        error = self.assertRaises(ValueError, self.receive, value)
        message = str(error)
        # Named, escaped and bounded: no forged log line, no flooding.
        self.assertTrue(message.startswith('migration_ip '), message)
        self.assertNotIn('\n', message)
        self.assertNotIn('\x00', message)
        self.assertLess(len(message), 300)
        self.assertIn(repr(value)[:40], message)

    def test_every_hostile_value_is_refused_when_set(self):
        data = objects.LibvirtLiveMigrateData()
        for case, value in sorted(HOSTILE.items()):
            self.assertRaises(ValueError, setattr, data, 'migration_ip',
                              value)
        self.assertNotIn('migration_ip', data)


class Hook:
    """A hook recording its phases."""

    def __init__(self, handled=False):
        self.handled = handled
        self.phases = []

    def pre(self, call):
        self.phases.append('pre')

    def post(self, call, rv):
        self.phases.append('post')
        return rv

    def error(self, call, exc):
        self.phases.append(('error', exc))
        return self.handled


class TestErrorPhase(testtools.TestCase):
    """``activation._wrap``: what the error phase can and cannot do."""

    def failing(self, exc):
        def method(self, x):
            raise exc
        return method

    def test_unhandled_error_propagates_unchanged_and_post_is_skipped(self):
        exc = RuntimeError('boom')
        hook = Hook(handled=None)
        wrapped = activation._wrap(self.failing(exc), hook)
        self.assertIs(exc, self.assertRaises(RuntimeError, wrapped, None, 1))
        self.assertEqual(['pre', ('error', exc)], hook.phases)

    def test_only_true_handles_the_error(self):
        # A truthy value that is not True is no decision to swallow.
        wrapped = activation._wrap(self.failing(RuntimeError()),
                                   Hook(handled='yes'))
        self.assertRaises(RuntimeError, wrapped, None, 1)

    def test_handled_error_ends_the_call_with_none(self):
        exc = RuntimeError('boom')
        hook = Hook(handled=True)
        wrapped = activation._wrap(self.failing(exc), hook)
        self.assertIsNone(wrapped(None, 1))
        self.assertEqual(['pre', ('error', exc)], hook.phases)

    def test_success_runs_post_not_error(self):
        hook = Hook(handled=True)
        wrapped = activation._wrap(lambda self, x: x + 1, hook)
        self.assertEqual(2, wrapped(None, 1))
        self.assertEqual(['pre', 'post'], hook.phases)


class TestLiveMigrationError(test.NoDBTestCase):
    """When the source hook turns a failure into nova's rollback."""

    def setUp(self):
        super().setUp()
        self.useFixture(fakelibvirt.LibvirtFixture())
        self.useFixture(mn_fixtures.MigrationNetFixture())
        self.ctxt = nova_context.get_admin_context()
        self.instance = fake_instance.fake_instance_obj(self.ctxt)

    def data(self, migration_ip='172.168.1.15', status='failed'):
        data = objects.LibvirtLiveMigrateData.from_stock(
            nova_objects.LibvirtLiveMigrateData(target_connect_addr=None),
            migration_ip)
        data.migration = nova_objects.Migration(status=status)
        return data

    def error(self, data, exc=None):
        if exc is None:
            exc = fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError,
                "unable to connect to server at '172.168.1.15:16509': No "
                "route to host", error_code=fakelibvirt.VIR_ERR_SYSTEM_ERROR,
                error_domain=fakelibvirt.VIR_FROM_RPC)
        original = libvirt_driver.LibvirtDriver.live_migration.__wrapped__
        call = inspect.signature(original).bind(
            None, self.ctxt, self.instance, 'dest', None, None, False, data)
        call.apply_defaults()
        hook = hooks.LiveMigration()
        hook.pre(call)
        # The attempt the source's guest made and kept on the data.
        address = objects.migration_ip_of(data) or 'dest'
        steering.attempts_of(data).append(
            steering.Attempt(str(address), str(exc)))
        return hook.error(call, exc)

    def test_rolled_back_libvirt_failure_on_the_plane_is_handled(self):
        self.assertIs(True, self.error(self.data()))
        self.assertIn('ERROR [nova_migration_net.hooks] Live migration to '
                      'dest over the migration plane failed: libvirt could '
                      'not connect to 172.168.1.15',
                      self.stdlog.logger.output)

    def test_failure_after_memory_was_sent_keeps_nova_handling(self):
        data = self.data()
        data.migration.memory_processed = 4096
        self.assertFalse(self.error(data))

    def test_failure_nova_did_not_roll_back_keeps_nova_handling(self):
        for status in ('running', 'error', 'completed', 'cancelled'):
            self.assertFalse(self.error(self.data(status=status)))

    def test_failure_off_the_plane_keeps_nova_handling(self):
        self.assertFalse(self.error(self.data(migration_ip=None)))
        stock = nova_objects.LibvirtLiveMigrateData(target_connect_addr=None)
        stock.migration = nova_objects.Migration(status='failed')
        self.assertFalse(self.error(stock))

    def test_failure_that_is_not_libvirts_keeps_nova_handling(self):
        self.assertFalse(self.error(self.data(), exc=RuntimeError('bug')))

    def test_data_without_migration_keeps_nova_handling(self):
        data = self.data()
        del data.migration
        self.assertFalse(self.error(data))
        self.assertIn('nova did not report the migration rolled back before '
                      'any memory was sent', self.stdlog.logger.output)
        self.assertNotIn('keeps running', self.stdlog.logger.output)
