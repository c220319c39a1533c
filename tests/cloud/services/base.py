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

"""What every service module builds on.

:func:`iniset` writes one option, as devstack's ``iniset`` does, so a
service's configuration reads as a list of options. :class:`Service` is
the verbs; :class:`Daemon` is one of its processes, started inside a
testbed host's network, mount and UTS namespaces (``nsenter -t <that
host's libvirtd>``), so it sees that host's addresses, hostname,
``/etc/hosts`` and libvirt socket. Every daemon is its own session: it is
stopped with its children (gunicorn's workers) by process group, and it
writes its stdout and stderr to ``<work dir>/logs/<name>.out``.

An API's gunicorn listens on the controller's loopback
(:data:`BACKEND_ADDRESS`); clients reach it through the controller's
haproxy, which terminates TLS on the same port at the management address
(:mod:`tests.cloud.services.tls`).

Daemons get a clean environment (``PATH``, ``HOME``, ``LANG`` and what the
service needs), not the test runner's: nothing of tox or stestr reaches
them.
"""

from concurrent import futures
import configparser
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

# The environment an operator's shell gives a service.
BASE_ENV = {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:'
                    '/sbin:/bin',
            'HOME': '/root', 'LANG': 'C.UTF-8'}

# Where an API's gunicorn listens, on its public port: haproxy, on the
# same host, forwards to it.
BACKEND_ADDRESS = '127.0.0.1'

# Seconds: one command of a service's init, a service to come up, to stop.
COMMAND_TIMEOUT = 300
START_TIMEOUT = 120
STOP_TIMEOUT = 20

# The shim gunicorn loads: nova-api and neutron parse sys.argv and reject
# gunicorn's arguments.
ARGV_WSGI = """import importlib
import os
import sys

sys.argv = sys.argv[:1]
application = importlib.import_module(os.environ['WSGI_MODULE']).application
"""


def _parser(path):
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str
    parser.read(path)
    return parser


def iniset(path, section, option, value):
    """Set ``option`` in ``section`` of the INI file ``path``."""
    parser = _parser(path)
    if section != 'DEFAULT' and not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, option, str(value))
    with open(path, 'w') as f:
        parser.write(f)


def iniunset(path, section, option):
    """Remove ``option`` from ``section`` of ``path``, if it is there."""
    parser = _parser(path)
    if parser.remove_option(section, option) if (
            section == 'DEFAULT' or parser.has_section(section)) else False:
        with open(path, 'w') as f:
            parser.write(f)


def iniget(path, section, option):
    """``option`` of ``section`` in ``path``, or None."""
    return _parser(path).get(section, option, fallback=None)


def run(cmd, timeout=COMMAND_TIMEOUT, **kwargs):
    """Run ``cmd`` and return its output; raise with it when it fails.

    In :data:`BASE_ENV` unless ``env`` is given: the test runner's
    ``PYTHONPATH`` (this checkout) would show a venv's pip the plugin's
    egg-info as an installed plugin.
    """
    kwargs.setdefault('env', dict(BASE_ENV))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kwargs)
    if proc.returncode:
        raise RuntimeError('%s exited %d:\n%s' % (' '.join(cmd),
                                                  proc.returncode,
                                                  proc.stdout[-5000:]))
    return proc.stdout


class Died(RuntimeError):
    """A daemon exited; waiting for it is over."""


def wait_for(what, check, timeout=START_TIMEOUT, interval=0.5):
    """Call ``check`` until it returns a true value; that value.

    :raises TimeoutError: ``check`` never did in ``timeout`` seconds; the
        message says ``what`` was awaited and the last error.
    :raises Died: what ``check`` raised to say waiting is pointless.
    """
    deadline = time.monotonic() + timeout
    error = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Died:
            raise
        except Exception as e:
            error = e
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError('%s: not after %ds (last error: %r)'
                       % (what, timeout, error))


def at_once(items, call):
    """``call`` each of ``items`` in threads of this one (so in its network
    namespace); raise the first error once every call has ended.
    """
    with futures.ThreadPoolExecutor(max(1, len(items))) as pool:
        calls = [pool.submit(call, item) for item in items]
    for done in calls:
        done.result()


def http_up(url, cafile=None, timeout=5):
    """Whether ``url`` answers HTTP with a status below 500, an ``https``
    one with a certificate ``cafile`` verifies.

    Through a proxy, 502 and 503 say the service behind it is not up yet.
    """
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        urllib.request.urlopen(url, timeout=timeout, context=context).close()
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False
    return True


class Daemon:
    """One long-running process of a service, in a host's namespaces."""

    def __init__(self, cloud, name, host, argv, env=None):
        self.cloud = cloud
        self.name = name
        self.host = host
        self.argv = list(argv)
        self.env = dict(BASE_ENV, **(env or {}))
        self.output = os.path.join(cloud.log_dir, name + '.out')
        self.proc = None

    def start(self):
        with open(self.output, 'a') as out:
            self.proc = subprocess.Popen(
                self.cloud.nsenter(self.host) + self.argv,
                stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True, cwd='/')
        self.cloud.record_pid(self.name, self.proc.pid)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        """Raise, with the end of its output, if the process exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise Died('%s exited %d:\n%s' % (
                self.name, self.proc.returncode, tail(self.output)))
        return True

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM its process group, SIGKILL what is left after
        ``timeout`` seconds; True when it stopped on SIGTERM.
        """
        if self.proc is None:
            return True
        graceful = True
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                # Its children (gunicorn workers) go with the group.
                time.sleep(0.2)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                graceful = False
                continue
            break
        self.cloud.forget_pid(self.name)
        self.proc = None
        return graceful


