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

"""``nova-migration-net-status upgrade check``: a compute host's pre-flight.

Run on a compute host, with the host's ``nova.conf``, before and after
enabling the plugin::

    nova-migration-net-status --peer 172.168.1.16 upgrade check

Each check reports Success, Warning or Failure with a line saying why and
what to do; the exit code is oslo.upgradecheck's (0 success, 1 warning, 2
failure, 255 a check crashed). The checks read this host's configuration,
interfaces and certificates, and connect to the given peers only; they
cannot tell whether the peers can reach this host.
"""

import datetime
import ipaddress
import os
import socket
import subprocess
import sys

from cryptography import x509
from nova import exception
from oslo_config import cfg
from oslo_upgradecheck import upgradecheck
import psutil
import stevedore

from nova_migration_net import activation
from nova_migration_net import addresses
from nova_migration_net import conf as migration_net_conf
from nova_migration_net import config_source
from nova_migration_net import early_imports
from nova_migration_net import hooks

DRIVER_NAME = 'nova_migration_net'
# Where libvirtd and QEMU read their TLS server certificates by default
# (libvirtd.conf cert_file, qemu.conf default_tls_x509_cert_dir).
LIBVIRT_SERVER_CERT = '/etc/pki/libvirt/servercert.pem'
QEMU_SERVER_CERT = '/etc/pki/qemu/server-cert.pem'
# libvirtd's ports for qemu+tcp:// and qemu+tls:// (libvirtd.conf tcp_port,
# tls_port), and sshd's for qemu+ssh://.
LIBVIRT_PORTS = {'tcp': 16509, 'tls': 16514, 'ssh': 22}

cli_opts = [
    cfg.MultiStrOpt('peer',
                    default=[],
                    help='The migration address of another compute host; '
                         'checks that its libvirtd answers there. With '
                         '[libvirt] live_migration_with_native_tls, the '
                         'host\'s name instead (nova\'s [DEFAULT] host '
                         'there), where libvirt\'s connection goes. Repeat '
                         'for more hosts.'),
    cfg.PortOpt('libvirt-port',
                help='The port of the peers\' libvirtd. Default: 16514 with '
                     '[libvirt] live_migration_scheme = tls, 22 with ssh, '
                     '16509 otherwise.'),
    cfg.FloatOpt('peer-timeout',
                 default=3.0,
                 min=0.1,
                 help='Seconds to wait for each peer to answer.'),
    cfg.StrOpt('libvirt-server-cert',
               default=LIBVIRT_SERVER_CERT,
               help='libvirtd\'s TLS server certificate, checked with '
                    '[libvirt] live_migration_scheme = tls.'),
    cfg.StrOpt('qemu-server-cert',
               default=QEMU_SERVER_CERT,
               help='QEMU\'s TLS server certificate, checked with [libvirt] '
                    'live_migration_with_native_tls.'),
]


def register_opts(conf):
    """The options the checks read, and the command line's."""
    # Imported here: nova.conf registers all of nova's options on nova's
    # global configuration; tests pass a configuration of their own.
    from nova.conf import libvirt as libvirt_conf
    from nova.conf import netconf
    libvirt_conf.register_opts(conf)
    # [DEFAULT] host: the name sources connect to and TLS verifies.
    netconf.register_opts(conf)
    migration_net_conf.register_opts(conf)
    conf.register_cli_opts(cli_opts)


def _skip(reason):
    return upgradecheck.Result(upgradecheck.Code.SUCCESS,
                               'Not checked: %s' % reason)


def _success(details):
    return upgradecheck.Result(upgradecheck.Code.SUCCESS, details)


def _warning(details):
    return upgradecheck.Result(upgradecheck.Code.WARNING, details)


def _failure(details):
    return upgradecheck.Result(upgradecheck.Code.FAILURE, details)


