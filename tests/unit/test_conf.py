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

"""The ``[DEFAULT] my_live_migration_ip`` option."""

from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from nova_migration_net import conf as mn_conf


class TestOption(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(
            config_fixture.Config(cfg.ConfigOpts())).conf
        mn_conf.register_opts(self.conf)
        self.conf([])

    def test_default_is_unset(self):
        self.assertIsNone(self.conf.my_live_migration_ip)

    def test_accepts_ipv4_and_ipv6(self):
        for address in ('172.168.1.15', 'fd00:30::15'):
            self.conf.set_override('my_live_migration_ip', address)
            self.assertEqual(address, self.conf.my_live_migration_ip)

    def test_refuses_what_is_not_an_ip(self):
        for value in ('compute1.example.org', '172.168.1.15/16',
                      '172.168.1', 'fe80::1%eth0', ''):
            self.assertRaises(ValueError, self.conf.set_override,
                              'my_live_migration_ip', value)

    def test_help_names_the_related_options(self):
        [(group, [opt])] = mn_conf.list_opts()
        self.assertEqual('DEFAULT', group)
        for related in ('live_migration_inbound_addr',
                        'live_migration_scheme', 'live_migration_tunnelled',
                        'live_migration_with_native_tls', 'config_source'):
            self.assertIn(related, opt.help)