def tail(path, lines=40):
    """The last ``lines`` lines of ``path`` (or why there are none)."""
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError as e:
        return '(%s)' % e


class Service:
    """A service with devstack ``lib/``'s verbs.

    ``cloud`` is the :class:`tests.cloud.cloud.Cloud` it belongs to: paths,
    hosts, the database and the other services' addresses.
    """

    name = None
    # The API's port on the controller, for an HTTP service: haproxy's at
    # the management address, gunicorn's at BACKEND_ADDRESS.
    port = None

    def __init__(self, cloud):
        self.cloud = cloud
        self.daemons = []
        self.etc = os.path.join(cloud.work_dir, 'etc', self.name)
        self.state = os.path.join(cloud.work_dir, 'state', self.name)

    @property
    def url(self):
        """The API's endpoint, as the catalog lists it: haproxy's."""
        return 'https://%s:%d' % (self.cloud.controller_ip, self.port)

    @property
    def log_file(self):
        return os.path.join(self.cloud.log_dir, self.name + '.log')

    def install(self):
        """What the machine needs; by default the controller venv, which
        :mod:`tests.cloud.install` made.
        """

    def configure(self):
        """Write the service's config files."""

    def init(self):
        """Databases, keystone accounts; after the services it needs are
        started.
        """

    def start(self):
        """Start the service and wait until it answers."""

    def stop(self):
        """Stop the service's processes (in reverse start order)."""
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons = []

    def logs(self):
        """The files worth reading when the service misbehaves."""
        return [self.log_file] + [d.output for d in self.daemons]

    def copy_etc(self, project, filename, venv=None):
        """Copy a file a package installs under ``<venv>/etc/<project>``
        (paste files) into this service's ``etc``; its new path.
        """
        path = os.path.join(self.etc, filename)
        shutil.copy(os.path.join(venv or self.cloud.venvs['controller'],
                                 'etc', project, filename), path)
        return path

    def bin(self, command, venv=None):
        return os.path.join(venv or self.cloud.venvs['controller'], 'bin',
                            command)

    def spawn(self, name, host, argv, env=None):
        daemon = Daemon(self.cloud, name, host, argv, env).start()
        self.daemons.append(daemon)
        return daemon

    def gunicorn(self, name, module, env=None):
        """A WSGI ``module`` under gunicorn on the controller's ``port``
        at :data:`BACKEND_ADDRESS`; up once it answers through haproxy.

        One worker with threads; no control socket (gunicorn 27 shares
        one under ``~/.gunicorn`` by default). gunicorn trusts no proxy's
        ``X-Forwarded-Proto`` (it would trust haproxy's from 127.0.0.1 by
        default): the service's own :meth:`behind_proxy` does, as under
        uwsgi or mod_wsgi.
        """
        shim_dir = os.path.join(self.cloud.work_dir, 'bin')
        os.makedirs(shim_dir, exist_ok=True)
        # Services start at once: replace the shim whole, never truncate
        # the file another gunicorn may be importing.
        shim = os.path.join(shim_dir, 'argv_wsgi.py')
        with tempfile.NamedTemporaryFile('w', dir=shim_dir, suffix='.tmp',
                                         delete=False) as f:
            f.write(ARGV_WSGI)
        os.replace(f.name, shim)
        log = self.cloud.log_dir
        argv = [self.bin('gunicorn'), '--workers', '1', '--threads', '4',
                '--bind', '%s:%d' % (BACKEND_ADDRESS, self.port),
                '--forwarded-allow-ips', '',
                '--timeout', '300', '--graceful-timeout', '5',
                # Longer than clients keep idle connections: else a request
                # meets a connection gunicorn is closing.
                '--keep-alive', '75',
                '--name', name, '--no-control-socket',
                '--access-logfile', os.path.join(log, name + '-access.log'),
                '--chdir', shim_dir, 'argv_wsgi:application']
        env = dict(env or {}, WSGI_MODULE=module)
        daemon = self.spawn(name, self.cloud.controller, argv, env)
        wait_for('%s at %s' % (name, self.url),
                 lambda: daemon.check_alive() and http_up(
                     self.url, self.cloud.tls.ca_file))
        return daemon

    def manage(self, *argv, host=None, timeout=COMMAND_TIMEOUT):
        """Run a one-off command (db sync) in a host's namespaces."""
        return run(self.cloud.nsenter(host or self.cloud.controller)
                   + list(argv), timeout=timeout)

    def authtoken(self, path, user=None):
        """keystonemiddleware's ``[keystone_authtoken]`` in ``path``:
        every API checks tokens with keystone as service user ``user``,
        verifying keystone's certificate.
        """
        keystone = self.cloud.keystone
        for option, value in keystone.auth_options(user or self.name):
            iniset(path, 'keystone_authtoken', option, value)
        iniset(path, 'keystone_authtoken', 'cafile', self.cloud.tls.ca_file)
        iniset(path, 'keystone_authtoken', 'www_authenticate_uri',
               keystone.url)
        iniset(path, 'keystone_authtoken', 'service_token_roles_required',
               'True')

    def behind_proxy(self, path):
        """oslo.middleware's ``HTTPProxyToWSGI``, in the service's
        pipeline, takes the scheme from haproxy's ``X-Forwarded-Proto``:
        the links the service builds from the request say ``https``.
        """
        iniset(path, 'oslo_middleware', 'enable_proxy_headers_parsing',
               'True')