class Checks(upgradecheck.UpgradeCommands):
    """The pre-flight checks of one compute host."""

    def __init__(self, conf=None, interfaces=None):
        """:param conf: the parsed configuration; nova's by default
        :param interfaces: a function returning the interface table, as
            ``psutil.net_if_addrs()`` (the default) does
        """
        super().__init__()
        if conf is None:
            import nova.conf
            conf = nova.conf.CONF
        self.conf = conf
        self._interfaces = interfaces

    def _address(self):
        """``(address, problem)``: the usable option value, or why not."""
        try:
            return hooks.configured_migration_ip(self.conf), None
        except exception.InvalidConfiguration as err:
            return None, str(err)

    def _plugin_groups(self):
        groups = []
        for group in self.conf.config_source:
            try:
                if self.conf[group].driver == DRIVER_NAME:
                    groups.append(group)
            except (cfg.NoSuchOptError, cfg.NoSuchGroupError, ValueError):
                continue
        return groups

    def _check_option(self):
        address, problem = self._address()
        if problem is not None:
            return _failure('%s. nova-compute refuses to start with it: fix '
                            'the value.' % problem)
        if address is None:
            if self._plugin_groups():
                return _warning(
                    '[DEFAULT] my_live_migration_ip is unset, and no '
                    'migration_networks gives it: live migrations to this '
                    'host use its hostname (the management network). Set '
                    'my_live_migration_ip, or migration_networks in the '
                    'plugin\'s config_source group.')
            return _success('[DEFAULT] my_live_migration_ip is unset: live '
                            'migrations to this host use its hostname, as '
                            'stock nova does.')
        location = self.conf.get_location('my_live_migration_ip')
        origin = ''
        if location is not None and location.detail:
            origin = ' (from %s)' % location.detail
        return _success('[DEFAULT] my_live_migration_ip is %s%s.'
                        % (address, origin))

    def _check_interface(self):
        address, problem = self._address()
        if address is None:
            return _skip('no usable [DEFAULT] my_live_migration_ip.')
        try:
            table = (psutil.net_if_addrs() if self._interfaces is None
                     else self._interfaces())
        except OSError as err:
            return _warning('Cannot list the interfaces of this host (%s): '
                            'run the check as the user nova-compute runs '
                            'as.' % err)
        ip = addresses.parse(address)
        problem = addresses.interface_problem(ip, table)
        if problem is None:
            names = sorted({name for name, local
                            in config_source.local_addresses(table)
                            if local == ip})
            return _success('%s is assigned to %s.'
                            % (address, ', '.join(names)))
        refuse, reason = problem
        if refuse:
            return _failure('[DEFAULT] my_live_migration_ip %s: %s; '
                            'nova-compute refuses to start with it. Set this '
                            'host\'s own address on the migration network.'
                            % (address, reason))
        # nova-compute's own verdict (hooks.InitHost): it starts and warns,
        # as the interface may come up later.
        return _warning('[DEFAULT] my_live_migration_ip %s: %s. nova-compute '
                        'starts with it and warns; sources running '
                        'nova-migration-net connect to it, so live '
                        'migrations to this host fail (and are rolled back) '
                        'until an interface has it: assign it, or correct '
                        'the option.' % (address, reason))

    def _check_inbound_addr(self):
        inbound = self.conf.libvirt.live_migration_inbound_addr
        address, problem = self._address()
        if not inbound:
            return _success('[libvirt] live_migration_inbound_addr is unset: '
                            'nothing to conflict with.')
        if address is None:
            return _success('Only [libvirt] live_migration_inbound_addr is '
                            'set (%s): every source migrates to it, as stock '
                            'nova does.' % inbound)
        if addresses.same_address(inbound, address):
            return _success('[libvirt] live_migration_inbound_addr and '
                            '[DEFAULT] my_live_migration_ip are both %s.'
                            % address)
        return _warning(
            '[DEFAULT] my_live_migration_ip (%(ip)s) and [libvirt] '
            'live_migration_inbound_addr (%(inbound)s) differ: sources '
            'running nova-migration-net stream to %(ip)s, sources without '
            'it to %(inbound)s. Set one of them, or both to the same '
            'address.' % {'ip': address, 'inbound': inbound})

    def _check_cold_migrations(self):
        address, _ = self._address()
        if 'migration_inbound_addr' not in self.conf.libvirt:
            return _skip('this nova has no [libvirt] migration_inbound_addr.')
        inbound = self.conf.libvirt.migration_inbound_addr
        if address is None:
            return _success('Cold migrations, resizes and evacuations to '
                            'this host copy their disks to %s, [libvirt] '
                            'migration_inbound_addr, as stock nova does.'
                            % inbound)
        if not hooks.inbound_addr_is_nova_default(self.conf):
            return _success('Cold migrations, resizes and evacuations to '
                            'this host copy their disks to %s: [libvirt] '
                            'migration_inbound_addr is set, and the plugin '
                            'leaves it alone.' % inbound)
        return _success(
            'Cold migrations, resizes and evacuations to this host copy '
            'their disks to %s, its migration address: [libvirt] '
            'migration_inbound_addr is not set, so nova-compute gives it '
            'that address. Source hosts connect there with nova\'s ssh: '
            'their known_hosts must accept this host under that address.'
            % address)

    def _check_activation(self):
        groups = self._plugin_groups()
        if not groups:
            return _warning(
                'No group in [DEFAULT] config_source has driver = %s: the '
                'plugin is not active, and live migrations to and from this '
                'host use the hostname. Add "config_source = migration_net" '
                'to [DEFAULT] and "driver = %s" to [migration_net], then '
                'restart nova-compute.' % (DRIVER_NAME, DRIVER_NAME))
        from nova.virt.libvirt import driver as libvirt_driver
        hook_names = stevedore.ExtensionManager(
            activation.HOOK_NAMESPACE).names()
        problems = activation.incompatibilities(libvirt_driver.LibvirtDriver,
                                                hook_names)
        if problems:
            return _failure(
                '[DEFAULT] config_source enables the plugin ([%s]), but it '
                'cannot hook this nova (%s): nova-compute logs an error and '
                'runs stock. Install the nova-migration-net release built '
                'for this nova.' % (', '.join(groups), '; '.join(problems)))
        return _success('[DEFAULT] config_source enables the plugin ([%s]); '
                        'it can hook this nova.' % ', '.join(groups))

    def _check_early_imports(self):
        variable = early_imports.ENVIRONMENT
        chosen = os.environ.get(variable, '')
        if chosen:
            return _success(
                '%s=%s in this environment: nova-compute started with it '
                'chooses its concurrency mode before it parses nova.conf, so '
                'config_source imports nothing before monkey patching.'
                % (variable, chosen))
        if not self.conf.config_source:
            return _success('[DEFAULT] config_source is empty: nova\'s early '
                            'parse of nova.conf imports no '
                            'oslo.config.driver.')
        args = []
        for option in ('config_file', 'config_dir'):
            for path in self.conf[option] or ():
                args += ['--' + option.replace('_', '-'), path]
        try:
            backend, modules = early_imports.early_parse(args)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
            return _warning('Cannot run nova\'s early parse of nova.conf, so '
                            'cannot tell whether eventlet patches too late: '
                            '%s' % err)
        if backend is None:
            return _success('This nova chooses eventlet before it parses '
                            'nova.conf (before nova 34): config_source '
                            'imports nothing before monkey patching.')
        if backend != 'eventlet':
            return _success('[DEFAULT] concurrency_backend is %s: '
                            'nova-compute 34 runs in native threading mode '
                            'and patches nothing.' % backend)
        if not modules:
            return _success('[DEFAULT] concurrency_backend is eventlet, and '
                            'nova\'s early parse of nova.conf imports none of '
                            '%s.' % ', '.join(sorted(
                                early_imports.CONSEQUENCES)))
        return _failure(
            '[DEFAULT] concurrency_backend is eventlet, and nova-compute\'s '
            'early parse of nova.conf imports %s before eventlet patches '
            'them: config_source makes oslo.config import every installed '
            'oslo.config.driver. So %s. %s If nova-compute\'s environment '
            'already sets %s, run this check with it set too.'
            % (' and '.join(modules), early_imports.consequences(modules),
               early_imports.FIX, variable))

    def _check_tls_certificate(self):
        libvirt = self.conf.libvirt
        native_tls = libvirt.live_migration_with_native_tls
        certificates = []
        if libvirt.live_migration_scheme == 'tls':
            certificates.append(('libvirtd', self.conf.libvirt_server_cert))
        if native_tls:
            certificates.append(('QEMU', self.conf.qemu_server_cert))
        if not certificates:
            return _skip('live migrations do not use TLS ([libvirt] '
                         'live_migration_scheme is not tls, '
                         'live_migration_with_native_tls is off).')
        address, problem = self._address()
        if address is None:
            return _skip('no usable [DEFAULT] my_live_migration_ip; sources '
                         'verify the certificates against the hostname.')
        paths = ' and '.join(path for _, path in certificates)
        if native_tls:
            # Sources running the plugin keep the libvirt connection on the
            # hostname and have QEMU verify it (tls.destination): the
            # certificates need the name, not the migration IP.
            name = self.conf.host
            problems = [p for p in (hostname_problem(path, name, server)
                                    for server, path in certificates) if p]
            mode = ('Native TLS: sources running nova-migration-net connect '
                    'libvirt to this host\'s name %s, stream to %s and have '
                    'TLS verify %s (tls.destination, libvirt 6.0.0 or later '
                    'on the source).' % (name, address, name))
            if problems:
                return _failure('%s %s Sources refuse TLS connections to '
                                'this host until then.'
                                % (mode, ' '.join(problems)))
            return _success('%s %s cover %s; the certificates need not name '
                            '%s.' % (mode, paths, name, address))
        # live_migration_scheme = tls alone: libvirt connects to the
        # migration IP and verifies libvirtd's certificate against it.
        ip = ipaddress.ip_address(address)
        problems = [p for p in (certificate_problem(path, ip, server)
                                for server, path in certificates) if p]
        if problems:
            return _failure('%s Sources refuse TLS connections to %s until '
                            'then.' % (' '.join(problems), address))
        return _success('%s name %s in subjectAltName.' % (paths, address))

    def _check_peers(self):
        peers = self.conf.peer
        if not peers:
            return _skip('no --peer given. Give the migration addresses of '
                         'other compute hosts to check that libvirtd answers '
                         'there.')
        scheme = self.conf.libvirt.live_migration_scheme or 'tcp'
        port = self.conf.libvirt_port or LIBVIRT_PORTS.get(scheme, 16509)
        native_tls = self.conf.libvirt.live_migration_with_native_tls
        address, problem = self._address()
        answered, failed = [], []
        for peer in peers:
            if native_tls:
                # The libvirt connection goes to the hostname, over the
                # management network (hooks.plane_mode).
                error = connect_problem(peer, port, names=True,
                                        timeout=self.conf.peer_timeout)
            else:
                error = connect_problem(peer, port, address,
                                        self.conf.peer_timeout)
            if error is None:
                answered.append(peer)
            else:
                failed.append('%s port %d: %s' % (peer, port, error))
        if native_tls:
            where = ('With native TLS, libvirtd\'s connection goes to the '
                     'destination\'s hostname, only QEMU\'s stream to its '
                     'migration address (on ports open only during a '
                     'migration, which this check cannot probe).')
            if failed:
                return _failure(
                    'No answer from %s. %s Check that libvirtd listens on '
                    'the peers\' hostnames, and the routes and firewalls to '
                    'them.' % ('; '.join(failed), where))
            return _success('%s answered on port %d. %s'
                            % (', '.join(answered), port, where))
        origin = ' (connecting from %s)' % address if address else ''
        if failed:
            return _failure(
                'No answer from %s%s. Check that libvirtd listens on the '
                'peers\' migration addresses, and the routes and firewalls '
                'between the migration addresses.'
                % ('; '.join(failed), origin))
        return _success('%s answered on port %d%s.'
                        % (', '.join(answered), port, origin))

    _upgrade_checks = (
        ('Migration address option', _check_option),
        ('Migration address on this host', _check_interface),
        ('live_migration_inbound_addr', _check_inbound_addr),
        ('Cold migrations and resizes', _check_cold_migrations),
        ('Plugin activation', _check_activation),
        ('Eventlet and config_source', _check_early_imports),
        ('TLS certificate', _check_tls_certificate),
        ('Peers on the migration plane', _check_peers),
    )


