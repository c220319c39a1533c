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

"""nova-compute on a testbed host, with nova's real LibvirtDriver.

Started exactly as an operator starts it: the venv's ``nova-compute``
console script with ``--config-file`` and ``--log-file``, in a clean
environment (no ``OS_NOVA_DISABLE_EVENTLET_PATCHING``, nothing that
changes nova's start-up). A :class:`Spec` says how: whether the plugin is
installed (with pip, from this checkout, into the host's own venv) and
configured in ``nova.conf``, with which ``my_live_migration_ip``, and in
which of nova 34's concurrency modes (``[DEFAULT] concurrency_backend``;
native threading is nova 34's default).

Both hosts have the same ``instances_path``, each on its own storage: the
host's private mount namespace bind-mounts a per-host directory there, so
nova sees unshared storage and live-migrates with a block migration (nova
does not rewrite local disk paths in the migrated domain XML). As root,
privsep runs the venv's ``privsep-helper`` directly, without sudo or
rootwrap.
"""

import collections
import datetime
import os

from tests.cloud import install
from tests.cloud.services import base
from tests.cloud.services import nova

PLUGIN = 'nova-migration-net'

Spec = collections.namedtuple('Spec',
                              'plugin migration_ip concurrency libvirt')
Spec.__new__.__defaults__ = (False, None, None, ())
Spec.__doc__ = """How a nova-compute runs.

``plugin``: the plugin installed and its source configured;
``migration_ip``: ``my_live_migration_ip``, or None for unset;
``concurrency``: ``threading``, ``eventlet`` or None for nova's default;
``libvirt``: more ``[libvirt]`` options, as ``((option, value), ...)``.
"""

STOCK = Spec()

# What an operator adds to nova.conf for the plugin, as (section, option).
PLUGIN_LINES = (('DEFAULT', 'config_source'), ('migration_net', 'driver'),
                ('DEFAULT', 'my_live_migration_ip'))


