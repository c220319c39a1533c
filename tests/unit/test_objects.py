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
    '1.13': '1.13.2-c5341730d59314ecd1c20cf4ec5bf778',  # nova 32
    '1.14': '1.14.2-aef947ec66c810bc29968aa43a6ac72f',  # nova 34
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
        self.assertEqual(stock + '.2', objects.LibvirtLiveMigrateData.VERSION)

    def test_label_on_the_wire_is_the_one_every_plugin_reads(self):
        data = objects.LibvirtLiveMigrateData.from_stock(
            stock_data(), ['172.168.1.15', '172.31.0.15'])
        primitive = self.serializer.serialize_entity(self.ctxt, data)
        self.assertEqual(objects.StockLibvirtLiveMigrateData.VERSION + '.1',
                         primitive['nova_object.version'])

    def test_fields_are_stock_plus_nullable_addresses(self):
        fields = dict(objects.LibvirtLiveMigrateData.fields)
        self.assertTrue(fields.pop('migration_ip').nullable)
        self.assertTrue(fields.pop('migration_addresses').nullable)
        self.assertEqual(set(objects.StockLibvirtLiveMigrateData.fields),
                         set(fields))

    def test_one_address_is_advertised_as_plugin_version_1_did(self):
        data = objects.LibvirtLiveMigrateData.from_stock(stock_data(),
                                                         ['172.168.1.15'])
        primitive = data.obj_to_primitive()
        self.assertNotIn('migration_addresses', primitive['nova_object.data'])
        self.assertNotIn('migration_addresses',
                         primitive['nova_object.changes'])
        self.assertEqual(['172.168.1.15'],
                         [str(a) for a in
                          objects.migration_addresses_of(data)])

    def test_addresses_keep_their_order_and_the_first_is_migration_ip(self):
        data = objects.LibvirtLiveMigrateData.from_stock(
            stock_data(), ['fd00:30::15', '172.31.0.15', '172.168.1.15'])
        primitive = data.obj_to_primitive()['nova_object.data']
        self.assertEqual('fd00:30::15', primitive['migration_ip'])
        self.assertEqual(['fd00:30::15', '172.31.0.15', '172.168.1.15'],
                         primitive['migration_addresses'])
        read = self.serializer.deserialize_entity(
            self.ctxt, self.serializer.serialize_entity(self.ctxt, data))
        self.assertEqual(['fd00:30::15', '172.31.0.15', '172.168.1.15'],
                         [str(a) for a in
                          objects.migration_addresses_of(read)])

    def test_list_not_starting_with_migration_ip_gives_migration_ip_only(self):
        data = objects.LibvirtLiveMigrateData.from_stock(
            stock_data(), ['172.168.1.15', '172.31.0.15'])
        data.migration_ip = '172.31.0.15'
        self.assertEqual(['172.31.0.15'],
                         [str(a) for a in
                          objects.migration_addresses_of(data)])

    def test_address_list_refuses_bad_lists_from_a_peer(self):
        primitive = objects.LibvirtLiveMigrateData.from_stock(
            stock_data(), ['172.168.1.15', '172.31.0.15']).obj_to_primitive()
        for value in ('172.168.1.15', [], ['172.168.1.15', 'dest'],
                      ['172.168.1.15', '172.168.1.15'],
                      ['172.168.1.15'] + ['172.31.0.%d' % i
                                          for i in range(1, 9)]):
            bad = copy.deepcopy(primitive)
            bad['nova_object.data']['migration_addresses'] = value
            self.assertRaises(ValueError, self.serializer.deserialize_entity,
                              self.ctxt, bad)

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

    def test_backport_to_stock_drops_the_plugin_fields(self):
        data = objects.LibvirtLiveMigrateData.from_stock(
            stock_data(), ['172.168.1.15', '172.31.0.15'])
        stock_version = objects.StockLibvirtLiveMigrateData.VERSION
        primitive = self._backport(data, stock_version)
        self.assertEqual(stock_version, primitive['nova_object.version'])
        for name in ('migration_ip', 'migration_addresses'):
            self.assertNotIn(name, primitive['nova_object.data'])
            self.assertNotIn(name, primitive['nova_object.changes'])
        self.assertEqual(stock_data().obj_to_primitive(), primitive)

    def test_backport_to_the_version_1_label_keeps_both_fields(self):
        # Plugin version 1 reads migration_ip and ignores the list.
        data = objects.LibvirtLiveMigrateData.from_stock(
            stock_data(), ['172.168.1.15', '172.31.0.15'])
        label = objects.StockLibvirtLiveMigrateData.VERSION + '.1'
        primitive = self._backport(data, label)['nova_object.data']
        self.assertEqual('172.168.1.15', primitive['migration_ip'])
        self.assertEqual(['172.168.1.15', '172.31.0.15'],
                         primitive['migration_addresses'])

    def test_backport_to_older_stock_matches_stock_backport(self):
        data = objects.LibvirtLiveMigrateData.from_stock(
            stock_data(), ['172.168.1.15', '172.31.0.15'])
        self.assertEqual(self._backport(stock_data(), '1.10'),
                         self._backport(data, '1.10'))

    def test_registry_reads_plugin_version_as_plugin_class(self):
        data = objects.LibvirtLiveMigrateData.from_stock(stock_data(),
                                                         '172.168.1.15')
        read = self.serializer.deserialize_entity(
            self.ctxt, self.serializer.serialize_entity(self.ctxt, data))
        self.assertIsInstance(read, objects.LibvirtLiveMigrateData)
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

    def read_as_sent_by(self, version, data=None):
        """``data`` as a source whose stock version is ``version`` sent it."""
        primitive = self._backport(data or stock_data(), version)
        return self.serializer.deserialize_entity(self.ctxt, primitive)

    def test_answer_is_in_the_version_the_source_spoke(self):
        # A source on an older nova (stock 1.13, as nova 32) sent 1.13; a
        # stock destination answers 1.13, the plugin the same plus its
        # field, labelled 1.13.1.
        stock = self.read_as_sent_by('1.13')
        stock_answer = self.serializer.serialize_entity(self.ctxt, stock)
        self.assertEqual('1.13', stock_answer['nova_object.version'])
        answer = self.serializer.serialize_entity(
            self.ctxt, objects.LibvirtLiveMigrateData.from_stock(
                self.read_as_sent_by('1.13'), '172.168.1.15'))
        self.assertEqual('1.13.1', answer['nova_object.version'])
        self.assertEqual('172.168.1.15',
                         answer['nova_object.data'].pop('migration_ip'))
        self.assertEqual(stock_answer['nova_object.data'],
                         answer['nova_object.data'])

    def test_older_plugin_versions_are_read_as_plugin_objects(self):
        # What a plugin on an older nova answers: its stock version plus .1.
        for version in ('1.13', '1.10', '1.0'):
            data = objects.LibvirtLiveMigrateData.from_stock(
                self.read_as_sent_by(version), 'fd00:30::15')
            primitive = self.serializer.serialize_entity(self.ctxt, data)
            self.assertEqual(version + '.1',
                             primitive['nova_object.version'])
            read = self.serializer.deserialize_entity(self.ctxt, primitive)
            self.assertIsInstance(read, objects.LibvirtLiveMigrateData)
            self.assertEqual('fd00:30::15', str(objects.migration_ip_of(read)))
            self.assertEqual(version + '.1', read.VERSION)

    def test_newer_stock_part_is_not_read_as_plugin(self):
        # 1.15.1 is no version this nova knows: nova reads it as its 1.15
        # would be, i.e. not at all without a backport, as for stock 1.15.
        primitive = self.serializer.serialize_entity(
            self.ctxt, objects.LibvirtLiveMigrateData.from_stock(
                stock_data(), '172.168.1.15'))
        primitive['nova_object.version'] = '1.15.1'
        self.serializer._conductor = NoBackportConductor()
        self.assertRaises(AssertionError, self.serializer.deserialize_entity,
                          self.ctxt, primitive)

    def test_stock_process_reads_older_plugin_object_without_backport(self):
        data = objects.LibvirtLiveMigrateData.from_stock(
            self.read_as_sent_by('1.13'), '172.168.1.15')
        primitive = self.serializer.serialize_entity(self.ctxt, data)
        self.useFixture(mn_fixtures.PluginOffFixture())
        self.serializer._conductor = NoBackportConductor()
        read = self.serializer.deserialize_entity(self.ctxt, primitive)
        # 1.13.1 is compatible with stock 1.14: read as stock, the field
        # dropped, as from a plugin destination before this scheme.
        self.assertIs(objects.StockLibvirtLiveMigrateData, type(read))
        self.assertEqual(
            self.serializer.serialize_entity(
                self.ctxt, self.read_as_sent_by('1.13'))['nova_object.data'],
            read.obj_to_primitive()['nova_object.data'])

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
        stock = classes.index(objects.StockLibvirtLiveMigrateData)
        self.assertEqual([objects.LibvirtLiveMigrateData] + objects.ALIASES,
                         classes[stock + 1:stock + 2 + len(objects.ALIASES)])
        major, minor = objects.StockLibvirtLiveMigrateData.VERSION.split('.')
        self.assertEqual(['%s.%s.2' % (major, minor)] +
                         ['%s.%d.1' % (major, older)
                          for older in range(int(minor), -1, -1)],
                         [cls.VERSION for cls in classes[stock + 1:]])
        objects.unregister()
        objects.unregister()
        self.assertEqual(before, classes)
