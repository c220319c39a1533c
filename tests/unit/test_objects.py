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

"""The live migration data object: fields, version, backports, registry."""

import copy

from nova import context as nova_context
from nova import objects as nova_objects
from nova.objects import base as nova_base
from nova import test
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import fixture as ovo_fixture

from nova_migration_net import objects
from tests import fixtures as mn_fixtures

# The object's fingerprint on each stock nova it supports. A change of the
# plugin's fields without a change of objects.PLUGIN_VERSION fails here.
EXPECTED_FINGERPRINTS = {
    '1.13': '1.13.1-075569863d655a20622f08558023e632',  # nova 32
    '1.14': '1.14.1-250072a1e452af3d805c8a40dabb609c',  # nova 34
}


def stock_data(**extra):
    """Stock live migration data as a destination check builds it."""
    return nova_objects.LibvirtLiveMigrateData(
        target_connect_addr=None,
        is_shared_instance_path=False,
        is_shared_block_storage=False,
        block_migration=True,
        serial_listen_addr='127.0.0.1',
        bdms=[nova_objects.LibvirtLiveMigrateBDMInfo(
            serial='vol-1', bus='virtio', dev='vdb', type='disk')],
        vifs=[nova_objects.VIFMigrateData(
            port_id='port-1', vnic_type='normal', vif_type='ovs',
            host='dest', profile={}, vif_details={})],
        **extra)


