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

"""The records never raise into the migration (no nova service here)."""

import logging

import fixtures
import testtools

from nova_migration_net import records


class TestNeverFails(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_migration_net.records', level=logging.DEBUG))

    def test_a_record_that_cannot_be_built_is_logged_not_raised(self):
        # Neither a request context nor an Instance: nothing can be built.
        records.source(None, {'uuid': 'x'}, 'dest', None,
                       records.PLANE_MIGRATION, '172.30.0.2')
        self.assertIn('Could not record which plane this live migration '
                      'uses (the records source)', self.log.output)
        self.assertIn('The migration goes on.', self.log.output)
        self.assertIn('Recorded the plane of this live migration (source) '
                      'in', self.log.output)

    def test_details_name_plane_address_and_reason(self):
        self.assertEqual(
            "management plane: streams to dest, the destination's "
            "hostname; native TLS and this host's libvirt has no "
            "tls.destination",
            records.details(records.PLANE_MANAGEMENT, 'dest',
                            records.REASON_STOCK_TLS))
