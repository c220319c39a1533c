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

"""Cold migrations and resizes copy their disks to the migration address.

The destination's resource tracker puts its ``get_host_ip_addr()`` (nova's
``[libvirt] migration_inbound_addr``) into the migration record, and the
source hands it to ``migrate_disk_and_power_off`` as ``dest``. That method
copies the disks over ssh, so it is replaced here, as nova's own functional
tests replace it, by one that records ``dest`` and copies nothing: the
addresses of these tests must never be connected to.
"""

import fixtures

from tests.functional import cloud

IPV4 = '172.168.1.15'


class ColdMigrationCloud(cloud.LiveMigrationCloud):

    def setUp(self):
        super().setUp()
        self.copied_to = []

        def migrate_disk_and_power_off(driver, context, instance, dest,
                                       *args, **kwargs):
            self.copied_to.append(dest)
            return '{}'

        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.driver.LibvirtDriver.'
            'migrate_disk_and_power_off', migrate_disk_and_power_off))

    def cold_migrate(self):
        """Boot on ``src``, cold-migrate to ``dest`` and confirm; the
        migration record as the API shows it.
        """
        server = self._create_server(host=self.SOURCE, networks='none')
        self._migrate_server(server, host=self.DESTINATION)
        self._confirm_resize(server)
        [migration] = self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations']
        return migration


class TestColdMigration(ColdMigrationCloud):

    microversion = '2.80'

    def test_disks_are_copied_to_the_migration_address(self):
        self.start_computes(dest_migration_ip=IPV4)
        migration = self.cold_migrate()
        self.assertEqual(IPV4, migration['dest_host'])
        self.assertEqual([IPV4], self.copied_to)
        [line] = self.log_lines('INFO [nova_migration_net.hooks]',
                                'Cold migrations, resizes and evacuations '
                                'to this host copy their disks to %s' % IPV4)

    def test_an_inbound_addr_the_operator_set_wins(self):
        self.flags(migration_inbound_addr='192.0.2.9', group='libvirt')
        self.start_computes(dest_migration_ip=IPV4)
        migration = self.cold_migrate()
        self.assertEqual('192.0.2.9', migration['dest_host'])
        self.assertEqual([], self.log_lines('Cold migrations, resizes'))

    def test_option_unset_keeps_the_management_address(self):
        self.start_computes()
        migration = self.cold_migrate()
        # nova's default, $my_ip: the management address.
        self.assertEqual(cloud.CONF.my_ip, migration['dest_host'])
        self.assertEqual([cloud.CONF.my_ip], self.copied_to)
