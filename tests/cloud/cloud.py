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

"""The cloud as a whole: the run order, the hosts, the clean-up.

:class:`Cloud` brings up the testbed's two hosts, then every service in
devstack's order (configure all; then database, message queue, the
shared storage, the APIs' TLS proxy, keystone, placement, glance,
neutron, nova's control plane, the computes), writes a ``clouds.yaml``
with keystone's admin and the cloud's CA, and gives tests an openstacksdk
connection. The test process joins compute-a's network namespace (its
calling thread only), so it reaches the APIs at the addresses the catalog
gives, as a client on the controller does.

Everything a run makes is under its work directory: config, state, and
every service's log in ``logs/``. Clean-up stops each service by process
id, then the testbed kills whatever is left in the hosts' namespaces and
deletes them, also at exit, on SIGTERM, and at the next start after a run
that was killed. Two clouds with their own work directory and namespace
prefix can run at once.
"""

import ctypes
import os
import shutil
import signal
import sys

import fixtures
import openstack
from openstack import config as os_config
import yaml

from tests.cloud import install
from tests.cloud.services import base
from tests.cloud.services import compute
from tests.cloud.services import glance
from tests.cloud.services import glusterfs
from tests.cloud.services import keystone
from tests.cloud.services import mysql
from tests.cloud.services import neutron
from tests.cloud.services import nova
from tests.cloud.services import placement
from tests.cloud.services import rabbitmq
from tests.cloud.services import sshd
from tests.cloud.services import tls
from tests.hypervisor import testbed

WORK_DIR = os.environ.get('NOVA_MIGRATION_NET_CLOUD_DIR',
                          '/tmp/nova-migration-net-cloud')
NETNS_PREFIX = install.CLOUD_PREFIX
CLOUD_NAME = 'nova-migration-net'

CLONE_NEWNET = 0x40000000


def why_unavailable():
    """Why the cloud cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return ('the cloud tier needs root (network namespaces, one '
                'libvirtd per host, MariaDB and RabbitMQ of its own)')
    missing = testbed.missing_commands(install.COMMANDS)
    if missing:
        return ('missing %s; run "python -m tests.cloud.install" as root'
                % ', '.join(missing))
    return None


def _setns(path):
    """Move the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(path) as ns:
        if libc.setns(ns.fileno(), CLONE_NEWNET):
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), path)


