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
environment: nothing that changes nova's start-up but, for eventlet mode
chosen the documented way, ``OS_NOVA_DISABLE_EVENTLET_PATCHING=false``. A
:class:`Spec` says how: from which nova's venv (the cloud's nova 34, or an
older release's), whether the plugin is installed (with pip, from this
checkout, into the host's own venv) and configured in ``nova.conf``, with
which ``my_live_migration_ip`` (or ``migration_networks``), in which of
nova 34's concurrency modes (:data:`CONCURRENCY`; native threading is nova
34's default), and with which libvirt migration transport (native TLS,
tunnelled, parallel connections).

Both hosts have the same ``instances_path``, each on its own storage: the
host's private mount namespace bind-mounts a per-host directory there, so
nova sees unshared storage and live-migrates with a block migration (nova
does not rewrite local disk paths in the migrated domain XML). A spec with
``shared_storage`` mounts the cloud's GlusterFS volume there instead, on
each host that asks: nova then finds the path shared. As root,
privsep runs the venv's ``privsep-helper`` directly, without sudo or
rootwrap.
"""

import collections
import glob
from importlib import metadata
import os

from nova_migration_net import early_imports
from tests.cloud import install
from tests.cloud.services import base
from tests.cloud.services import nova

PLUGIN = 'nova-migration-net'
# What nova-compute logs (at DEBUG) once it serves RPC; nova 33 too.
JOINED = 'Join ServiceGroup membership for this service compute'

Spec = collections.namedtuple(
    'Spec', 'plugin migration_ip concurrency native_tls tunnelled parallel '
    'migration_networks libvirt shared_storage nova migration_net '
    'plugin_from nova_conf')
Spec.__new__.__defaults__ = (False, None, None, False, False, None, None,
                             (), False, None, (), None, ())
Spec.__doc__ = """How a nova-compute runs.

