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

"""sshd on compute-b and root's ssh client on compute-a: ``qemu+ssh://``
and nova's copy of a cold migration's disks.

With ``[libvirt] live_migration_scheme = ssh`` the source's libvirtd (as
root) runs OpenSSH's ``ssh`` to the host in the URI, and there
``virt-ssh-helper`` relays libvirt's protocol to the destination's
libvirtd socket. A cold migration or resize from compute-a has its
nova-compute (root too) run ``ssh`` (``mkdir``) and ``scp`` (the disks,
over SFTP with OpenSSH 9) to the migration record's ``dest_host``: the
same client, key and ``known_hosts``. Debian's ``sshd`` runs in
compute-b's namespaces, on port 22 of all addresses, from a config, host
key and authorized key of the cloud's own (``-f``; its pid file in its
state; Debian's SFTP server as its ``sftp`` subsystem), and its
privilege-separation directory ``/run/sshd`` is a directory of that state
bind-mounted in compute-b's mount namespace. compute-a's client reads the
cloud's client key and ``known_hosts`` through an ``ssh_config`` bound over
``/etc/ssh/ssh_config`` in compute-a's mount namespace only, with
``StrictHostKeyChecking yes``: a connection to a name ``known_hosts`` lacks
fails. Nothing of the machine's ``/etc/ssh`` or ``/root`` is written.

Not started with the cloud: :meth:`SSHD.start` starts it for the names
``known_hosts`` must hold, :meth:`SSHD.stop` ends it by pid.
"""

import os

from tests.cloud.services import base

PORT = 22
# sshd's privilege-separation directory, fixed at its build (Debian's).
PRIVSEP_DIR = '/run/sshd'
# Debian's, as its own sshd_config names it.
SFTP_SERVER = '/usr/lib/openssh/sftp-server'
CLIENT_CONFIG = '/etc/ssh/ssh_config'

SSHD_CONFIG = """Port {port}
ListenAddress 0.0.0.0
ListenAddress ::
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The state is under /var/tmp, which others may write to.
StrictModes no
PrintMotd no
LogLevel VERBOSE
# OpenSSH 9's scp speaks SFTP (nova's copy of a cold migration's disks).
Subsystem sftp {sftp_server}
"""

SSH_CONFIG = """Host *
    IdentityFile {key}
    IdentitiesOnly yes
    UserKnownHostsFile {known_hosts}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
"""


class SSHD(base.Service):

    name = 'sshd'

    @property
    def host(self):
        return self.cloud.testbed.hosts[1]

    @property
    def client(self):
        return self.cloud.testbed.hosts[0]

    def configure(self):
        os.makedirs(self.etc)
        os.makedirs(os.path.join(self.state, 'privsep'), mode=0o755)
        self.host_key = os.path.join(self.state, 'ssh_host_ed25519_key')
        self.client_key = os.path.join(self.state, 'id_ed25519')
        self.known_hosts = os.path.join(self.state, 'known_hosts')
        for path in (self.host_key, self.client_key):
            base.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                      '-C', os.path.basename(path), '-f', path])
        with open(self.client_key + '.pub') as f:
            client_public = f.read()
        self.authorized_keys = os.path.join(self.state, 'authorized_keys')
        with open(self.authorized_keys, 'w') as f:
            f.write(client_public)
        self.config = os.path.join(self.etc, 'sshd_config')
        with open(self.config, 'w') as f:
            f.write(SSHD_CONFIG.format(
                port=PORT, host_key=self.host_key,
                pid_file=os.path.join(self.state, 'sshd.pid'),
                authorized_keys=self.authorized_keys,
                sftp_server=SFTP_SERVER))
        self.client_config = os.path.join(self.etc, 'ssh_config')
        with open(self.client_config, 'w') as f:
            f.write(SSH_CONFIG.format(key=self.client_key,
                                      known_hosts=self.known_hosts))
        self._bound = set()

    def _bind(self, host, own, path):
        """Bind ``own`` over ``path`` in ``host``'s mount namespace, once."""
        if (host.name, path) in self._bound:
            return
        # A bind mount needs its mount point; /run/sshd is the package's.
        if path == PRIVSEP_DIR:
            os.makedirs(path, exist_ok=True)
        base.run(self.cloud.nsenter(host) + ['mount', '--bind', own, path])
        self._bound.add((host.name, path))

    def start(self, known_names):
        """Start sshd on compute-b, with compute-b's host key in compute-a's
        ``known_hosts`` under ``known_names`` only.
        """
        with open(self.host_key + '.pub') as f:
            key_type, key = f.read().split()[:2]
        with open(self.known_hosts, 'w') as f:
            f.writelines('%s %s %s\n' % (name, key_type, key)
                         for name in known_names)
        self._bind(self.host, os.path.join(self.state, 'privsep'),
                   PRIVSEP_DIR)
        self._bind(self.client, self.client_config, CLIENT_CONFIG)
        output = os.path.join(self.cloud.log_dir, 'sshd.out')
        before = os.path.getsize(output) if os.path.exists(output) else 0

        def listening():
            daemon.check_alive()
            with open(output) as f:
                f.seek(before)
                return 'Server listening on' in f.read()
        daemon = self.spawn('sshd', self.host, [
            '/usr/sbin/sshd', '-D', '-e', '-f', self.config])
        base.wait_for('sshd on %s port %d' % (self.host.name, PORT),
                      listening, timeout=30, interval=0.2)

    def logs(self):
        return [d.output for d in self.daemons]