def _load_certificate(path, server):
    """``(certificate, problem)``: the first PEM certificate, or why not."""
    try:
        with open(path, 'rb') as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except OSError as err:
        return None, ('Cannot read %s\'s certificate %s: %s.'
                      % (server, path, err.strerror or err))
    except ValueError as err:
        return None, ('%s\'s certificate %s is not a PEM certificate: %s.'
                      % (server, path, err))
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc):
        return None, ('%s\'s certificate %s expired on %s: renew it.'
                      % (server, path, cert.not_valid_after_utc.isoformat()))
    return cert, None


def _subject_alt_names(cert):
    """``(ips, dns_names)`` of the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (san.get_values_for_type(x509.IPAddress),
            san.get_values_for_type(x509.DNSName))


def _found(ips, names, common_names=()):
    return ', '.join(['IP:%s' % i for i in ips] +
                     ['DNS:%s' % n for n in names] +
                     ['CN:%s' % n for n in common_names]) or 'none'


def certificate_problem(path, ip, server='libvirtd'):
    """Why the PEM certificate at ``path`` does not serve ``ip``, or None.

    TLS clients (GnuTLS in libvirt and QEMU) match an IP address target only
    against IP address entries of subjectAltName. Only the first certificate
    of the file is read; the chain of trust is not checked.
    """
    cert, problem = _load_certificate(path, server)
    if problem is not None:
        return problem
    ips, names = _subject_alt_names(cert)
    if ip in ips:
        return None
    return ('%s\'s certificate %s has no IP:%s in subjectAltName (it has: '
            '%s): reissue it with IP:%s added.'
            % (server, path, ip, _found(ips, names), ip))


def _name_matches(pattern, name):
    """RFC 6125 matching, as GnuTLS does: a ``*`` left-most label only."""
    pattern, name = pattern.lower().rstrip('.'), name.lower().rstrip('.')
    if pattern.startswith('*.'):
        first, _, rest = name.partition('.')
        return bool(first) and rest == pattern[2:]
    return pattern == name


def hostname_problem(path, name, server='QEMU'):
    """Why the PEM certificate at ``path`` does not serve ``name``, or None.

    As GnuTLS's hostname check: the DNS entries of subjectAltName, and the
    subject's CN only when there are none; an IP address ``name`` matches
    IP address entries only. Only the first certificate of the file is
    read; the chain of trust is not checked.
    """
    cert, problem = _load_certificate(path, server)
    if problem is not None:
        return problem
    ips, names = _subject_alt_names(cert)
    common_names = [a.value for a in cert.subject.get_attributes_for_oid(
        x509.oid.NameOID.COMMON_NAME)]
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        if ip in ips:
            return None
    elif any(_name_matches(n, name) for n in (names or common_names)):
        return None
    return ('%s\'s certificate %s does not cover this host\'s name %s '
            '(it has: %s): reissue it with DNS:%s in subjectAltName, or set '
            '[DEFAULT] host to the name it has.'
            % (server, path, name, _found(ips, names, common_names), name))


def connect_problem(peer, port, source=None, timeout=3.0, names=False):
    """Why a TCP connection to ``peer`` port ``port`` fails, or None.

    :param source: the local address to connect from, when ``peer`` is of
        its IP version: the connection then starts on the migration plane
    :param names: whether ``peer`` may be a host name, resolved as libvirt
        resolves the destination's name
    """
    bind = None
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        if not names:
            return 'not an IP address (give the peer\'s migration address)'
    else:
        peer = str(peer_ip)
        if source is not None and \
                ipaddress.ip_address(source).version == peer_ip.version:
            bind = (str(source), 0)
    try:
        with socket.create_connection((peer, port), timeout=timeout,
                                      source_address=bind):
            return None
    except socket.gaierror as err:
        return 'cannot resolve the name: %s' % err.strerror
    except socket.timeout:
        return 'no answer within %g seconds' % timeout
    except OSError as err:
        # os.strerror: eventlet's green sockets give errno names instead.
        return os.strerror(err.errno) if err.errno else str(err)


def main(argv=None):
    import nova.conf
    conf = nova.conf.CONF
    register_opts(conf)
    return upgradecheck.main(
        conf, project='nova', upgrade_command=Checks(conf),
        argv=sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
