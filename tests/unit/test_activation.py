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

"""Activation: through oslo.config, idempotent, undoable, guarded."""

import json
import os
import subprocess
import sys
import textwrap

from nova.compute import manager as compute_manager
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.virt import fake
from nova.virt.libvirt import driver as libvirt_driver
from oslo_config import cfg
from oslo_config import generator
from oslo_versionedobjects import base as ovo_base
import stevedore

from nova_migration_net import activation
from nova_migration_net import objects
from tests import fixtures as mn_fixtures

HOOKED = sorted(activation.KNOWN_SIGNATURES)


def hooked_methods():
    return sorted(name for name in HOOKED
                  if hasattr(getattr(libvirt_driver.LibvirtDriver, name),
                             '__wrapped__'))


def plugin_registered():
    return objects.LibvirtLiveMigrateData in (
        ovo_base.VersionedObjectRegistry.obj_classes()[
            'LibvirtLiveMigrateData'])


class TestActivation(test.NoDBTestCase):

    def test_entry_points_declare_one_hook_per_known_method(self):
        names = stevedore.ExtensionManager(activation.HOOK_NAMESPACE).names()
        self.assertEqual(HOOKED, sorted(names))

    def test_option_is_listed_for_the_config_generator(self):
        groups = dict(generator._list_opts(['nova_migration_net']))
        # _list_opts yields (namespace, [(group, opts)]).
        [(group, opts)] = groups['nova_migration_net']
        self.assertEqual('DEFAULT', group)
        self.assertEqual(['my_live_migration_ip'], [o.name for o in opts])

    def useLibvirtDriver(self):
        """A LibvirtDriver as nova-compute's load_compute_driver makes it."""
        if not getattr(self, 'fake_libvirt', None):
            self.fake_libvirt = self.useFixture(nova_fixtures.LibvirtFixture())
        return libvirt_driver.LibvirtDriver(fake.FakeVirtAPI(), False)

    def test_opening_the_source_arms_and_the_driver_activates(self):
        originals = {name: getattr(libvirt_driver.LibvirtDriver, name)
                     for name in HOOKED + ['__init__']}
        manager_init = compute_manager.ComputeManager.__init__
        self.addCleanup(activation.deactivate)
        mn_fixtures.open_config_source()
        # Opening hooks nothing: nova has not loaded its driver yet.
        self.assertTrue(activation.is_armed())
        self.assertFalse(activation.is_active())
        self.assertEqual([], hooked_methods())
        self.assertFalse(plugin_registered())
        # This process's eventlet (or none) patched in time, so the early
        # imports' report leaves nova-compute's manager as it is.
        self.assertIs(manager_init, compute_manager.ComputeManager.__init__)
        self.useLibvirtDriver()
        self.assertTrue(activation.is_active())
        self.assertEqual(HOOKED, hooked_methods())
        self.assertTrue(plugin_registered())
        # The trap is gone once it has fired.
        self.assertIs(originals['__init__'],
                      libvirt_driver.LibvirtDriver.__init__)
        for name in HOOKED:
            self.assertIs(
                originals[name],
                getattr(libvirt_driver.LibvirtDriver, name).__wrapped__)
        self.assertEqual(
            1, self.stdlog.logger.output.count('nova-migration-net is active'))
        activation.deactivate()
        self.assertFalse(activation.is_active())
        self.assertFalse(plugin_registered())
        for name, original in originals.items():
            self.assertIs(original, getattr(libvirt_driver.LibvirtDriver,
                                            name))

    def test_deactivate_before_the_driver_loads_removes_the_trap(self):
        init = libvirt_driver.LibvirtDriver.__init__
        mn_fixtures.open_config_source()
        self.assertIsNot(init, libvirt_driver.LibvirtDriver.__init__)
        activation.deactivate()
        self.assertFalse(activation.is_armed())
        self.assertIs(init, libvirt_driver.LibvirtDriver.__init__)
        self.useLibvirtDriver()
        self.assertFalse(activation.is_active())

    def test_a_configuration_of_its_own_only_gets_the_options(self):
        # nova's early concurrency parse, privsep or a tool parse nova.conf
        # in a ConfigOpts of their own: nothing is armed or hooked there.
        init = libvirt_driver.LibvirtDriver.__init__
        conf = cfg.ConfigOpts()
        mn_fixtures.open_config_source(conf)
        conf([])
        self.assertIsNone(conf.my_live_migration_ip)
        self.assertEqual([], conf.migration_net.migration_networks)
        self.assertFalse(activation.is_armed())
        self.assertIs(init, libvirt_driver.LibvirtDriver.__init__)
        self.useLibvirtDriver()
        self.assertFalse(activation.is_active())

    def test_activation_is_idempotent(self):
        self.useFixture(mn_fixtures.MigrationNetFixture())
        hooked = libvirt_driver.LibvirtDriver.live_migration
        self.assertTrue(activation.activate())
        self.useLibvirtDriver()
        self.assertIs(hooked, libvirt_driver.LibvirtDriver.live_migration)
        classes = ovo_base.VersionedObjectRegistry.obj_classes()[
            'LibvirtLiveMigrateData']
        self.assertEqual(1, classes.count(objects.LibvirtLiveMigrateData))

    def assertRefusedToActivate(self):
        """Loading the driver leaves nova stock; returns the ERROR line."""
        self.addCleanup(activation.deactivate)
        mn_fixtures.open_config_source()
        self.useLibvirtDriver()
        self.assertFalse(activation.is_active())
        self.assertEqual([], hooked_methods())
        self.assertFalse(plugin_registered())
        errors = [line for line in self.stdlog.logger.output.splitlines()
                  if 'ERROR [nova_migration_net.activation]' in line]
        self.assertEqual(1, len(errors))
        self.assertIn('nova-migration-net is NOT active', errors[0])
        return errors[0]

    def test_unknown_driver_signature_leaves_nova_stock(self):
        self.useFixture(mn_fixtures.UnknownNovaFixture())
        error = self.assertRefusedToActivate()
        self.assertIn('LibvirtDriver.live_migration(self, context, instance, '
                      'dest, post_method, recover_method, block_migration, '
                      'migrate_data, new_argument) instead of', error)
        # A second driver does not try again.
        self.useLibvirtDriver()
        self.assertEqual(1, self.stdlog.logger.output.count('is NOT active'))

    def test_stable_branch_object_version_leaves_nova_stock(self):
        self.useFixture(mn_fixtures.StableBranchNovaFixture())
        error = self.assertRefusedToActivate()
        stock = objects.StockLibvirtLiveMigrateData.VERSION
        self.assertIn('LibvirtLiveMigrateData is version %s, a stable-branch '
                      'version; the plugin\'s %s.1 would be read' %
                      (stock, stock), error)