class Compute(base.Service):

    name = 'nova-compute'

    def __init__(self, cloud, host):
        self.host = host
        self.name = 'nova-compute-' + host.name.rsplit('-', 1)[1]
        super().__init__(cloud)
        self.venv = cloud.venvs[host.name]
        self.conf = os.path.join(self.etc, 'nova.conf')
        self.spec = STOCK
        self.started_at = None
        self.starts = 0
        self._libvirt_options = ()

    @property
    def log(self):
        return os.path.join(self.cloud.log_dir, self.name + '.log')

    @property
    def output(self):
        return os.path.join(self.cloud.log_dir, self.name + '.out')

    def plugin_installed(self):
        proc = base.subprocess.run(
            [self.bin('pip', self.venv), 'show', '-q', PLUGIN],
            stdout=base.subprocess.DEVNULL, stderr=base.subprocess.DEVNULL,
            timeout=60, env=dict(base.BASE_ENV))
        return proc.returncode == 0

    def install(self):
        """Install or remove the plugin with pip, as ``spec`` says."""
        if self.spec.plugin and not self.plugin_installed():
            base.run(self.cloud.outside() + [
                self.bin('pip', self.venv), 'install', '-q',
                '--disable-pip-version-check', '-c', install.CONSTRAINTS,
                self.cloud.plugin_wheel()], timeout=install.PIP_TIMEOUT)
        elif not self.spec.plugin and self.plugin_installed():
            base.run([self.bin('pip', self.venv), 'uninstall', '-q', '-y',
                      PLUGIN])

    def configure(self):
        os.makedirs(self.etc, exist_ok=True)
        shared = self.cloud.instances_root
        own = os.path.join(self.state, 'nova')
        if not os.path.isdir(own):
            os.makedirs(os.path.join(own, 'instances'))
            os.makedirs(shared, exist_ok=True)
            base.run(['nsenter', '-t', str(self.cloud.host_pid(self.host)),
                      '-m', '--', 'mount', '--bind', own, shared])
        c = self.conf
        nova.configure_common(self.cloud, c, self.host)
        base.iniset(c, 'DEFAULT', 'state_path', shared)
        base.iniset(c, 'DEFAULT', 'instances_path',
                    os.path.join(shared, 'instances'))
        base.iniset(c, 'DEFAULT', 'compute_driver', 'libvirt.LibvirtDriver')
        base.iniset(c, 'libvirt', 'virt_type', 'qemu')
        base.iniset(c, 'libvirt', 'cpu_mode', 'none')
        base.iniset(c, 'libvirt', 'connection_uri', 'qemu:///system')
        base.iniset(c, 'libvirt', 'live_migration_scheme', 'tcp')
        base.iniset(c, 'oslo_concurrency', 'lock_path',
                    os.path.join(shared, 'lock'))
        helper = '%s --config-file %s' % (self.bin('privsep-helper',
                                                   self.venv), c)
        for section in ('nova_sys_admin', 'privsep_osbrick'):
            base.iniset(c, section, 'helper_command', helper)
        self._configure_spec()

    def _configure_spec(self):
        """The plugin's lines and the concurrency mode, as ``spec`` says:
        the lines an operator adds to ``nova.conf`` to turn the plugin on.
        """
        c, spec = self.conf, self.spec
        if spec.plugin:
            base.iniset(c, 'DEFAULT', 'config_source', 'migration_net')
            base.iniset(c, 'migration_net', 'driver', 'nova_migration_net')
        else:
            base.iniunset(c, 'DEFAULT', 'config_source')
            base.iniunset(c, 'migration_net', 'driver')
        if spec.plugin and spec.migration_ip:
            base.iniset(c, 'DEFAULT', 'my_live_migration_ip',
                        spec.migration_ip)
        else:
            base.iniunset(c, 'DEFAULT', 'my_live_migration_ip')
        if spec.concurrency:
            base.iniset(c, 'DEFAULT', 'concurrency_backend',
                        spec.concurrency)
        else:
            base.iniunset(c, 'DEFAULT', 'concurrency_backend')
        for option in self._libvirt_options:
            base.iniunset(c, 'libvirt', option)
        for option, value in spec.libvirt:
            base.iniset(c, 'libvirt', option, value)
        self._libvirt_options = tuple(option for option, _ in spec.libvirt)

    def start(self):
        # Each start gets fresh log files; the earlier ones are kept.
        self.starts += 1
        for path in (self.log, self.output):
            if os.path.exists(path):
                os.rename(path, '%s.%d' % (path, self.starts - 1))
        self.started_at = datetime.datetime.now(datetime.timezone.utc)
        self.daemon = self.spawn(self.name, self.host, [
            self.bin('nova-compute', self.venv), '--config-file', self.conf,
            '--log-file', self.log])

    def wait_up(self, timeout=base.START_TIMEOUT):
        """Wait until nova lists this compute up since its last start and
        its hypervisor is mapped to the cell.
        """
        compute = self.cloud.admin.compute

        def up():
            self.daemon.check_alive()
            for service in compute.services(binary='nova-compute',
                                            host=self.host.name):
                updated = datetime.datetime.fromisoformat(
                    service.updated_at).replace(
                        tzinfo=datetime.timezone.utc)
                if service.state == 'up' and updated > self.started_at:
                    return [h for h in compute.hypervisors()
                            if h.name == self.host.name]
        base.wait_for('%s up' % self.name, up, timeout, interval=1)

    def restart(self, spec, wait=True):
        """Stop, (un)install the plugin, reconfigure, start; ``wait`` up
        (else the caller calls :meth:`wait_up`).
        """
        self.stop()
        self.spec = spec
        self.install()
        self._configure_spec()
        self.start()
        if wait:
            self.wait_up()

    def log_text(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def output_text(self):
        with open(self.output, errors='replace') as f:
            return f.read()

    def logs(self):
        return [self.log, self.output]
