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

"""What the cloud needs on the machine: Debian packages and venvs.

The testbed's packages (libvirt, QEMU) plus MariaDB, RabbitMQ, GlusterFS
(server and FUSE client), OpenSSH's server and haproxy (the APIs' TLS
proxy) come from Debian, installed
only when a command is missing, with no service started (see
:func:`tests.hypervisor.testbed.install_packages`). The services come from
PyPI into venvs, every package held to ``upper-constraints.txt``:

- ``controller``: keystone, placement, glance, neutron-server, gunicorn
  and the MySQL driver;
- ``compute-a`` and ``compute-b``: each host's nova, with libvirt-python,
  gunicorn and the MySQL driver: one venv per host, so that the plugin can
  be installed on one host and not the other, as in a rolling upgrade.
  compute-a's also runs nova's API, conductor and scheduler: an
  all-in-one controller has one nova, plugin and all;
- ``compute-nova33``: the same packages at nova 33.0.2 (2026.1), pinned by
  ``upper-constraints-nova33.txt`` whatever the cloud's constraints, for
  the cross-release test's compute-b. ``--older`` makes it; otherwise the
  first test that runs nova 33 does.

The venvs live in a cache directory keyed by a hash of the constraints and
of the package lists, so a second run reuses them; a venv whose install did
not finish has no ``.complete`` marker and is made again. The plugin is not
in any cached venv: :class:`tests.cloud.services.compute.Compute` installs
and removes it with pip, as an operator does. So the compute venvs are each
cloud's own (named after its namespace prefix), and two clouds can share
the cache; the controller venv, which the plugin never enters, is shared.

``python -m tests.cloud.install`` installs it all (tox's ``commands_pre``).
"""

import argparse
import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys

from tests.hypervisor import testbed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONSTRAINTS = os.environ.get('TOX_CONSTRAINTS_FILE',
                             os.path.join(REPO, 'upper-constraints.txt'))
CACHE_DIR = os.environ.get('NOVA_MIGRATION_NET_CLOUD_CACHE',
                           '/var/cache/nova-migration-net-cloud')
# The namespace prefix that names a cloud (tests/cloud/cloud.py). A cloud
# installs and removes the plugin in its compute venvs, so those are its
# own: two clouds of different prefixes may run at once on one cache.
CLOUD_PREFIX = os.environ.get('NOVA_MIGRATION_NET_CLOUD_PREFIX', 'nmc-')

DEBIAN_PACKAGES = testbed.DEBIAN_PACKAGES + (
    'mariadb-server', 'mariadb-client', 'rabbitmq-server',
    'glusterfs-server', 'glusterfs-client', 'openssh-server', 'haproxy')
COMMANDS = testbed.COMMANDS + (
    'mariadbd', 'mariadb-install-db', 'mariadb', 'rabbitmq-server',
    'glusterd', 'gluster', 'mount.glusterfs', 'sshd', 'ssh-keygen',
    'haproxy')

CONTROLLER = ('nova', 'openstack-placement', 'glance', 'neutron',
              'keystone', 'gunicorn', 'PyMySQL')
# compute-a's nova.conf is the controller's too, database included; nova's
# start-up checks then reach the database from nova-compute as well.
COMPUTE = ('nova', 'libvirt-python', 'gunicorn', 'PyMySQL')
VENVS = {'controller': CONTROLLER, 'compute-a': COMPUTE,
         'compute-b': COMPUTE}
# Older novas' venvs, with the pins of their own release.
OLDER = {'compute-nova33': os.path.join(REPO, 'upper-constraints-nova33.txt')}
PACKAGES = dict(VENVS, **{name: COMPUTE for name in OLDER})

# Seconds a pip install may take: cold caches and a busy machine.
PIP_TIMEOUT = 900


def constraints_of(name, constraints=CONSTRAINTS):
    """The constraints venv ``name`` is made and kept with."""
    return OLDER.get(name, constraints)


def _stem(name):
    """The cache entry's name: a cloud's own for the venvs it changes."""
    return name if name == 'controller' else CLOUD_PREFIX + name


def venv_dir(name, constraints=CONSTRAINTS):
    """Where venv ``name`` for ``constraints`` lives in the cache."""
    digest = hashlib.sha256()
    with open(constraints_of(name, constraints), 'rb') as f:
        digest.update(f.read())
    digest.update(repr((name, PACKAGES[name],
                        sys.version_info[:2])).encode())
    return os.path.join(CACHE_DIR, '%s-%s' % (_stem(name),
                                              digest.hexdigest()[:12]))


def _installer_env():
    """This process's environment (the package index's proxy and CA
    settings included) without what points at this checkout or at tox's
    venv instead of the one being made.
    """
    return {k: v for k, v in os.environ.items()
            if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}


def _install(venv, *args):
    """``pip install args`` into the venv (with uv where this Python has
    it); raise with the output when it fails.
    """
    proc = subprocess.run(
        testbed.pip_install(os.path.join(venv, 'bin', 'python'), *args),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=PIP_TIMEOUT, env=_installer_env())
    if proc.returncode:
        raise RuntimeError('installing %s in %s exited %d:\n%s'
                           % (' '.join(args), venv, proc.returncode,
                              proc.stdout))
    return proc.stdout


@contextlib.contextmanager
def _cache_lock():
    """Two runs at once make each venv once."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(os.path.join(CACHE_DIR, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def venv(name, constraints=CONSTRAINTS):
    """The path of venv ``name``, made first if the cache lacks it."""
    path = venv_dir(name, constraints)
    constraints = constraints_of(name, constraints)
    marker = os.path.join(path, '.complete')
    if os.path.exists(marker):
        return path
    with _cache_lock():
        if os.path.exists(marker):
            return path
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([sys.executable, '-m', 'venv', path], check=True,
                       timeout=120)
        _install(path, '-c', constraints, *PACKAGES[name])
        with open(marker, 'w') as f:
            f.write(' '.join(PACKAGES[name]) + '\n')
        # Venvs of older constraints are of no more use.
        for old in glob.glob(os.path.join(CACHE_DIR, _stem(name) + '-*')):
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
    return path


def prepare(constraints=CONSTRAINTS, older=False):
    """Install the Debian packages and make the venvs, where missing;
    with ``older``, the older novas' venvs too.

    Without root, says why the cloud tier will be skipped and does nothing.
    """
    if os.geteuid() != 0:
        print('cloud: skipped: the cloud tier needs root (network '
              'namespaces, one libvirtd per host)')
        return
    testbed.install_packages(DEBIAN_PACKAGES, COMMANDS)
    for name in list(VENVS) + (list(OLDER) if older else []):
        print('cloud: venv %s: %s' % (name, venv(name, constraints)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tests.cloud.install')
    parser.add_argument('--constraints', default=CONSTRAINTS,
                        help='pip constraints file')
    parser.add_argument('--older', action='store_true',
                        help="make the older novas' venvs too (%s)"
                        % ', '.join(OLDER))
    args = parser.parse_args(argv)
    prepare(args.constraints, args.older)


if __name__ == '__main__':
    main()