class TestObject(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(mn_fixtures.MigrationNetFixture())
        self.ctxt = nova_context.get_admin_context()
        self.serializer = nova_base.NovaObjectSerializer()

    def test_version_extends_the_installed_stock_version(self):
        stock = objects.StockLibvirtLiveMigrateData.VERSION
        self.assertEqual(stock + '.1', objects.LibvirtLiveMigrateData.VERSION)

    def test_fields_are_stock_plus_nullable_migration_ip(self):
        fields = dict(objects.LibvirtLiveMigrateData.fields)
        migration_ip = fields.pop('migration_ip')
        self.assertTrue(migration_ip.nullable)
        self.assertEqual(set(objects.StockLibvirtLiveMigrateData.fields),
                         set(fields))

    def test_fingerprint(self):
        checker = ovo_fixture.ObjectVersionChecker(
            {'LibvirtLiveMigrateData': [objects.LibvirtLiveMigrateData]})
        stock = objects.StockLibvirtLiveMigrateData.VERSION
        expected, actual = checker.test_hashes(
            {'LibvirtLiveMigrateData': EXPECTED_FINGERPRINTS[stock]})
        self.assertEqual(expected, actual,
                         'Fields changed: bump objects.PLUGIN_VERSION and '
                         'the expected fingerprint together.')

    def test_migration_ip_accepts_ipv4_and_ipv6(self):
        data = objects.LibvirtLiveMigrateData(migration_ip='172.168.1.15')
        self.assertEqual('172.168.1.15', str(data.migration_ip))
        data.migration_ip = 'FD00:30:0::15'
        self.assertEqual('fd00:30::15', str(data.migration_ip))
        data.migration_ip = None
        self.assertIsNone(data.migration_ip)

    def test_migration_ip_refuses_what_is_not_an_address(self):
        data = objects.LibvirtLiveMigrateData()
        for value in ('dest', '172.168.1.15/24', '172.168.1.15:16509',
                      '[fd00:30::15]', ' 172.168.1.15', 'fe80::1%eth0',
                      '172.168.1.15/system?x', 2896691471):
            self.assertRaises(ValueError, setattr, data, 'migration_ip',
                              value)

    def test_from_stock_keeps_values_and_changes(self):
        stock = stock_data()
        stock.obj_reset_changes(['serial_listen_addr'])
        data = objects.LibvirtLiveMigrateData.from_stock(stock,
                                                         '172.168.1.15')
        primitive = data.obj_to_primitive()
        stock_primitive = stock.obj_to_primitive()
        self.assertEqual('172.168.1.15',
                         primitive['nova_object.data'].pop('migration_ip'))
        self.assertEqual(stock_primitive['nova_object.data'],
                         primitive['nova_object.data'])
        self.assertEqual(
            set(stock_primitive['nova_object.changes']) | {'migration_ip'},
            set(primitive['nova_object.changes']))

    def _backport(self, data, target):
        manifest = ovo_base.obj_tree_get_versions(data.obj_name())
        manifest[data.obj_name()] = target
        return data.obj_to_primitive(target_version=target,
                                     version_manifest=manifest)

    def test_backport_to_stock_drops_migration_ip(self):
        data = objects.LibvirtLiveMigrateData.from_stock(stock_data(),
                                                         '172.168.1.15')
        stock_version = objects.StockLibvirtLiveMigrateData.VERSION
        primitive = self._backport(data, stock_version)
        self.assertEqual(stock_version, primitive['nova_object.version'])
        self.assertNotIn('migration_ip', primitive['nova_object.data'])
        self.assertNotIn('migration_ip', primitive['nova_object.changes'])
        self.assertEqual(stock_data().obj_to_primitive(), primitive)

    def test_backport_to_older_stock_matches_stock_backport(self):
        data = objects.LibvirtLiveMigrateData.from_stock(stock_data(),
                                                         '172.168.1.15')
        self.assertEqual(self._backport(stock_data(), '1.10'),
                         self._backport(data, '1.10'))

    def test_own_version_keeps_migration_ip(self):
        data = objects.LibvirtLiveMigrateData.from_stock(stock_data(),
                                                         'fd00:30::15')
        primitive = data.obj_to_primitive(
            target_version=objects.LibvirtLiveMigrateData.VERSION)
        self.assertEqual('fd00:30::15',
                         primitive['nova_object.data']['migration_ip'])

    def test_registry_reads_plugin_version_as_plugin_class(self):
        data = objects.LibvirtLiveMigrateData.from_stock(stock_data(),
                                                         '172.168.1.15')
        read = self.serializer.deserialize_entity(
            self.ctxt, self.serializer.serialize_entity(self.ctxt, data))
        self.assertIs(objects.LibvirtLiveMigrateData, type(read))
        self.assertEqual('172.168.1.15', str(read.migration_ip))
        self.assertEqual(data.obj_what_changed(), read.obj_what_changed())

    def test_registry_reads_stock_versions_as_stock_class(self):
        for version in (objects.StockLibvirtLiveMigrateData.VERSION, '1.10'):
            primitive = stock_data().obj_to_primitive()
            primitive['nova_object.version'] = version
            read = self.serializer.deserialize_entity(self.ctxt, primitive)
            self.assertIs(objects.StockLibvirtLiveMigrateData, type(read))

    def test_nova_keeps_building_stock_objects(self):
        self.assertIs(objects.StockLibvirtLiveMigrateData,
                      nova_objects.LibvirtLiveMigrateData)
        manifest = ovo_base.obj_tree_get_versions('LibvirtLiveMigrateData')
        self.assertEqual(objects.StockLibvirtLiveMigrateData.VERSION,
                         manifest['LibvirtLiveMigrateData'])

    def test_stock_process_reads_plugin_object_without_backport(self):
        data = objects.LibvirtLiveMigrateData.from_stock(stock_data(),
                                                         '172.168.1.15')
        primitive = self.serializer.serialize_entity(self.ctxt, data)
        self.useFixture(mn_fixtures.PluginOffFixture())
        # A stock conductor cannot backport the plugin's version: any
        # backport request fails the test.
        self.serializer._conductor = NoBackportConductor()
        read = self.serializer.deserialize_entity(self.ctxt,
                                                  copy.deepcopy(primitive))
        self.assertIs(objects.StockLibvirtLiveMigrateData, type(read))
        self.assertNotIn('migration_ip', read.fields)
        self.assertEqual(stock_data().obj_to_primitive()['nova_object.data'],
                         read.obj_to_primitive()['nova_object.data'])


class NoBackportConductor:
    def object_backport_versions(self, *args, **kwargs):
        raise AssertionError('a backport was requested')


class TestRegistration(test.NoDBTestCase):

    def test_register_is_idempotent_and_undone(self):
        classes = ovo_base.VersionedObjectRegistry.obj_classes()[
            'LibvirtLiveMigrateData']
        before = list(classes)
        self.addCleanup(objects.unregister)
        objects.register()
        objects.register()
        self.assertEqual(1, classes.count(objects.LibvirtLiveMigrateData))
        self.assertEqual(
            classes.index(objects.StockLibvirtLiveMigrateData) + 1,
            classes.index(objects.LibvirtLiveMigrateData))
        objects.unregister()
        objects.unregister()
        self.assertEqual(before, classes)
