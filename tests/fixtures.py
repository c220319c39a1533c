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

import collections
import socket
import textwrap

import fixtures
from nova.compute import rpcapi as compute_rpcapi
from nova import version as nova_version
from oslo_config import cfg
import stevedore
import testtools

from nova_migration_net import activation
from nova_migration_net import objects

CONF = cfg.CONF

# The major version of the installed nova: 34 for 2026.2, 32 for 2025.2.
NOVA_RELEASE = int(nova_version.version_string().split('.')[0])


def requires_nova(release, why):
    """Skip a test that pins behaviour of nova ``release`` or later."""
    return testtools.skipIf(NOVA_RELEASE < release,
                            'nova %d: %s' % (NOVA_RELEASE, why))


class MigrationNetFixture(fixtures.Fixture):
    """Activate the plugin the way nova-compute does, and undo it.

    The plugin's ``oslo.config.driver`` entry point is loaded with stevedore,
    as oslo.config does for ``[DEFAULT] config_source``, and its source is
    opened against ``conf``; then the plugin activates as it does when
    nova-compute instantiates its ``LibvirtDriver``, whether or not the test
    instantiates one.
    """

    def __init__(self, conf=CONF, group='migration_net'):
        super().__init__()
        self.conf = conf
        self.group = group

    def _setUp(self):
        self.addCleanup(activation.deactivate)
        open_config_source(self.conf, self.group)
        if not activation.activate():
            raise RuntimeError('nova-migration-net refused to activate')


class MigrationNetworksFixture(fixtures.Fixture):
    """``[migration_net] migration_networks`` on this process's ``conf``.

    The plugin's source, opened as oslo.config opens it, chooses the
    addresses from the interface table (:class:`InterfacesFixture`) as at
    nova-compute's start-up; ``my_live_migration_ip`` then holds the first
    of them, as the source gives it to oslo.config.
    """

    def __init__(self, networks, conf=CONF, group='migration_net'):
        super().__init__()
        self.networks = networks
        self.conf = conf
        self.group = group

    def _setUp(self):
        from nova_migration_net import conf as mn_conf
        # Kept as oslo.config keeps the sources it opened.
        self.source = source = open_config_source(self.conf, self.group)
        self.conf.set_override('migration_networks', self.networks,
                               group=self.group)
        self.addCleanup(self.conf.clear_override, 'migration_networks',
                        group=self.group)
        value, _ = source.get(None, 'my_live_migration_ip',
                              mn_conf.migration_net_opts[0])
        self.conf.set_override('my_live_migration_ip', value)
        self.addCleanup(self.conf.clear_override, 'my_live_migration_ip')


def open_config_source(conf=CONF, group='migration_net'):
    """Open the plugin's oslo.config source as oslo.config does.

    On ``cfg.CONF`` this arms activation: the plugin activates when this
    process next instantiates ``LibvirtDriver``.
    """
    manager = stevedore.driver.DriverManager(
        'oslo.config.driver', 'nova_migration_net', invoke_on_load=True)
    return manager.driver.open_source_from_opt_group(conf, group)


# The start of a ``python -c`` probe whose first argument is "with-plugin"
# or "without-plugin" (taken off ``sys.argv``): without, the package cannot
# be imported, as on a host where nova.conf names the source but the package
# is not installed.
INSTALLED_OR_NOT = textwrap.dedent("""\
    import sys
    if sys.argv.pop(1) == 'without-plugin':
        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] == 'nova_migration_net':
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, NotInstalled())
    """)


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


# psutil's own named tuple is private.
InterfaceAddress = collections.namedtuple(
    'InterfaceAddress', 'family address netmask broadcast ptp')


def interface(family, address, netmask=None, broadcast=None):
    """One address of an interface, as ``psutil.net_if_addrs()`` lists it."""
    family = {4: socket.AF_INET, 6: socket.AF_INET6}[family]
    return InterfaceAddress(family, address, netmask, broadcast, None)


# A compute host with a migration network on eth1.
MIGRATION_HOST_INTERFACES = {
    'lo': [interface(4, '127.0.0.1', '255.0.0.0'),
           interface(6, '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')],
    'eth0': [interface(4, '192.0.2.15', '255.255.255.0', '192.0.2.255'),
             interface(6, 'fe80::15%eth0', 'ffff:ffff:ffff:ffff::')],
    'eth1': [interface(4, '172.168.1.15', '255.255.0.0', '172.168.255.255'),
             interface(6, 'fd00:30::15', 'ffff:ffff:ffff:ffff::')],
}


class InterfacesFixture(fixtures.Fixture):
    """The host's interface table, ``psutil.net_if_addrs()``.

    nova's test base refuses to let tests read the real one.
    """

    def __init__(self, interfaces=None):
        """:param interfaces: the table, or an exception to raise."""
        super().__init__()
        self.interfaces = (MIGRATION_HOST_INTERFACES if interfaces is None
                           else interfaces)

    def _setUp(self):
        self.useFixture(fixtures.MonkeyPatch(
            'psutil.net_if_addrs', self.net_if_addrs))

    def net_if_addrs(self):
        if isinstance(self.interfaces, Exception):
            raise self.interfaces
        return self.interfaces


class UnknownNovaFixture(fixtures.Fixture):
    """A nova whose ``LibvirtDriver.live_migration`` takes a new argument.

    Not fixtures.MonkeyPatch: it wraps the new function in one that carries
    nova's signature, which the plugin's guard would then accept.
    """

    def _setUp(self):
        from nova.virt.libvirt import driver as libvirt_driver

        def live_migration(self, context, instance, dest, post_method,
                           recover_method, block_migration=False,
                           migrate_data=None, new_argument=None):
            pass

        driver_cls = libvirt_driver.LibvirtDriver
        self.addCleanup(setattr, driver_cls, 'live_migration',
                        driver_cls.live_migration)
        driver_cls.live_migration = live_migration


class StableBranchNovaFixture(fixtures.Fixture):
    """A nova whose stock ``LibvirtLiveMigrateData`` is ``1.14.1``.

    oslo.versionedobjects reserves the third part for stable-branch
    backports; no nova has shipped one for this object yet.
    """

    def _setUp(self):
        from nova_migration_net import objects
        stock = objects.StockLibvirtLiveMigrateData
        self.useFixture(fixtures.MonkeyPatch(
            '%s.%s.VERSION' % (stock.__module__, stock.__name__),
            stock.VERSION + '.1'))


class RaisesFixture(fixtures.Fixture):
    """Calling ``name`` (a dotted path) raises ``error``: a conductor that
    does not answer (``InstanceActionEvent.create``), a notification bus
    that is gone (the plugin's notification ``_emit``).
    """

    def __init__(self, name, error):
        self.name = name
        self.error = error

    def _setUp(self):
        def fail(*args, **kwargs):
            raise self.error
        self.useFixture(fixtures.MonkeyPatch(self.name, fail))
