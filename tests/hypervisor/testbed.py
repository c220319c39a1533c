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

"""Two real libvirt/QEMU hypervisor hosts on one machine.

Each host is a network namespace in which ``libvirtd`` runs in a private
mount and UTS namespace: its own hostname, ``/etc/hosts``, libvirt
configuration, state and disk images. The two hosts are joined by three
veth links, as compute hosts are by their networks:

- ``mgmt0``, the management network (192.168.50.0/24). The hostnames
  resolve to these addresses on both hosts, as in a real cloud.
- ``migr0``, the migration network (172.30.0.0/24 and fd00:30::/64).
- ``migr1``, a second migration network (172.31.0.0/24), the one an
  operator lists second in ``[migration_net] migration_networks``.

Guests are small TCG guests (no KVM needed) that fill their memory with
noise and checksum it (``noise_guest.S``). Byte counts come from the
kernel's per-interface counters in the source host's namespace.

Everything is removed by process id and namespace name on clean-up, and
left-overs of an earlier, killed run are removed before a new one starts.
Needs root; run ``python -m tests.hypervisor.testbed prepare`` first to
install the Debian packages and libvirt-python when they are missing.
"""

import argparse
import atexit
import collections
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID
import fixtures

HERE = os.path.dirname(os.path.abspath(__file__))
WORK_DIR = os.environ.get('NOVA_MIGRATION_NET_TESTBED_DIR',
                          '/tmp/nova-migration-net-testbed')

# What the hosts need from Debian: the hypervisor, libvirt, an assembler
# for the guest kernel, qemu-img for disks, and libvirt's headers with a
# compiler for building libvirt-python.
DEBIAN_PACKAGES = (
    'qemu-system-x86', 'qemu-utils', 'libvirt-daemon-system',
    'libvirt-clients', 'libvirt-daemon-driver-qemu', 'binutils', 'iproute2',
    'libvirt-dev', 'pkg-config', 'gcc',
)
COMMANDS = ('libvirtd', 'qemu-system-x86_64', 'qemu-img', 'as', 'ld', 'ip',
            'unshare', 'pkg-config', 'gcc')

MGMT_IF = 'mgmt0'
MIGR_IF = 'migr0'
MIGR1_IF = 'migr1'
# Every link between the hosts, as the byte counts list them.
LINKS = (MGMT_IF, MIGR_IF, MIGR1_IF)

Host = collections.namedtuple(
    'Host', 'name netns mgmt_ip migration_ipv4 migration_ipv6 uuid '
    'migration1_ipv4')

HOSTS = (
    Host('compute-a', 'nmn-compute-a', '192.168.50.1', '172.30.0.1',
         'fd00:30::1', '00000000-0000-4000-8000-00000000000a',
         '172.31.0.1'),
    Host('compute-b', 'nmn-compute-b', '192.168.50.2', '172.30.0.2',
         'fd00:30::2', '00000000-0000-4000-8000-00000000000b',
         '172.31.0.2'),
)

# libvirtd's TLS port reads its files where libvirt looks by default,
# /etc/pki (see START_SH).
LIBVIRTD_CONF = """
listen_tls = 1
listen_tcp = 1
auth_tcp = "none"
host_uuid = "{uuid}"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

# QEMU runs as root without cgroups or sandboxing; native TLS takes its
# certificates from the host's own directory.
QEMU_CONF = """
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migrate_tls_x509_cert_dir = "{pki}"
migrate_tls_x509_verify = 1
"""

# /etc is the machine's with the host's own files over it (an overlay, in
# the host's mount namespace only): libvirt's TLS files in /etc/pki, where
# libvirtd looks for them as a client too (the source's libvirtd connecting
# to qemu+tls://), and where the machine has nothing.
START_SH = """#!/bin/bash
set -e
hostname {name}
mount --make-rprivate /
mount -t overlay overlay -o lowerdir=/etc,upperdir={dir}/etc-upper,\\
workdir={dir}/etc-work /etc
mount --bind {dir}/etc /etc/libvirt
mount --bind {dir}/lib /var/lib/libvirt
mount --bind {dir}/run /run/libvirt
mount --bind {dir}/log /var/log/libvirt
mount --bind {dir}/cache /var/cache/libvirt
mount --bind {dir}/hosts /etc/hosts
exec /usr/sbin/libvirtd --listen --pid-file /run/libvirt/libvirtd.pid
"""

GUEST_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {disk}
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='pty'/>
  </devices>
  <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
    <qemu:arg value='-debugcon'/><qemu:arg value='file:{debugcon}'/>
  </qemu:commandline>
</domain>
"""

