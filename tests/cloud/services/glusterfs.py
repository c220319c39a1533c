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

"""GlusterFS on the controller: the instances directory both hosts share.

libvirt 9.0 migrates without copying disks only from a filesystem it
knows as shared (``fuse.glusterfs``, NFS, Ceph...): a local directory
bind-mounted on both hosts does not do. Debian's ``glusterd`` runs in
compute-a's namespaces with one single-brick volume, :data:`VOLUME`,
served on the management address; a nova-compute whose
:class:`tests.cloud.services.compute.Spec` asks for ``shared_storage``
has it mounted with the FUSE client as its ``instances_path``.

Everything glusterd writes is under the cloud's work directory: its
working directory and the CLI's socket by its own options, and the paths
it does not let one choose (the brick's pid file and socket in
``/run/gluster``, every log in ``/var/log/glusterfs``) by bind mounts in
each host's own mount namespace, so two clouds run side by side. The
brick and the FUSE clients daemonize into sessions of their own: the
volume's stop ends the brick (its pid, from the file glusterd has it
write, is recorded for the next start after a crash, and killed if the
stop did not), unmounting ends a client; after a crash the testbed kills
what is left in the hosts' namespaces.
"""

import os
import signal

from tests.cloud.services import base

VOLUME = 'instances'
PORT = 24007
# Brick ports, clear of libvirt's migration ports (49152-49215).
BASE_PORT, MAX_PORT = 49300, 49399

GLUSTERD_VOL = """volume management
    type mgmt/glusterd
    option working-directory {workdir}
    option glusterd-sockfile {socket}
    option transport-type socket
    option transport.address-family inet
    option transport.socket.bind-address {ip}
    option transport.socket.listen-port {port}
    option ping-timeout 0
    option event-threads 1
    option base-port {base_port}
    option max-port {max_port}
end-volume
"""

# Where GlusterFS writes whatever its options do not place, on every host.
RUN_DIR, LOG_DIR = FIXED_DIRS = ('/run/gluster', '/var/log/glusterfs')


class GlusterFS(base.Service):

    name = 'glusterfs'

    def configure(self):
        self.workdir = os.path.join(self.state, 'glusterd')
        self.brick = os.path.join(self.state, 'brick')
        self.socket = os.path.join(self.state, 'glusterd.socket')
        self.vol = os.path.join(self.etc, 'glusterd.vol')
        for path in (self.etc, self.workdir, self.brick):
            os.makedirs(path)
        with open(self.vol, 'w') as f:
            f.write(GLUSTERD_VOL.format(
                workdir=self.workdir, socket=self.socket,
                ip=self.cloud.controller_ip,
                port=PORT, base_port=BASE_PORT, max_port=MAX_PORT))
        self.mounts = {}
        self._brick_pid = None

    def _host_dir(self, host, path):
        """This cloud's own directory for ``path`` on ``host``: the logs
        in the cloud's log directory, the rest in the service's state.
        """
        if path == LOG_DIR:
            return os.path.join(self.cloud.log_dir, 'glusterfs', host.name)
        return os.path.join(self.state, host.name, path.strip('/'))

    def _bind_fixed_dirs(self, host):
        """Bind this cloud's own directories over :data:`FIXED_DIRS` in
        ``host``'s mount namespace (once).
        """
        for path in FIXED_DIRS:
            own = self._host_dir(host, path)
            if os.path.isdir(own):
                continue
            os.makedirs(own)
            # /run is a tmpfs: after a reboot the package's directory is
            # gone, and a bind mount needs its mount point.
            os.makedirs(path, exist_ok=True)
            base.run(self.cloud.nsenter(host) + ['mount', '--bind', own,
                                                 path])

    def cli(self, *args):
        return base.run(self.cloud.nsenter(self.cloud.controller) + [
            'gluster', '--mode=script', '--glusterd-sock=' + self.socket]
            + list(args), timeout=60)

    def start(self):
        controller = self.cloud.controller
        self._bind_fixed_dirs(controller)
        self.daemon = self.spawn('glusterd', controller, [
            '/usr/sbin/glusterd', '--no-daemon', '--volfile=' + self.vol,
            '--pid-file=' + os.path.join(self.state, 'glusterd.pid'),
            '--log-file=' + os.path.join(self._host_dir(controller, LOG_DIR),
                                         'glusterd.log')])
        base.wait_for('glusterd', lambda: self.daemon.check_alive()
                      and self.cli('volume', 'list'), timeout=30)
        # One brick on the controller; "force": it is on the root
        # filesystem, which glusterd otherwise refuses.
        self.cli('volume', 'create', VOLUME,
                 '%s:%s' % (self.cloud.controller_ip, self.brick), 'force')
        self.cli('volume', 'start', VOLUME)
        self._brick_pid = self.brick_pid()
        self.cloud.record_pid('glusterfsd', self._brick_pid)

    def brick_pid(self):
        """The brick process's pid, from the file glusterd has it write."""
        pid_dir = os.path.join(self._host_dir(self.cloud.controller,
                                              RUN_DIR), 'vols', VOLUME)
        path = base.wait_for('brick pid file', lambda: [
            os.path.join(pid_dir, name) for name in os.listdir(pid_dir)
            if name.endswith('.pid')], timeout=30)[0]
        with open(path) as f:
            return int(f.read())

    def mount(self, host, path):
        """Mount the volume on ``path`` in ``host``'s mount namespace,
        unless it is there already.
        """
        if self.mounts.get(host.name) == path:
            return
        self._bind_fixed_dirs(host)
        os.makedirs(path, exist_ok=True)
        base.run(self.cloud.nsenter(host) + [
            'mount', '-t', 'glusterfs', '-o', 'log-file=' + os.path.join(
                self._host_dir(host, LOG_DIR), 'instances.log'),
            '%s:/%s' % (self.cloud.controller_ip, VOLUME), path])
        self.mounts[host.name] = path

    def unmount(self, host):
        """Unmount the volume from ``host``, if it is mounted; its FUSE
        client exits with it.
        """
        path = self.mounts.pop(host.name, None)
        if path:
            base.run(self.cloud.nsenter(host) + ['umount', path])

    def stop(self):
        for host in self.cloud.testbed.hosts:
            self.unmount(host)
        if self._brick_pid:
            # glusterd stops its brick; if it cannot, the pid does.
            try:
                self.cli('volume', 'stop', VOLUME)
            except (RuntimeError, OSError):
                pass
            try:
                os.killpg(self._brick_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._brick_pid = None
            self.cloud.forget_pid('glusterfsd')
        super().stop()

    def logs(self):
        return [os.path.join(self._host_dir(host, LOG_DIR), name)
                for host in self.cloud.testbed.hosts
                for name in ('glusterd.log', 'instances.log')]