``plugin``: the plugin installed and its source configured;
``migration_ip``: ``my_live_migration_ip``, or None for unset;
``concurrency``: a key of :data:`CONCURRENCY`, None for nova's default;
``native_tls``: ``[libvirt] live_migration_with_native_tls``;
``tunnelled``: ``[libvirt] live_migration_tunnelled``;
``parallel``: ``[libvirt] live_migration_parallel_connections``, or None
for nova's default (1);
``migration_networks``: the plugin's ``[migration_net]
migration_networks`` (with the plugin only), or None for unset.
``libvirt``: more ``[libvirt]`` options, as ``((option, value), ...)``;
``shared_storage``: ``instances_path`` on the cloud's GlusterFS volume
(:mod:`tests.cloud.services.glusterfs`) instead of a directory of the
host's own.
``nova``: an older nova's venv (``'33'``: :mod:`tests.cloud.install`'s
``compute-nova33``), or None for the cloud's own nova 34. Both hosts share
an older nova's venv: give them the same ``plugin`` there.
``migration_net``: more of the plugin's ``[migration_net]`` options (with
the plugin only), as ``((option, value), ...)``.
``plugin_from``: the git revision of this repository whose plugin is
installed (an older plugin), or None for this checkout's.
``nova_conf``: any other ``nova.conf`` lines, as ``((section, option,
value), ...)`` (the benchmark's ``[compute] cpu_shared_set``, say).
"""

STOCK = Spec()

# How nova-compute is put in each concurrency mode: ``[DEFAULT]
# concurrency_backend`` in nova.conf (None: unset) and its environment.
# 'eventlet' is the way operators of the plugin choose eventlet. With
# 'eventlet-conf', nova's early parse of that option (nova 34's
# monkey_patch) opens config_source's drivers before eventlet patches
# anything: with the plugin's lines, urllib3 is imported unpatched and
# nova-compute 34 dies at start-up on its first HTTPS client (RecursionError
# in ssl; nova bug 1808951). nova 33 has only eventlet mode and no early
# parse: both ways run it in eventlet mode.
CONCURRENCY = {
    'threading': ('threading', {}),
    'eventlet': (None, {early_imports.ENVIRONMENT: 'false'}),
    'eventlet-conf': ('eventlet', {}),
    None: (None, {}),
}

# What an operator adds to nova.conf for the plugin, as (section, option).
PLUGIN_LINES = (('DEFAULT', 'config_source'), ('migration_net', 'driver'),
                ('DEFAULT', 'my_live_migration_ip'),
                ('migration_net', 'migration_networks'))
# What Cloud.wheeled says of a venv that holds no build of this cloud's.
NOT_WHEELED = object()


class Compute(base.Service):

    name = 'nova-compute'

    def __init__(self, cloud, host):
        self.host = host
        self.name = 'nova-compute-' + host.name.rsplit('-', 1)[1]
        super().__init__(cloud)
        self.conf = os.path.join(self.etc, 'nova.conf')
        self.spec = STOCK
        self.starts = 0
        self._libvirt_options = ()
        self._migration_net_options = ()
        self._other_lines = ()

    @property
    def venv(self):
        """The venv ``spec`` runs nova-compute from."""
        if self.spec.nova:
            return install.venv('compute-nova' + self.spec.nova)
        return self.cloud.venvs[self.host.name]

    @property
    def constraints(self):
        """The pins the venv was made with; the plugin goes in with them,
        so that nothing else in the venv changes.
        """
        if self.spec.nova:
            return install.constraints_of('compute-nova' + self.spec.nova)
        return install.CONSTRAINTS

    @property
    def log(self):
        return os.path.join(self.cloud.log_dir, self.name + '.log')

    @property
    def output(self):
        return os.path.join(self.cloud.log_dir, self.name + '.out')

    def plugin_installed(self):
        """Whether the venv holds some build of the plugin (read from its
        site-packages; ``pip show`` costs a second or more per restart).
        """
        site = glob.glob(os.path.join(self.venv, 'lib', 'python*',
                                      'site-packages'))
        return any(True for _ in metadata.distributions(name=PLUGIN,
                                                        path=site))

    def nova_version(self):
        """The version of the nova package in the venv, e.g. '33.0.2'."""
        site = glob.glob(os.path.join(self.venv, 'lib', 'python*',
                                      'site-packages'))
        [nova] = metadata.distributions(name='nova', path=site)
        return nova.version

    def install(self):
        """Install or remove the plugin with pip, as ``spec`` says.

        The venv is cached across runs, so a build it already holds may be
        an older checkout's: this cloud's first install in each venv
        replaces it with the wheel ``spec`` asks for (this checkout's, or
        the revision's of ``plugin_from``), as does a later spec that asks
        for another one.
        """
        venv = self.venv
        pip = [self.bin('pip', venv), '-q', '--disable-pip-version-check']
        installed = self.plugin_installed()
        build = self.spec.plugin_from
        if self.spec.plugin and not installed:
            base.run(self.cloud.outside() + pip + [
                'install', '-c', self.constraints,
                self.cloud.plugin_wheel(build)], timeout=install.PIP_TIMEOUT)
        elif self.spec.plugin and self.cloud.wheeled.get(
                venv, NOT_WHEELED) != build:
            base.run(self.cloud.outside() + pip + [
                'install', '--force-reinstall', '--no-deps',
                self.cloud.plugin_wheel(build)], timeout=install.PIP_TIMEOUT)
        elif not self.spec.plugin and installed:
            base.run(pip + ['uninstall', '-y', PLUGIN])
        if self.spec.plugin:
            self.cloud.wheeled[venv] = build
        else:
            self.cloud.wheeled.pop(venv, None)

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
        base.iniset(c, 'DEFAULT', 'instances_path', self.instances_path)
        base.iniset(c, 'DEFAULT', 'compute_driver', 'libvirt.LibvirtDriver')
        base.iniset(c, 'libvirt', 'virt_type', 'qemu')
        base.iniset(c, 'libvirt', 'cpu_mode', 'none')
        base.iniset(c, 'libvirt', 'connection_uri', 'qemu:///system')
        base.iniset(c, 'libvirt', 'live_migration_scheme', 'tcp')
        base.iniset(c, 'oslo_concurrency', 'lock_path',
                    os.path.join(shared, 'lock'))
        self._configure_spec()

    def _configure_spec(self):
        """Every ``nova.conf`` line ``spec`` decides: the plugin's lines (an
        operator's, to turn it on), the concurrency mode and the libvirt
        migration transport. Unset lines are removed, so nova's defaults
        hold.
        """
        spec = self.spec
        plugin = spec.plugin
        # privsep's helper comes from the venv nova-compute runs from.
        helper = '%s --config-file %s' % (self.bin('privsep-helper',
                                                   self.venv), self.conf)
        for section in ('nova_sys_admin', 'privsep_osbrick'):
            base.iniset(self.conf, section, 'helper_command', helper)
        for section, option, value in (
                ('DEFAULT', 'config_source', plugin and 'migration_net'),
                ('migration_net', 'driver', plugin and 'nova_migration_net'),
                ('DEFAULT', 'my_live_migration_ip',
                 plugin and spec.migration_ip),
                ('migration_net', 'migration_networks',
                 plugin and spec.migration_networks),
                ('DEFAULT', 'concurrency_backend',
                 CONCURRENCY[spec.concurrency][0]),
                ('libvirt', 'live_migration_with_native_tls',
                 spec.native_tls),
                ('libvirt', 'live_migration_tunnelled', spec.tunnelled),
                ('libvirt', 'live_migration_parallel_connections',
                 spec.parallel)):
            if value:
                base.iniset(self.conf, section, option, value)
            else:
                base.iniunset(self.conf, section, option)
        for option in self._libvirt_options:
            base.iniunset(self.conf, 'libvirt', option)
        for option, value in spec.libvirt:
            base.iniset(self.conf, 'libvirt', option, value)
        self._libvirt_options = tuple(option for option, _ in spec.libvirt)
        for option in self._migration_net_options:
            base.iniunset(self.conf, 'migration_net', option)
        extra = spec.migration_net if plugin else ()
        for option, value in extra:
            base.iniset(self.conf, 'migration_net', option, value)
        self._migration_net_options = tuple(option for option, _ in extra)
        for section, option in self._other_lines:
            base.iniunset(self.conf, section, option)
        for section, option, value in spec.nova_conf:
            base.iniset(self.conf, section, option, value)
        self._other_lines = tuple((section, option)
                                  for section, option, _ in spec.nova_conf)

    @property
    def instances_path(self):
        return os.path.join(self.cloud.instances_root, 'instances')

    def start(self):
        # The instances directory as the spec says, before nova looks.
        storage = self.cloud.glusterfs
        if self.spec.shared_storage:
            storage.mount(self.host, self.instances_path)
        else:
            storage.unmount(self.host)
        # Each start gets fresh log files; the earlier ones are kept.
        self.starts += 1
        for path in (self.log, self.output):
            if os.path.exists(path):
                os.rename(path, '%s.%d' % (path, self.starts - 1))
        self.daemon = self.spawn(self.name, self.host, [
            self.bin('nova-compute', self.venv), '--config-file', self.conf,
            '--log-file', self.log], env=CONCURRENCY[self.spec.concurrency][1])

    def wait_up(self, timeout=base.START_TIMEOUT):
        """Wait until this start of nova-compute serves RPC, nova lists the
        service up and its hypervisor is in the cell.

        nova logs :data:`JOINED` once init_host, the resource tracker's
        first update and both RPC servers are done. Its first service
        report comes a fixed 5 s later (nova's ``INITIAL_REPORTING_DELAY``),
        so waiting for that report instead would add 5 s to every restart;
        the service is still up from its last one.
        """
        compute = self.cloud.admin.compute

        def up():
            self.daemon.check_alive()
            if JOINED not in self.log_text():
                return None
            if any(service.state == 'up' for service in compute.services(
                    binary='nova-compute', host=self.host.name)):
                return [h for h in compute.hypervisors()
                        if h.name == self.host.name]
        base.wait_for('%s up' % self.name, up, timeout, interval=0.5)

    def restart(self, spec):
        """Stop, (un)install the plugin, reconfigure, start, wait up."""
        restart_all([(self, spec)])

    def log_text(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def output_text(self):
        with open(self.output, errors='replace') as f:
            return f.read()

    def logs(self):
        return [self.log, self.output]


def restart_all(changes):
    """Restart computes together; ``changes``: (compute, new spec) pairs.

    All stop at once (each takes nova's graceful shutdown, about 5 s
    here), then each is (un)installed, reconfigured and started, and only
    then are all waited for.
    """
    base.at_once([node for node, _ in changes], lambda node: node.stop())
    for node, spec in changes:
        node.spec = spec
        node.install()
        node._configure_spec()
        node.start()
    for node, _ in changes:
        node.wait_up()