DISK_XML = """<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{path}'/>
      <target dev='vda' bus='virtio'/>
    </disk>"""

# Per-host paths as the host's own processes see them (bind mounts).
IMAGES = '/var/lib/libvirt/images'


def hosts(netns_prefix):
    """:data:`HOSTS` in namespaces named ``<netns_prefix><hostname>``."""
    return tuple(h._replace(netns=netns_prefix + h.name) for h in HOSTS)


class Unavailable(Exception):
    """The testbed cannot run on this machine; the message says why."""


def missing_commands(commands=COMMANDS):
    return [c for c in commands
            if shutil.which(c, path='/usr/sbin:/usr/bin:/sbin:/bin') is None]


def why_unavailable():
    """Why the testbed cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return ('the real-hypervisor testbed needs root (network '
                'namespaces, one libvirtd per host)')
    missing = missing_commands()
    if missing:
        return ('missing %s; run "python -m tests.hypervisor.testbed '
                'prepare" as root' % ', '.join(missing))
    return None


def install_packages(packages=DEBIAN_PACKAGES, commands=COMMANDS):
    """Install Debian ``packages`` if any of ``commands`` is missing.

    By default what the testbed needs. No service is started: a
    policy-rc.d denying it is in place for the install only (there is no
    systemd here; the testbed starts its own libvirtd per host, and the
    cloud tier its own database and message queue).
    """
    if not missing_commands(commands):
        return
    if os.geteuid() != 0:
        raise Unavailable(why_unavailable())
    policy = '/usr/sbin/policy-rc.d'
    ours = not os.path.exists(policy)
    if ours:
        with open(policy, 'w') as f:
            f.write('#!/bin/sh\nexit 101\n')
        os.chmod(policy, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        _run(['apt-get', 'update', '-q'], env=env)
        _run(['apt-get', 'install', '-y', '-q', '--no-install-recommends']
             + list(packages), env=env)
    finally:
        if ours:
            os.unlink(policy)


def _run(cmd, **kwargs):
    """Run ``cmd``; on failure raise with its output in the message."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kwargs)
    if proc.returncode:
        raise RuntimeError('%s exited %d:\n%s' % (' '.join(cmd),
                                                  proc.returncode,
                                                  proc.stdout))
    return proc.stdout


def pip_install(python, *args):
    """The command that installs ``args`` (``pip install`` arguments) into
    the environment of interpreter ``python``.

    uv's pip when this Python has the ``uv`` package, as the tox envs that
    make environments do: tox-uv's own environments have no pip, and uv
    installs nova's hundred-odd packages in seconds where pip takes most
    of a minute. pip otherwise.
    """
    try:
        import uv
    except ImportError:
        return [python, '-m', 'pip', 'install', '-q'] + list(args)
    return [uv.find_uv_bin(), 'pip', 'install', '-q', '--python',
            python] + list(args)


def netns_exec(host, *cmd):
    """Run ``cmd`` in ``host``'s network namespace; its output.

    :raises RuntimeError: the command failed; the message has its output.
    """
    return _run(['ip', 'netns', 'exec', host.netns] + list(cmd))


