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

"""The drop-in tier's stock-wire check records, it never raises."""

import os

import fixtures
from nova import context as nova_context
from nova import objects as nova_objects
from nova.objects import base as nova_base
import testtools

from nova_migration_net import objects
from tests import dropin


class TestStockWireCheck(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.wire = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'wire')
        self.useFixture(fixtures.EnvironmentVariable(dropin.WIRE_DIR_VAR,
                                                     self.wire))
        # check_stock_wire() wraps nova's serializer; put it back after.
        self.useFixture(fixtures.MonkeyPatch(
            'nova.objects.base.NovaObjectSerializer.serialize_entity',
            nova_base.NovaObjectSerializer.serialize_entity))
        dropin.check_stock_wire()
        self.serializer = nova_base.NovaObjectSerializer()
        self.context = nova_context.get_admin_context()

    def test_plugin_object_is_recorded_outside_nova_and_not_raised(self):
        data = objects.LibvirtLiveMigrateData(migration_ip='172.168.1.15')

        # Nested, as the RPC call's arguments carry it.
        primitive = self.serializer.serialize_entity(
            self.context, {'migrate_data': data})

        self.assertEqual(objects.LibvirtLiveMigrateData.VERSION,
                         primitive['migrate_data']['nova_object.version'])
        violations = dropin.wire_violations()
        self.assertEqual(
            [os.path.join(self.wire, 'wire-%d.txt' % os.getpid())],
            list(violations))
        text = list(violations.values())[0]
        self.assertIn('plugin version %s on the wire with the option unset'
                      % objects.LibvirtLiveMigrateData.VERSION, text)
        self.assertIn('plugin field migration_ip on the wire', text)
        # The stack says who serialized it.
        self.assertIn('test_plugin_object_is_recorded_outside_nova', text)

    def test_stock_object_leaves_no_record(self):
        data = nova_objects.LibvirtLiveMigrateData(
            target_connect_addr=None)

        self.serializer.serialize_entity(self.context, [data])

        self.assertEqual({}, dropin.wire_violations())