NOVA_CONF = """\
[DEFAULT]
config_source = migration_net
my_live_migration_ip = 172.168.1.15

[migration_net]
driver = nova_migration_net
"""

# Parses a nova.conf with nova's own parse_args, as nova-compute does, then
# loads the libvirt driver (on nova's fake libvirt) as nova-compute's
# load_compute_driver does, and reports what the plugin did at each step.
PROBE = mn_fixtures.INSTALLED_OR_NOT + textwrap.dedent("""\
    import json
    from nova import config
    config.parse_args(['nova-compute', '--config-file', sys.argv[1]],
                      configure_db=False, init_rpc=False)
    from oslo_config import cfg
    report = {'driver_imported_by_parse':
              'nova.virt.libvirt.driver' in sys.modules}
    def hooked():
        from nova.virt.libvirt import driver
        return sorted(name for name in ('init_host', 'live_migration',
                                        'pre_live_migration',
                                        '_live_migration_operation')
                      if hasattr(getattr(driver.LibvirtDriver, name),
                                 '__wrapped__'))
    report['hooked_on_import'] = hooked()
    from nova.tests.fixtures import libvirt as fakelibvirt
    sys.modules['libvirt'] = fakelibvirt
    from nova.virt import driver as virt_driver
    from nova.virt import fake
    virt_driver.load_compute_driver(fake.FakeVirtAPI(),
                                    'libvirt.LibvirtDriver')
    report['hooked_on_load'] = hooked()
    report['my_live_migration_ip'] = (
        cfg.CONF.my_live_migration_ip if 'my_live_migration_ip' in cfg.CONF
        else 'not registered')
    report['plugin_imported'] = 'nova_migration_net' in sys.modules
    print(json.dumps(report))
    """)


class TestActivationFromNovaConf(test.NoDBTestCase):

    def parse(self, mode):
        conf = self.create_tempfiles([('nova', NOVA_CONF)])[0]
        env = dict(os.environ, PYTHONWARNINGS='ignore')
        result = subprocess.run(
            [sys.executable, '-c', PROBE, mode, conf], env=env,
            capture_output=True, text=True, timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.splitlines()[-1]), result.stderr

    def test_nova_conf_activates_the_plugin_when_nova_loads_its_driver(self):
        report, _ = self.parse('with-plugin')
        self.assertEqual(
            {'driver_imported_by_parse': False, 'hooked_on_import': [],
             'hooked_on_load': HOOKED,
             'my_live_migration_ip': '172.168.1.15',
             'plugin_imported': True}, report)

    def test_same_nova_conf_without_the_plugin_runs_stock(self):
        report, stderr = self.parse('without-plugin')
        self.assertEqual(
            {'driver_imported_by_parse': False, 'hooked_on_import': [],
             'hooked_on_load': [], 'my_live_migration_ip': 'not registered',
             'plugin_imported': False}, report)
        self.assertIn("could not load configuration from 'migration_net'",
                      stderr)
