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

r"""
nova-migration-net's ``oslo.config`` driver: opening it activates the plugin.

nova has no extension point around the libvirt driver's live migration
calls, so the plugin hooks in where every oslo service looks for extensions
while it parses its configuration: the sources listed in ``[DEFAULT]
config_source``. A nova service whose configuration names a group with
``driver = nova_migration_net`` activates the plugin before it loads any
virt driver::

    [DEFAULT]
    config_source = migration_net
    my_live_migration_ip = 172.168.1.15

    [migration_net]
    driver = nova_migration_net

A host with these lines but without the package installed logs an oslo.config
error ("could not load configuration from 'migration_net'") and runs stock
nova. The source itself provides no option values.

.. autoclass:: MigrationNetDriver
.. autoclass:: MigrationNetSource
"""

from oslo_config import sources


class MigrationNetDriver(sources.ConfigurationSourceDriver):
    """Activates nova-migration-net in the process that opens it."""

    def list_options_for_discovery(self) -> list:
        return []

    def open_source_from_opt_group(self, conf, group_name: str):
        # Imported on open, not on load: oslo.config loads every installed
        # driver in every service, nova or not.
        from nova_migration_net import activation
        activation.activate(conf)
        return MigrationNetSource()


class MigrationNetSource(sources.ConfigurationSource):
    """A source without values; nova's own files hold the options."""

    def get(self, group_name, option_name, opt):
        return (sources._NoValue, None)
