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

"""The hooks: destination fills, source reads, start-up checks."""

import inspect

from nova import context as nova_context
from nova import exception
from nova import objects as nova_objects
from nova import test
from nova.tests.unit import fake_instance
from nova.virt.libvirt import driver as libvirt_driver
from oslo_config import cfg

from nova_migration_net import conf as mn_conf
from nova_migration_net import hooks
from nova_migration_net import objects
from tests import fixtures as mn_fixtures


class HookTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(mn_fixtures.MigrationNetFixture())
        self.useFixture(mn_fixtures.InterfacesFixture())
        self.ctxt = nova_context.get_admin_context()
        self.instance = fake_instance.fake_instance_obj(self.ctxt)

    def stock_data(self):
        return nova_objects.LibvirtLiveMigrateData(
            target_connect_addr=None, bdms=[], block_migration=False)

    def bind(self, method, *args):
        """The hook's view of a call of ``LibvirtDriver.<method>``."""
        original = getattr(libvirt_driver.LibvirtDriver, method).__wrapped__
        call = inspect.signature(original).bind(None, *args)
        call.apply_defaults()
        return call


class TestPreLiveMigration(HookTestCase):

    def post(self, migrate_data):
        call = self.bind('pre_live_migration', self.ctxt, self.instance,
                         None, [], None, migrate_data)
        return hooks.PreLiveMigration().post(call, migrate_data)

    def test_option_set_returns_plugin_object_with_migration_ip(self):
        self.flags(my_live_migration_ip='172.168.1.15')
        stock = self.stock_data()
        data = self.post(stock)
        self.assertIs(objects.LibvirtLiveMigrateData, type(data))
        self.assertEqual('172.168.1.15', str(data.migration_ip))
        self.assertFalse(data.block_migration)
        self.assertIsNone(data.target_connect_addr)

    def test_option_set_on_plugin_object_sets_field_in_place(self):
        self.flags(my_live_migration_ip='fd00:30::15')
        data = objects.LibvirtLiveMigrateData.from_stock(self.stock_data(),
                                                         '172.168.1.99')
        self.assertIs(data, self.post(data))
        self.assertEqual('fd00:30::15', str(data.migration_ip))

    def test_explicit_option_advertises_that_one_address(self):
        self.flags(my_live_migration_ip='172.168.1.15')
        data = self.post(self.stock_data())
        self.assertEqual(['172.168.1.15'],
                         [str(a) for a in
                          objects.migration_addresses_of(data)])
        self.assertNotIn('migration_addresses', data)

    def test_option_unset_returns_nova_object_untouched(self):
        stock = self.stock_data()
        before = stock.obj_to_primitive()
        self.assertIs(stock, self.post(stock))
        self.assertEqual(before, stock.obj_to_primitive())


class TestLiveMigration(HookTestCase):

    def pre(self, migrate_data):
        call = self.bind('live_migration', self.ctxt, self.instance, 'dest',
                         None, None, False, migrate_data)
        hooks.LiveMigration().pre(call)

    def test_migration_ip_becomes_the_connect_address(self):
        data = objects.LibvirtLiveMigrateData.from_stock(self.stock_data(),
                                                         'FD00:30::15')
        self.pre(data)
        self.assertEqual('fd00:30::15', data.target_connect_addr)
        self.assertIn("Live migration to dest streams over the migration "
                      "plane to fd00:30::15, the destination's "
                      "my_live_migration_ip.", self.stdlog.logger.output)

    def test_migration_ip_overrides_inbound_addr(self):
        data = self.stock_data()
        data.target_connect_addr = 'dest-migration.example.org'
        data = objects.LibvirtLiveMigrateData.from_stock(data,
                                                         '172.168.1.15')
        self.pre(data)
        self.assertEqual('172.168.1.15', data.target_connect_addr)

    def test_stock_object_keeps_the_hostname(self):
        data = self.stock_data()
        self.pre(data)
        self.assertIsNone(data.target_connect_addr)
        self.assertIn('streams over the management plane to its hostname',
                      self.stdlog.logger.output)

    def test_plugin_object_without_migration_ip_keeps_the_hostname(self):
        data = objects.LibvirtLiveMigrateData.from_stock(self.stock_data(),
                                                         None)
        self.pre(data)
        self.assertIsNone(data.target_connect_addr)

    def test_inbound_addr_alone_is_reported(self):
        data = self.stock_data()
        data.target_connect_addr = '192.0.2.7'
        self.pre(data)
        self.assertEqual('192.0.2.7', data.target_connect_addr)
        self.assertIn("streams to 192.0.2.7, the destination's [libvirt] "
                      "live_migration_inbound_addr",
                      self.stdlog.logger.output)


class TestInitHost(HookTestCase):

    def pre(self):
        hooks.InitHost().pre(self.bind('init_host', 'dest'))

    def test_invalid_value_stops_the_service_naming_option_and_value(self):
        path = self.create_tempfiles(
            [('nova', '[DEFAULT]\nmy_live_migration_ip = 172.168.1.15/16\n')])
        conf = cfg.ConfigOpts()
        mn_conf.register_opts(conf)
        conf([], default_config_files=[path[0]])
        error = self.assertRaises(exception.InvalidConfiguration,
                                  hooks.configured_migration_ip, conf)
        self.assertIn('my_live_migration_ip', str(error))
        self.assertIn('172.168.1.15/16', str(error))

    def test_both_addresses_set_and_different_warns(self):
        self.flags(my_live_migration_ip='172.168.1.15')
        self.flags(live_migration_inbound_addr='192.0.2.7', group='libvirt')
        self.pre()
        self.assertIn('WARNING [nova_migration_net.hooks] Both [DEFAULT] '
                      'my_live_migration_ip (172.168.1.15) and [libvirt] '
                      'live_migration_inbound_addr (192.0.2.7) are set',
                      self.stdlog.logger.output)

    def test_same_ipv6_address_written_differently_is_quiet(self):
        self.flags(my_live_migration_ip='fd00:30::15')
        self.flags(live_migration_inbound_addr='FD00:30:0::15',
                   group='libvirt')
        self.pre()
        self.assertNotIn('WARNING [nova_migration_net',
                         self.stdlog.logger.output)

    def test_both_addresses_set_and_equal_is_quiet(self):
        self.flags(my_live_migration_ip='172.168.1.15')
        self.flags(live_migration_inbound_addr='172.168.1.15',
                   group='libvirt')
        self.pre()
        self.assertNotIn('WARNING [nova_migration_net',
                         self.stdlog.logger.output)
        self.assertIn('will stream to this host at 172.168.1.15',
                      self.stdlog.logger.output)