def _netns_pids(netns):
    """The processes in ``netns``, but never this one (the cloud tier's
    test process joins a host's network namespace).
    """
    out = subprocess.run(['ip', 'netns', 'pids', netns],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def _kill(pids, timeout=10):
    """SIGTERM ``pids``, then SIGKILL whatever is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists('/proc/%d' % p)
                    and not _is_zombie(p)]
            if not pids:
                return
            time.sleep(0.05)


def _is_zombie(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def remove_hosts(hosts=HOSTS):
    """Kill every process in the hosts' namespaces, delete the namespaces.

    The processes are libvirtd and the QEMU guests it started; their
    private mounts go with them.
    """
    existing = subprocess.run(['ip', 'netns', 'list'],
                              stdout=subprocess.PIPE, text=True).stdout
    names = {line.split()[0] for line in existing.splitlines() if line}
    for host in hosts:
        if host.netns in names:
            _kill(_netns_pids(host.netns))
            _run(['ip', 'netns', 'del', host.netns])


class Testbed(fixtures.Fixture):
    """The two hosts, their links and their libvirtd, ready to migrate.

    ``hosts`` are compute-a (the source) and compute-b.
    """

    def __init__(self, work_dir=WORK_DIR, netns_prefix='nmn-'):
        """Two testbeds with different ``work_dir`` and ``netns_prefix``
        can run at once.
        """
        super().__init__()
        self.work_dir = work_dir
        self.hosts = hosts(netns_prefix)
        self.libvirtd = {}

    def _setUp(self):
        reason = why_unavailable()
        if reason:
            raise Unavailable(reason)
        # A run that was killed before its clean-up left these behind.
        remove_hosts(self.hosts)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        os.makedirs(self.work_dir)
        self.addCleanup(remove_hosts, self.hosts)
        # Interrupted (SIGINT, SIGTERM) or exiting without clean-up: the
        # hosts go all the same.
        atexit.register(remove_hosts, self.hosts)
        self.addCleanup(atexit.unregister, remove_hosts)
        try:
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        except ValueError:
            pass  # Not the main thread: only atexit and the next run.
        else:
            self.addCleanup(signal.signal, signal.SIGTERM, previous)
        self._make_network()
        self.kernel = self.build_guest_kernel()
        self.pki = _make_pki(self.work_dir, self.hosts)
        for host in self.hosts:
            self._start_libvirtd(host)
        for host in self.hosts:
            self._wait_for_libvirtd(host)

    # Network

    def _make_network(self):
        for host in self.hosts:
            _run(['ip', 'netns', 'add', host.netns])
            _run(['ip', '-n', host.netns, 'link', 'set', 'lo', 'up'])
        a, b = self.hosts
        for ifname in LINKS:
            _run(['ip', 'link', 'add', 'nmn-a', 'netns', a.netns, 'type',
                  'veth', 'peer', 'name', 'nmn-b', 'netns', b.netns])
            for host, end in ((a, 'nmn-a'), (b, 'nmn-b')):
                _run(['ip', '-n', host.netns, 'link', 'set', end, 'name',
                      ifname])
        for host in self.hosts:
            ns = ['ip', '-n', host.netns]
            _run(ns + ['addr', 'add', host.mgmt_ip + '/24', 'dev', MGMT_IF])
            _run(ns + ['addr', 'add', host.migration_ipv4 + '/24', 'dev',
                       MIGR_IF])
            _run(ns + ['addr', 'add', host.migration_ipv6 + '/64', 'dev',
                       MIGR_IF, 'nodad'])
            _run(ns + ['addr', 'add', host.migration1_ipv4 + '/24', 'dev',
                       MIGR1_IF])
            for ifname in LINKS:
                _run(ns + ['link', 'set', ifname, 'up'])

    def interface_bytes(self, host):
        """``{ifname: rx + tx bytes}`` in ``host``'s network namespace."""
        pid = self.libvirtd[host.name].pid
        counts = {}
        with open('/proc/%d/net/dev' % pid) as f:
            for line in f.readlines()[2:]:
                name, fields = line.split(':', 1)
                fields = fields.split()
                counts[name.strip()] = int(fields[0]) + int(fields[8])
        return counts

    @contextlib.contextmanager
    def bytes_moved(self, host):
        """``{link: bytes}`` that crossed each of ``host``'s links
        (:data:`LINKS`) meanwhile.

        The dict is filled when the block ends, also when it raises.
        """
        moved = {}
        before = self.interface_bytes(host)
        try:
            yield moved
        finally:
            after = self.interface_bytes(host)
            moved.update({ifname: after[ifname] - before[ifname]
                          for ifname in LINKS})

    def addresses(self, host):
        """``host``'s interface addresses, ``ip -j addr`` parsed."""
        out = _run(['ip', '-n', host.netns, '-j', 'addr', 'show'])
        return json.loads(out)

    # libvirtd

    def host_dir(self, host):
        return os.path.join(self.work_dir, host.name)

    def _start_libvirtd(self, host):
        d = self.host_dir(host)
        for sub in ('run', 'log', 'cache'):
            os.makedirs(os.path.join(d, sub))
        shutil.copytree('/etc/libvirt', os.path.join(d, 'etc'),
                        symlinks=True)
        shutil.copytree('/var/lib/libvirt', os.path.join(d, 'lib'),
                        symlinks=True)
        os.makedirs(os.path.join(d, 'lib', 'images'), exist_ok=True)
        with open(os.path.join(d, 'etc', 'libvirtd.conf'), 'a') as f:
            f.write(LIBVIRTD_CONF.format(uuid=host.uuid))
        with open(os.path.join(d, 'etc', 'qemu.conf'), 'a') as f:
            f.write(QEMU_CONF.format(pki=self.pki[host.name]))
        with open(os.path.join(d, 'hosts'), 'w') as f:
            f.write('127.0.0.1 localhost\n')
            for h in self.hosts:
                f.write('%s %s\n' % (h.mgmt_ip, h.name))
        start = os.path.join(d, 'start.sh')
        with open(start, 'w') as f:
            f.write(START_SH.format(name=host.name, dir=d))
        os.chmod(start, 0o755)
        for target in ('/run/libvirt', '/var/cache/libvirt',
                       '/var/log/libvirt'):
            os.makedirs(target, exist_ok=True)
        out = open(os.path.join(d, 'libvirtd.out'), 'w')
        # The exec chain ends in libvirtd: this is libvirtd's process.
        self.libvirtd[host.name] = subprocess.Popen(
            ['ip', 'netns', 'exec', host.netns, 'unshare', '-m', '-u', start],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        out.close()

    def uri(self, host):
        """A libvirt URI for ``host``'s libvirtd, from this process.

        libvirtd's UNIX socket is in the host's run directory, which this
        process sees too, whatever its network namespace.
        """
        return 'qemu:///system?socket=%s' % os.path.join(
            self.host_dir(host), 'run', 'libvirt-sock')

    def _wait_for_libvirtd(self, host, timeout=30):
        path = os.path.join(self.host_dir(host), 'run', 'libvirt-sock')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.libvirtd[host.name].poll() is not None:
                break
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
                return
            except OSError:
                time.sleep(0.1)
        log = os.path.join(self.host_dir(host), 'libvirtd.out')
        with open(log) as f:
            raise RuntimeError('libvirtd on %s did not start:\n%s'
                               % (host.name, f.read()))

    # Guests

    def build_guest_kernel(self, memory_mib=128, passes=0, dirty_mib=0):
        """Assemble ``noise_guest.S`` for a guest of ``memory_mib``; with
        ``dirty_mib``, one that keeps that much of its memory dirty.

        The top 4 MiB stay unused (the firmware's tables live there).
        """
        memtop = (memory_mib - 4) * 1024 * 1024
        name = 'noise-%dm-%d-%d' % (memory_mib, passes, dirty_mib)
        obj = os.path.join(self.work_dir, name + '.o')
        elf = os.path.join(self.work_dir, name + '.elf')
        _run(['as', '--32', '--defsym', 'MEMTOP=%d' % memtop,
              '--defsym', 'PASSES=%d' % passes,
              '--defsym', 'DIRTY=%d' % (dirty_mib * 1024 * 1024), '-o', obj,
              os.path.join(HERE, 'noise_guest.S')])
        _run(['ld', '-N', '-m', 'elf_i386', '-Ttext=0x100000', '-e',
              '_start', '--no-warn-rwx-segments', '-o', elf, obj])
        return elf

    def remove_guest(self, name):
        """Destroy and undefine the guest ``name`` wherever it is."""
        import libvirt  # Installed by prepare(), after this module loads.

        for host in self.hosts:
            conn = libvirt.open(self.uri(host))
            try:
                try:
                    domain = conn.lookupByName(name)
                except libvirt.libvirtError:
                    continue
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
            finally:
                conn.close()

    def image_path(self, host, filename):
        """Where ``host``'s ``IMAGES/filename`` is, seen from here."""
        return os.path.join(self.host_dir(host), 'lib', 'images', filename)

    def guest_xml(self, name, memory_mib=128, kernel=None, disk=False):
        """A domain whose per-host files live in ``IMAGES``."""
        disk_xml = ''
        if disk:
            disk_xml = DISK_XML.format(
                path=os.path.join(IMAGES, name + '.qcow2'))
        return GUEST_XML.format(
            name=name, memory_mib=memory_mib, kernel=kernel or self.kernel,
            disk=disk_xml, debugcon=os.path.join(IMAGES, name + '.debugcon'))

    def make_disk(self, name, size_mib=32, data_mib=24):
        """A qcow2 disk on the source holding ``data_mib`` of noise, and
        the empty disk of the same size on the destination that nova's
        ``pre_live_migration`` creates for a block migration.
        """
        source, dest = self.hosts
        raw = os.path.join(self.work_dir, name + '.raw')
        with open(raw, 'wb') as f:
            f.write(os.urandom(data_mib * 1024 * 1024))
            f.truncate(size_mib * 1024 * 1024)
        _run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
              self.image_path(source, name + '.qcow2')])
        os.unlink(raw)
        _run(['qemu-img', 'create', '-q', '-f', 'qcow2',
              self.image_path(dest, name + '.qcow2'),
              '%dM' % size_mib])

    def certificate_names(self, host):
        """The subjectAltName of ``host``'s QEMU TLS server certificate,
        as ``nova-migration-net-status`` reports it (``DNS:compute-b``).
        """
        from nova_migration_net.cmd import status

        cert, problem = status._load_certificate(
            os.path.join(self.pki[host.name], 'server-cert.pem'), 'QEMU')
        if problem:
            raise RuntimeError(problem)
        return status._found(*status._subject_alt_names(cert))

    def same_disk(self, name):
        """Whether the two hosts' copies of the disk hold the same data."""
        source, dest = self.hosts
        proc = subprocess.run(
            ['qemu-img', 'compare', '-U',
             self.image_path(source, name + '.qcow2'),
             self.image_path(dest, name + '.qcow2')],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return proc.returncode == 0, proc.stdout.strip()

    def qemu_log(self, host, name):
        """libvirt's log of the guest's QEMU process on ``host``."""
        path = os.path.join(self.host_dir(host), 'log', 'qemu', name + '.log')
        with open(path) as f:
            return f.read()

    def checksums(self, host, name):
        """The checksums the guest wrote while it ran on ``host``."""
        try:
            with open(self.image_path(host, name + '.debugcon')) as f:
                return parse_checksums(f.read())
        except FileNotFoundError:
            return []

    def wait_for_checksums(self, host, name, count=1, timeout=120):
        """Wait until the guest wrote ``count`` checksums on ``host``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sums = self.checksums(host, name)
            if len(sums) >= count:
                return sums
            time.sleep(0.1)
        raise AssertionError('guest %s wrote %d of %d checksums on %s in '
                             '%ds' % (name, len(self.checksums(host, name)),
                                      count, host.name, timeout))


def parse_checksums(text):
    """The checksums in the noise guest's output ``text``, in order.

    Only whole lines count: the guest may be writing the last one.
    """
    return [line[1:] for line in text.split('\n')[:-1]
            if line.startswith('C') and len(line) == 9]


class CA:
    """A certificate authority of a test deployment's own, and the
    certificates it issues: EC P-256 keys, SHA-256, valid from an hour ago
    for two days.
    """

    def __init__(self, name):
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._issue(name, self._key, ca=True)

    @property
    def pem(self):
        """The CA's certificate, PEM: what clients verify against."""
        return _pem(self.cert)

    def _issue(self, subject, key, ca, extra=()):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(subject)).issuer_name(_name(self.name))
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca,
                                                        path_length=None),
                                  critical=True)
                   .add_extension(_usage(ca), critical=True))
        for ext in extra:
            builder = builder.add_extension(ext, critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def leaf(self, hostname, purpose, *names):
        """A certificate for ``hostname`` and its key, both PEM: the
        hostname as subject and in subjectAltName with ``names``
        (``x509.GeneralName``), for ``purpose`` (an
        ``ExtendedKeyUsageOID``).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(hostname, key, ca=False, extra=[
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname)] + list(names)),
            x509.ExtendedKeyUsage([purpose])])
        return _pem(cert), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(cert_sign):
    return x509.KeyUsage(
        digital_signature=True, key_encipherment=not cert_sign,
        content_commitment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False)


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pki(directory, files):
    """Write ``{relative path: PEM bytes}`` under ``directory``; a file
    whose name ends in ``key.pem`` is readable by its owner only.
    """
    for filename, data in files.items():
        path = os.path.join(directory, filename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        os.chmod(path, 0o600 if filename.endswith('key.pem') else 0o644)


def _make_pki(work_dir, hosts):
    """A CA, and per host QEMU's TLS server and client certificates and
    libvirtd's; the directory of QEMU's, by host name.

    QEMU's as deployment tools issue them: each certificate names its host
    by hostname only. libvirtd's, in the host's ``/etc/pki`` (``CA/``,
    ``libvirt/``; see ``START_SH``), are QEMU's client certificate and a
    server certificate that names the host's migration addresses too
    (``IP:`` in subjectAltName): with ``live_migration_scheme = tls`` a
    source connects libvirt to the migration IP and verifies it.
    """
    ca = CA('nova-migration-net testbed CA')
    dirs = {}
    for host in hosts:
        files = {'ca-cert.pem': ca.pem}
        for role, purpose in (('server', ExtendedKeyUsageOID.SERVER_AUTH),
                              ('client', ExtendedKeyUsageOID.CLIENT_AUTH)):
            (files['%s-cert.pem' % role],
             files['%s-key.pem' % role]) = ca.leaf(host.name, purpose)
        dirs[host.name] = os.path.join(work_dir, 'pki', host.name)
        write_pki(dirs[host.name], files)
        server_cert, server_key = ca.leaf(
            host.name, ExtendedKeyUsageOID.SERVER_AUTH,
            *(x509.IPAddress(ipaddress.ip_address(address)) for address in
              (host.migration_ipv4, host.migration_ipv6)))
        write_pki(os.path.join(work_dir, host.name, 'etc-upper', 'pki'), {
            'CA/cacert.pem': ca.pem,
            'libvirt/servercert.pem': server_cert,
            'libvirt/private/serverkey.pem': server_key,
            'libvirt/clientcert.pem': files['client-cert.pem'],
            'libvirt/private/clientkey.pem': files['client-key.pem']})
        os.makedirs(os.path.join(work_dir, host.name, 'etc-work'))
    return dirs


def prepare(constraints=None):
    """Install what the testbed needs: Debian packages, libvirt-python.

    Without root, says why the testbed will be skipped and does nothing.
    """
    if os.geteuid() != 0:
        print('testbed: skipped: %s' % why_unavailable())
        return
    install_packages()
    _run(pip_install(sys.executable, 'libvirt-python',
                     *(['-c', constraints] if constraints else [])))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tests.hypervisor.testbed')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('prepare', help=prepare.__doc__.splitlines()[0])
    p.add_argument('--constraints', help='pip constraints file')
    p = sub.add_parser('teardown',
                       help='remove what a killed run left behind')
    p.add_argument('--netns-prefix', default='nmn-')
    args = parser.parse_args(argv)
    if args.command == 'prepare':
        prepare(args.constraints)
    else:
        remove_hosts(hosts(args.netns_prefix))


if __name__ == '__main__':
    main()
