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

"""One nova compute or conductor process, stock or with the plugin.

Run as ``python -m tests.functional.nova_peer {stock|plugin} NOVA_CONF``.
The process parses ``NOVA_CONF`` with nova's own ``parse_args``, as
nova-compute does; ``plugin`` processes activate nova-migration-net through
the ``config_source`` lines of that file, ``stock`` processes cannot import
the package at all, as on a host where it is not installed. Which
nova-migration-net a plugin process runs is the first one on its
``sys.path``: an older plugin's tree put first runs that plugin.

``NOVA_PEER_INTERFACES``, when set, is the host's interface table as JSON
(``{"eth1": [[4, "172.168.1.15", "255.255.0.0"]]}``), for
``[migration_net] migration_networks``: the test machine has none of the
migration networks' addresses.

It then plays the part of a host in a live migration, one hop per request.
Requests and replies are JSON lines on stdin and stdout; live migration data
crosses as the primitive nova's ``NovaObjectSerializer`` writes for RPC and
is read back with the same serializer, so every hop goes through the RPC
layer's code exactly as between two nova services. A serializer that needs a
backport asks the orchestrator, which asks the conductor process.

The destination's ``pre_live_migration`` and the source's
``live_migration`` are the real ``LibvirtDriver`` methods (on nova's fake
libvirt), hooks included where the plugin is active. The source stops where
nova would spawn the migration thread and reports the libvirt URIs nova's
``_live_migration_operation`` derives from the data.
"""

import collections
import json
import os
import socket
import sys
import traceback

BLOCK = 'stock'
PROTOCOL = None


