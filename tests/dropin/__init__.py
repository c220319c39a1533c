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
field. A violation is not raised inside nova's code, where nova's own
handlers could catch it: it is appended, with the test id and the stack, to
a file per worker process in ``NOVA_MIGRATION_NET_WIRE_DIR``, and
``tools/dropin_report.py`` fails when any such file is not empty.

Each test is bounded by :mod:`tests.watchdog`.

Run with ``tox -e dropin`` (eventlet) and ``tox -e dropin-threading``
(native threading, ``OS_NOVA_DISABLE_EVENTLET_PATCHING=1`` as nova's own
tests select it). Each runs nova's unit and functional selections as two
stestr runs, as nova keeps them apart, and ``tools/dropin_report.py`` then
checks that exactly :data:`EXPECTED_TESTS` ran and passed.
"""

import os
import pkgutil
import re
import tempfile
import traceback
import unittest

from nova.objects import base as nova_base
import nova.tests.functional.libvirt

from tests.dropin import cell_lock
from tests import fixtures as mn_fixtures
from tests import watchdog

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

# How many tests the selection holds on nova 34.0.0, in both concurrency
# modes: nova 34 skips none of them in native threading mode and all pass
# there. A selection that shrinks or grows fails the tier: update this only
# after reading why.
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


WIRE_DIR_VAR = 'NOVA_MIGRATION_NET_WIRE_DIR'


def wire_dir():
    """Where workers record stock-wire violations, one file per process."""
    return (os.environ.get(WIRE_DIR_VAR) or
            os.path.join(tempfile.gettempdir(), 'nova-migration-net-wire'))


def wire_violations():
    """{file: text} of every non-empty violation file in :func:`wire_dir`."""
    found = {}
    try:
        names = sorted(os.listdir(wire_dir()))
    except FileNotFoundError:
        return found
    for name in names:
        path = os.path.join(wire_dir(), name)
        with open(path) as f:
            text = f.read()
        if text:
            found[path] = text
    return found


def check_stock_wire():
    """Record every non-stock object nova's RPC serializer writes."""
    serialize = nova_base.NovaObjectSerializer.serialize_entity

    def serialize_entity(self, context, entity):
        primitive = serialize(self, context, entity)
        problems = list(_not_stock(primitive))
        if problems:
            _record(problems)
        return primitive

    nova_base.NovaObjectSerializer.serialize_entity = serialize_entity


def _record(problems):
    os.makedirs(wire_dir(), exist_ok=True)
    path = os.path.join(wire_dir(), 'wire-%d.txt' % os.getpid())
    with open(path, 'a') as f:
        f.write('%s: %s\n%s\n' % (
            watchdog.current_test(), '; '.join(problems),
            ''.join(traceback.format_stack())))


def _not_stock(primitive):
    if isinstance(primitive, dict):
        if primitive.get('nova_object.name') == 'LibvirtLiveMigrateData':
            version = primitive['nova_object.version']
            if version.count('.') != 1:
                yield ('plugin version %s on the wire with the option unset'
                       % version)
            if 'migration_ip' in primitive.get('nova_object.data', {}):
                yield 'plugin field migration_ip on the wire'
        for value in primitive.values():
            yield from _not_stock(value)
    elif isinstance(primitive, (list, tuple)):
        for value in primitive:
            yield from _not_stock(value)


def load_tests(loader, standard_tests, pattern):
    mn_fixtures.open_config_source()
    check_stock_wire()
    # nova's test database lock can deadlock its live-migration tests; see
    # cell_lock.
    cell_lock.use_in_nova_fixtures()
    tests = select(loader)
    suite = watchdog.WatchedSuite(tests)
    if len(tests) != EXPECTED_TESTS:
        suite.addTest(SelectionChanged(len(tests)))
    return suite
