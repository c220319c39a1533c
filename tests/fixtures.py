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

"""Fixtures shared by the unit and functional tests."""

import fixtures
from nova.compute import rpcapi as compute_rpcapi
from oslo_config import cfg
import stevedore

from nova_migration_net import activation
from nova_migration_net import objects

CONF = cfg.CONF


class MigrationNetFixture(fixtures.Fixture):
    """Activate the plugin the way a nova service does, and undo it.

    The plugin's ``oslo.config.driver`` entry point is loaded with stevedore,
    as oslo.config does for ``[DEFAULT] config_source``, and its source is
    opened against ``conf``.
    """

    def __init__(self, conf=CONF, group='migration_net'):
        super().__init__()
        self.conf = conf
        self.group = group

    def _setUp(self):
        self.addCleanup(activation.deactivate)
        open_config_source(self.conf, self.group)


def open_config_source(conf=CONF, group='migration_net'):
    """Open the plugin's oslo.config source as oslo.config does."""
    manager = stevedore.driver.DriverManager(
        'oslo.config.driver', 'nova_migration_net', invoke_on_load=True)
    manager.driver.open_source_from_opt_group(conf, group)
    if not activation.is_active():
        raise RuntimeError('nova-migration-net refused to activate')


def read_as_stock_nova(migrate_data):
    """``migrate_data`` as a nova process without the plugin receives it.

    The object is serialized for RPC, and the primitive is read the way
    stock nova's ``NovaObjectSerializer`` reads a version it does not know:
    ``X.Y.Z`` becomes ``X.Y``, the class is nova's own, and fields that class
    does not have are left behind.
    """
    primitive = migrate_data.obj_to_primitive()
    version = primitive['nova_object.version']
    primitive['nova_object.version'] = '.'.join(version.split('.')[:2])
    return objects.StockLibvirtLiveMigrateData.obj_from_primitive(
        primitive, context=migrate_data._context)


class StockConductorFixture(fixtures.Fixture):
    """The conductor's hops of the live migration data run stock nova.

    The conductor receives the data from the destination's
    ``check_can_live_migrate_destination`` and sends it to the source's
    ``live_migration``; both hops go through :func:`read_as_stock_nova`.
    ``self.hops`` counts them, so a test can show the conductor took part.
    """

    def _setUp(self):
        self.hops = 0
        rpcapi = compute_rpcapi.ComputeAPI
        check = rpcapi.check_can_live_migrate_destination
        live_migration = rpcapi.live_migration

        def stock_check(api, *args, **kwargs):
            self.hops += 1
            return read_as_stock_nova(check(api, *args, **kwargs))

        def stock_live_migration(api, ctxt, instance, dest, block_migration,
                                 host, migration, migrate_data=None):
            self.hops += 1
            return live_migration(api, ctxt, instance, dest, block_migration,
                                  host, migration,
                                  migrate_data=read_as_stock_nova(
                                      migrate_data))

        self.useFixture(fixtures.MonkeyPatch(
            'nova.compute.rpcapi.ComputeAPI.'
            'check_can_live_migrate_destination', stock_check))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.compute.rpcapi.ComputeAPI.live_migration',
            stock_live_migration))


class PluginOffFixture(fixtures.Fixture):
    """Deactivate the plugin for the rest of a test."""

    def _setUp(self):
        activation.deactivate()