def kill_recorded(pid_dir):
    """SIGKILL the daemons an earlier, killed run recorded in ``pid_dir``
    whose process group is still there.
    """
    try:
        names = os.listdir(pid_dir)
    except FileNotFoundError:
        return
    for name in names:
        with open(os.path.join(pid_dir, name)) as f:
            pid = int(f.read())
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Cloud(fixtures.Fixture):
    """Two hosts, every service, and an admin connection (``admin``).

    ``specs`` maps a host name to the :class:`compute.Spec` its first
    nova-compute start uses; stock by default.
    """

    def __init__(self, work_dir=WORK_DIR, netns_prefix=NETNS_PREFIX,
                 specs=None):
        super().__init__()
        self.work_dir = work_dir
        self.netns_prefix = netns_prefix
        self.specs = dict(specs or {})
        self.log_dir = os.path.join(work_dir, 'logs')
        self.pid_dir = os.path.join(work_dir, 'pids')
        self.instances_root = os.path.join(work_dir, 'hostfs', 'nova')
        self.clouds_yaml = os.path.join(work_dir, 'clouds.yaml')
        self._wheels = {}
        # {venv: the build of the plugin this cloud put there}: None for
        # this checkout's wheel, else the git revision it was built from
        # (Spec.plugin_from). An older nova's venv serves both hosts.
        self.wheeled = {}
        self._admin = None

    # The hosts

    @property
    def controller(self):
        return self.testbed.hosts[0]

    @property
    def controller_ip(self):
        return self.controller.mgmt_ip

    def host_pid(self, host):
        return self.testbed.libvirtd[host.name].pid

    def nsenter(self, host):
        """The command prefix that runs a command on ``host``."""
        return ['nsenter', '-t', str(self.host_pid(host)), '-n', '-m', '-u',
                '--']

    def outside(self):
        """The command prefix that runs a command in the network
        namespace this process started in (pip needs the package index).
        """
        return ['nsenter', '--net=' + self._own_netns, '--']

    def record_pid(self, name, pid):
        with open(os.path.join(self.pid_dir, name), 'w') as f:
            f.write('%d\n' % pid)

    def forget_pid(self, name):
        try:
            os.unlink(os.path.join(self.pid_dir, name))
        except FileNotFoundError:
            pass

    # Bring-up and clean-up

    def _setUp(self):
        reason = why_unavailable()
        if reason:
            raise testbed.Unavailable(reason)
        # A run that was killed before its clean-up left these behind; the
        # testbed then removes the namespaces and what still runs there.
        kill_recorded(self.pid_dir)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        for path in (self.log_dir, self.pid_dir):
            os.makedirs(path)
        self.venvs = {name: install.venv(name) for name in install.VENVS}
        self.testbed = self.useFixture(testbed.Testbed(
            work_dir=os.path.join(self.work_dir, 'tb'),
            netns_prefix=self.netns_prefix))
        restore = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
        self._own_netns = '/proc/%d/fd/%d' % (os.getpid(), restore)
        self.addCleanup(os.close, restore)
        self.addCleanup(_setns, self._own_netns)
        _setns('/run/netns/' + self.controller.netns)

        self.mysql = mysql.MySQL(self)
        self.rabbitmq = rabbitmq.RabbitMQ(self)
        self.glusterfs = glusterfs.GlusterFS(self)
        self.tls = tls.TLS(self)
        self.keystone = keystone.Keystone(self)
        self.placement = placement.Placement(self)
        self.glance = glance.Glance(self)
        self.neutron = neutron.Neutron(self)
        self.computes = {h.name: compute.Compute(self, h)
                         for h in self.testbed.hosts}
        self.nova = nova.Nova(self)
        # Started by the tests that migrate over ssh only.
        self.sshd = sshd.SSHD(self)
        self.services = [self.mysql, self.rabbitmq, self.glusterfs,
                         self.tls, self.keystone,
                         self.placement, self.glance, self.neutron,
                         *self.computes.values(), self.nova, self.sshd]
        self.addCleanup(self.stop)
        self._write_clouds_yaml()
        for name, spec in self.specs.items():
            self.computes[name].spec = spec
        for service in self.services:
            service.install()
            service.configure()
        # Each stage needs the one before: the database, the bus and the
        # APIs' TLS proxy; keystone; the APIs, whose database syncs are
        # most of the bring-up and independent; then the computes.
        for stage in ((self.mysql, self.rabbitmq, self.glusterfs, self.tls),
                      (self.keystone,),
                      (self.placement, self.glance, self.neutron, self.nova)):
            base.at_once(stage,
                         lambda service: (service.init(), service.start()))
        for service in self.computes.values():
            service.init()
            service.start()
        for service in self.computes.values():
            service.wait_up()

    def stop(self):
        """Stop every service, computes first."""
        for service in reversed(self.services):
            service.stop()

    def _write_clouds_yaml(self):
        clouds = {'clouds': {CLOUD_NAME: {
            'auth': {'auth_url': self.keystone.url, 'username': 'admin',
                     'password': keystone.ADMIN_PASSWORD,
                     'project_name': 'admin',
                     'user_domain_name': 'Default',
                     'project_domain_name': 'Default'},
            'identity_api_version': 3,
            'region_name': keystone.REGION,
            'interface': 'public',
            # The APIs' certificate is signed by the cloud's own CA.
            'cacert': self.tls.ca_file,
            'api_timeout': 60,
            'connect_retries': 3,
        }}}
        with open(self.clouds_yaml, 'w') as f:
            yaml.safe_dump(clouds, f)

    def cloud_config(self):
        """The ``clouds.yaml`` entry as openstacksdk reads it."""
        loader = os_config.loader.OpenStackConfig(
            config_files=[self.clouds_yaml], vendor_files=[])
        return loader.get_one(cloud=CLOUD_NAME)

    def connect(self):
        """A new openstacksdk connection as the cloud's admin."""
        return openstack.connection.Connection(config=self.cloud_config())

    @property
    def admin(self):
        """The admin connection tests share, made once every service is
        in the catalog.
        """
        if self._admin is None:
            self._admin = self.connect()
        return self._admin

    def plugin_wheel(self, revision=None):
        """A wheel of this checkout's plugin, or of the plugin as it was at
        git ``revision`` of this repository (pip builds it from a clone),
        built once per cloud.
        """
        if revision not in self._wheels:
            out = os.path.join(self.work_dir, 'wheels', revision or 'this')
            source = install.REPO
            if revision:
                source = 'git+file://%s@%s' % (install.REPO, revision)
            base.run(self.outside() + [
                os.path.join(self.venvs['controller'], 'bin', 'pip'),
                'wheel', '-q', '--no-deps', '-w', out, source],
                timeout=install.PIP_TIMEOUT)
            self._wheels[revision] = os.path.join(out, [
                f for f in os.listdir(out) if f.endswith('.whl')][0])
        return self._wheels[revision]

    def memory_mib(self):
        """The resident memory of every process on the two hosts (the
        services, libvirtd, QEMU), in MiB.
        """
        total = 0
        for host in self.testbed.hosts:
            for pid in testbed._netns_pids(host.netns):
                try:
                    with open('/proc/%d/status' % pid) as f:
                        for line in f:
                            if line.startswith('VmRSS:'):
                                total += int(line.split()[1])
                except OSError:
                    pass
        return total // 1024

    def log_tails(self, lines=30):
        """The end of every service's logs, for a failed test's output."""
        parts = []
        for service in self.services:
            for path in service.logs():
                if os.path.exists(path):
                    parts.append('==> %s <==\n%s' % (
                        path, base.tail(path, lines)))
        return '\n'.join(parts)


def main(argv=None):
    """Bring a cloud up and keep it until SIGTERM or Ctrl-C (for a look
    at it by hand: ``python -m tests.cloud.cloud``).
    """
    cloud = Cloud()
    with cloud:
        print('cloud up; clouds.yaml: %s' % cloud.clouds_yaml, flush=True)
        try:
            signal.sigwait([signal.SIGTERM, signal.SIGINT])
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
