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

"""Drop-in tier: nova's own live-migration tests with the plugin active.

The tests come from the installed nova wheel and run unchanged: the
live-migration tests of nova's libvirt driver, compute manager, conductor
and whole-stack functional cloud, and nova's object tests. The plugin
is activated once per test process through its ``oslo.config.driver`` entry
point, as in a nova service, and ``my_live_migration_ip`` stays unset: nova
must not be able to tell the plugin is there.

Beyond nova's own assertions, every ``LibvirtLiveMigrateData`` nova's RPC
serializer writes is checked to be stock: nova's version label and no plugin
field.

Run with ``tox -e dropin``; ``tools/dropin_report.py`` then checks that
exactly :data:`EXPECTED_TESTS` ran and passed.
"""

import pkgutil
import re
import unittest

from nova.objects import base as nova_base
import nova.tests.functional.libvirt

from tests import fixtures as mn_fixtures

# Modules taken whole: each is about live migration.
WHOLE_MODULES = (
    'nova.tests.unit.virt.libvirt.test_migration',
    'nova.tests.unit.conductor.tasks.test_live_migrate',
    'nova.tests.unit.objects.test_migrate_data',
    # nova's object tests, with its object hash test (TestObjectVersions):
    # nova's registry still resolves every name to the stock class.
    'nova.tests.unit.objects.test_objects',
    'nova.tests.functional.libvirt.test_live_migration',
    'nova.tests.functional.libvirt.test_numa_live_migration',
    'nova.tests.functional.libvirt.test_migration_addr',
)
# Modules from which the live-migration tests are taken.
MIXED_MODULES = (
    'nova.tests.unit.virt.libvirt.test_driver',
    'nova.tests.unit.compute.test_compute_mgr',
    'nova.tests.functional.test_servers',
) + tuple(
    'nova.tests.functional.libvirt.' + module.name
    for module in pkgutil.iter_modules(nova.tests.functional.libvirt.__path__)
    if module.name.startswith('test_'))
LIVE_MIGRATION = re.compile(r'live_?migrat|pre_live|migrate_data|livem',
                            re.IGNORECASE)

# How many tests the selection holds on nova 34.0.0. A selection that
# shrinks or grows fails the tier: update this only after reading why.
EXPECTED_TESTS = 518


def _tests_in(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _tests_in(test)
        else:
            yield test


def select(loader):
    """nova's live-migration tests, in a stable order."""
    tests = []
    for name in WHOLE_MODULES:
        tests.extend(_tests_in(loader.loadTestsFromName(name)))
    for name in MIXED_MODULES:
        if name in WHOLE_MODULES:
            continue
        tests.extend(test for test in _tests_in(loader.loadTestsFromName(name))
                     if LIVE_MIGRATION.search(test.id()))
    return tests


class SelectionChanged(unittest.TestCase):
    """Fails when the selection no longer has the expected size."""

    def __init__(self, found):
        super().__init__('test_selection_size')
        self.found = found

    def test_selection_size(self):
        self.fail('the drop-in selection has %d of nova\'s tests, %d '
                  'expected' % (self.found, EXPECTED_TESTS))


def check_stock_wire():
    """Make nova's RPC serializer refuse to write a non-stock object."""
    serialize = nova_base.NovaObjectSerializer.serialize_entity

    def serialize_entity(self, context, entity):
        primitive = serialize(self, context, entity)
        _assert_stock(primitive)
        return primitive

    nova_base.NovaObjectSerializer.serialize_entity = serialize_entity


def _assert_stock(primitive):
    if isinstance(primitive, dict):
        if primitive.get('nova_object.name') == 'LibvirtLiveMigrateData':
            version = primitive['nova_object.version']
            assert version.count('.') == 1, (
                'plugin version %s on the wire with the option unset'
                % version)
            assert 'migration_ip' not in primitive.get('nova_object.data', {})
        for value in primitive.values():
            _assert_stock(value)
    elif isinstance(primitive, (list, tuple)):
        for value in primitive:
            _assert_stock(value)


def load_tests(loader, standard_tests, pattern):
    mn_fixtures.open_config_source()
    check_stock_wire()
    tests = select(loader)
    suite = unittest.TestSuite(tests)
    if len(tests) != EXPECTED_TESTS:
        suite.addTest(SelectionChanged(len(tests)))
    return suite