class NotInstalled:
    """Hide the plugin from a stock process, as if not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'nova_migration_net':
            raise ModuleNotFoundError(name)


if __name__ == '__main__' and sys.argv[1] == BLOCK:
    sys.meta_path.insert(0, NotInstalled())

from nova import monkey_patch  # noqa: E402
monkey_patch.patch()

from nova.compute import manager as compute_manager  # noqa: E402,F401
from nova.conductor import manager as conductor_manager  # noqa: E402
from nova import config  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import objects  # noqa: E402
from nova.objects import base as nova_base  # noqa: E402
from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.tests.unit import fake_instance  # noqa: E402
from nova.virt import fake as fake_virt  # noqa: E402
from nova.virt.libvirt import driver as libvirt_driver  # noqa: E402

from tests.functional import nova_steps  # noqa: E402


class Peer:

    def __init__(self, conf_file):
        table = os.environ.get('NOVA_PEER_INTERFACES')
        if table:
            interfaces_table(json.loads(table))
        config.parse_args(['nova-compute', '--config-file', conf_file],
                          configure_db=False, init_rpc=False)
        objects.register_all()
        nova_fixtures.LibvirtFixture().setUp()
        self.ctxt = nova_context.get_admin_context()
        self.instance = fake_instance.fake_instance_obj(
            self.ctxt, uuid=nova_steps.INSTANCE_UUID, host='src',
            node='src')
        self.serializer = nova_base.NovaObjectSerializer()
        self.serializer._conductor = self
        self.driver = libvirt_driver.LibvirtDriver(fake_virt.FakeVirtAPI(),
                                                   False)

    # -- the wire ---------------------------------------------------------

    def read(self, primitive):
        return self.serializer.deserialize_entity(self.ctxt, primitive)

    def write(self, migrate_data):
        return self.serializer.serialize_entity(self.ctxt, migrate_data)

    def object_backport_versions(self, context, objprim, object_versions):
        """What nova's conductor API does: ask the conductor service."""
        reply = exchange({'backport': objprim, 'versions': object_versions})
        return self.read(reply['primitive'])

    def versions(self):
        """This process's nova, and the object versions it writes."""
        from nova import version
        try:
            from nova_migration_net import objects as plugin_objects
            plugin = plugin_objects.LibvirtLiveMigrateData.VERSION
        except ImportError:
            plugin = None
        return {'nova': version.version_string(),
                'stock': objects.LibvirtLiveMigrateData.VERSION,
                'plugin': plugin}

    # -- the hops ---------------------------------------------------------

    def check_destination(self):
        """Destination: the data check_can_live_migrate_destination builds."""
        data = objects.LibvirtLiveMigrateData(
            **nova_steps.DESTINATION_CHECKS)
        return self.write(data)

    def check_source(self, primitive):
        """Source: check_can_live_migrate_source adds what it knows."""
        data = self.read(primitive)
        for name, value in nova_steps.SOURCE_CHECKS.items():
            setattr(data, name, value)
        data.bdms = [objects.LibvirtLiveMigrateBDMInfo(
            serial='0b4ab8a0-9ad8-4b3c-8c5e-6a1f2e3d4c5b', bus='virtio',
            dev='vdb', type='disk')]
        return self.write(data)

    def relay(self, primitive):
        """Conductor: keep the data and send it on to the source."""
        return self.write(self.read(primitive))

    def backport(self, primitive, versions):
        """Conductor: nova's ConductorManager.object_backport_versions."""
        objinst = self.read(primitive)
        return conductor_manager.ConductorManager.object_backport_versions(
            None, self.ctxt, objinst, versions)

    def pre_live_migration(self, primitive):
        """Destination: the real LibvirtDriver.pre_live_migration."""
        data = self.driver.pre_live_migration(
            self.ctxt, self.instance, None, [], None, self.read(primitive))
        return self.write(data)

    def live_migration(self, primitive):
        """Source: the real LibvirtDriver.live_migration.

        It stops where nova spawns the migration thread and returns the
        URIs nova would hand libvirt.
        """
        seen = []
        self.driver._live_migration = (
            lambda context, instance, dest, post, recover, block, data:
            seen.append(data))
        self.driver.live_migration(self.ctxt, self.instance, 'dest', None,
                                   None, False, self.read(primitive))
        [data] = seen
        dconnuri, migrate_uri = nova_steps.libvirt_uris(self.driver, 'dest',
                                                        data)
        return {'dconnuri': dconnuri, 'migrate_uri': migrate_uri,
                'class': type(data).__module__,
                'addresses': self.advertised(data)}

    @staticmethod
    def advertised(data):
        """The addresses this source read from the destination, in order,
        as far as its plugin reads them (None without the plugin).
        """
        try:
            from nova_migration_net import objects as plugin_objects
        except ImportError:
            return None
        read = getattr(plugin_objects, 'migration_addresses_of', None)
        if read is None:
            # Plugin version 1 reads one address.
            first = plugin_objects.migration_ip_of(data)
            return [] if first is None else [str(first)]
        return [str(a) for a in read(data)]


def interfaces_table(table):
    """Make ``psutil.net_if_addrs()`` return ``table`` (see above).

    Not tests.fixtures.InterfacesFixture: that module imports the plugin,
    which a stock process cannot.
    """
    import psutil
    address = collections.namedtuple(
        'InterfaceAddress', 'family address netmask broadcast ptp')
    families = {4: socket.AF_INET, 6: socket.AF_INET6}
    table = {name: [address(families[family], addr, mask, None, None)
                    for family, addr, mask in addrs]
             for name, addrs in table.items()}
    psutil.net_if_addrs = lambda: table


def exchange(message):
    PROTOCOL.write(json.dumps(message) + '\n')
    PROTOCOL.flush()
    return json.loads(sys.stdin.readline())


def main():
    global PROTOCOL
    # Requests and replies own stdout; whatever nova prints goes to stderr.
    PROTOCOL = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)
    peer = Peer(sys.argv[2])
    request = exchange({'ready': True})
    while request:
        try:
            result = getattr(peer, request['op'])(*request.get('args', []))
            request = exchange({'result': result})
        except Exception:
            request = exchange({'error': traceback.format_exc()})


if __name__ == '__main__':
    main()
