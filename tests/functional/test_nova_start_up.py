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

"""nova's own console scripts start with the plugin's lines in nova.conf.

Each program runs in a subprocess exactly as an operator starts it
(``nova-compute --config-file nova.conf``), with nothing in the environment
that changes nova's start-up, in both of nova 34's concurrency modes. nova's
in-process test fixtures skip this start-up (monkey patching, logging set-up,
privsep), which is where the plugin once stopped nova-compute 34.

No message bus answers here, so the services get as far as connecting to
it; the cloud tier (``tests/cloud``) runs them against a real one.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import fixtures
import testtools

from nova_migration_net import early_imports
from tests import fixtures as mn_fixtures

NOVA_34 = mn_fixtures.requires_nova(
    34, 'concurrency_backend and the early parse before monkey patching are '
    'new in nova 34')

PLUGIN_LINES = """\
[DEFAULT]
config_source = migration_net
my_live_migration_ip = 172.168.1.15

[migration_net]
driver = nova_migration_net
"""

# What nova prints when something was imported too early for its chosen
# concurrency mode.
TOO_EARLY = (
    'eventlet library imported early',
    'imported prior to eventlet monkey patching',
    'were not greened',
)

EARLY_MODULES = re.compile(r'monkey patching: (.*?)\. This warning')


def too_early(line):
    """A line of nova's that names modules imported too early, with the
    modules in a stable order (nova prints a set).
    """
    modules = EARLY_MODULES.search(line)
    if modules is None:
        return line
    return 'imported prior to eventlet monkey patching: %s' % ', '.join(
        sorted(modules.group(1).split(', ')))


# How each mode shows in what nova-compute writes before logging is set up
# (WARNING and above, to stderr) and after: in threading mode, and only
# there, it logs its options.
STARTED_WITH = {
    'threading': re.compile(r'nova\.cmd\.compute \[-\] concurrency_backend +'
                            r'= threading'),
    'eventlet': re.compile('Eventlet based concurrency mode is deprecated'),
}


def operator_environment(**variables):
    """This process's environment without what changes nova's start-up,
    and with ``variables``.
    """
    env = dict(os.environ)
    env.pop(early_imports.ENVIRONMENT, None)
    env.update(variables)
    return env


def console_script(name):
    """The path of a console script of the environment running the tests."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        path = shutil.which(name)
    return path


def foreign_modules(added, allowed):
    """The modules of ``added`` neither in the standard library nor in the
    top-level packages ``allowed``.
    """
    return sorted(name for name in added
                  if name.split('.')[0] not in allowed and
                  name.split('.')[0] not in sys.stdlib_module_names)


def unused_loopback_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class NovaConf(object):
    """A nova.conf for one program, with or without the plugin's lines."""

    def __init__(self, directory, mode, plugin):
        self.log_file = os.path.join(directory, 'nova.log')
        self.path = os.path.join(directory, 'nova.conf')
        port = unused_loopback_port()
        common = textwrap.dedent("""\
            [DEFAULT]
            host = compute-a
            state_path = %(dir)s
            log_file = %(log)s
            debug = True
            concurrency_backend = %(mode)s
            compute_driver = libvirt.LibvirtDriver
            transport_url = rabbit://guest:guest@127.0.0.1:%(port)d/
            graceful_shutdown_timeout = 2

            [database]
            connection = sqlite:///%(dir)s/nova.sqlite

            [api_database]
            connection = sqlite:///%(dir)s/nova_api.sqlite

            [oslo_concurrency]
            lock_path = %(dir)s/lock
            """) % {'dir': directory, 'log': self.log_file, 'mode': mode,
                    'port': port}
        with open(self.path, 'w') as f:
            f.write(common)
            if plugin:
                f.write('\n' + PLUGIN_LINES)

    def log(self):
        try:
            with open(self.log_file) as f:
                return f.read()
        except FileNotFoundError:
            return ''


# nova-compute's console script (nova.cmd.compute:main).
NOVA_COMPUTE = mn_fixtures.INSTALLED_OR_NOT + textwrap.dedent("""\
    sys.argv[0] = 'nova-compute'
    from nova.cmd import compute
    sys.exit(compute.main())
    """)


class NovaComputeTestCase(testtools.TestCase):
    """Starts nova-compute's console script in a subprocess."""

    def start(self, mode, installed=True, environment=None):
        """nova-compute with the plugin's lines in its nova.conf.

        :param mode: ``[DEFAULT] concurrency_backend``
        :param installed: False runs it as on a host without the package.
        :param environment: variables to add to the operator's environment
        """
        directory = self.useFixture(fixtures.TempDir()).path
        conf = NovaConf(directory, mode, plugin=True)
        stderr = open(os.path.join(directory, 'stderr'), 'w+')
        self.addCleanup(stderr.close)
        if installed:
            command = [console_script('nova-compute')]
        else:
            command = [sys.executable, '-c', NOVA_COMPUTE, 'without-plugin']
        process = subprocess.Popen(
            command + ['--config-file', conf.path],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            env=operator_environment(**(environment or {})),
            start_new_session=True)
        self.addCleanup(self._stop, process)
        return conf, process, stderr

    @staticmethod
    def _stop(process):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def wait_for_the_message_bus(self, conf, process, stderr, timeout=120):
        """Until the service tries the (absent) message bus, or exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if 'Connection failed' in conf.log():
                return
            time.sleep(0.5)
        stderr.seek(0)
        self.fail('%s did not reach the message bus (exit status %s)\n'
                  'stderr:\n%s\nlog:\n%s'
                  % (' '.join(process.args), process.poll(), stderr.read(),
                     conf.log()[-5000:]))

    def started(self, mode, installed=True, environment=None):
        """What nova-compute said about its start-up, once it reached the
        message bus: the lines that say something was imported too early.
        """
        conf, process, stderr = self.start(mode, installed, environment)
        self.wait_for_the_message_bus(conf, process, stderr)
        self.assertIsNone(process.poll(), 'the service exited')
        stderr.seek(0)
        output = stderr.read() + conf.log()
        self.assertRegex(output, STARTED_WITH[mode])
        return sorted(too_early(line) for line in output.splitlines()
                      if any(sign in line for sign in TOO_EARLY))


class TestNovaComputeStartsWithThePlugin(NovaComputeTestCase):
    """nova-compute 34 gets past its start-up with the plugin configured."""

    @NOVA_34
    def test_threading_mode_nova_compute_starts(self):
        # nova 34's default for nova-compute; the plugin once made it exit
        # with "eventlet library imported early".
        self.assertEqual([], self.started('threading'))

    @NOVA_34
    def test_eventlet_mode_nova_compute_imports_nothing_early(self):
        # The plugin once imported nova's libvirt driver before eventlet
        # patched anything: "RLock(s) were not greened". The same nova.conf
        # on a host without the package is the baseline: oslo.config's own
        # drivers for config_source import urllib3 and oslo_context early,
        # and nova says so, with or without the plugin.
        self.assertEqual(self.started('eventlet', installed=False),
                         self.started('eventlet'))

    @NOVA_34
    def test_eventlet_from_the_environment_imports_nothing_early(self):
        # What the docs tell operators: nova then chooses eventlet before it
        # parses nova.conf, so nothing is imported early.
        self.assertEqual([], self.started(
            'eventlet', environment={early_imports.ENVIRONMENT: 'false'}))


class TestLinesWithoutThePackage(NovaComputeTestCase):
    """The plugin's nova.conf lines on a host without the package."""

    @NOVA_34
    def test_threading_mode_nova_compute_refuses_to_start(self):
        # In threading mode nova-compute 34 logs its options before it
        # starts, and oslo.config refuses the group's driver then: the
        # lines must come after the package, and go before it.
        conf, process, stderr = self.start('threading', installed=False)
        self.assertNotEqual(0, process.wait(timeout=120))
        self.assertIn(
            "CRITICAL nova [-] Unhandled error: oslo_config.cfg."
            "ConfigFileValueError: Value for option driver from "
            "LocationInfo(location=<Locations.user: (4, True)>, detail='%s') "
            "is not valid: Valid values are [" % conf.path, conf.log())
        self.assertIn("but found 'nova_migration_net'", conf.log())


# Runs nova's early concurrency parse (nova/monkey_patch.py) as
# nova-compute's first line does and prints the modules it imported.
EARLY_PARSE = mn_fixtures.INSTALLED_OR_NOT + textwrap.dedent("""\
    import json
    sys.argv = ['nova-compute', '--config-file', sys.argv[1]]
    from nova import monkey_patch
    before = set(sys.modules)
    backend = monkey_patch._get_concurrency_from_config()
    print(json.dumps({'backend': backend,
                      'imported': sorted(set(sys.modules) - before)}))
    """)


class TestEarlyParse(testtools.TestCase):
    """The parse nova makes before it decides on monkey patching.

    oslo.config loads every installed ``oslo.config.driver`` as soon as
    ``config_source`` names any source, whether or not the plugin is
    installed: its own ``remote_file`` (requests, urllib3) and castellan's
    (oslo_context) among them. What the plugin may add is measured against
    that: the same nova.conf on a host without the package.
    """

    def parse(self, mode):
        directory = self.useFixture(fixtures.TempDir()).path
        conf = NovaConf(directory, 'threading', plugin=True)
        result = subprocess.run(
            [sys.executable, '-c', EARLY_PARSE, mode, conf.path],
            env=operator_environment(), capture_output=True, text=True,
            timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.splitlines()[-1])

    @NOVA_34
    def test_opening_the_source_imports_nothing_nova_patches(self):
        without = self.parse('without-plugin')
        plugin = self.parse('with-plugin')
        self.assertEqual('threading', plugin['backend'])
        added = sorted(set(plugin['imported']) - set(without['imported']))
        self.assertIn('nova_migration_net.config_source', added)
        # Only the plugin's option modules and the address libraries they
        # need: no nova, no eventlet, no oslo_log or oslo_context.
        self.assertEqual([], foreign_modules(
            added, {'nova_migration_net', 'netaddr', 'psutil'}))
        self.assertNotIn('nova_migration_net.activation', added)
        self.assertEqual(
            [], [name for name in plugin['imported']
                 if name.startswith(('nova.', 'eventlet'))])


# privsep-helper's console script (oslo_privsep.daemon:helper_main), which
# writes the modules it imported to the file named first when it exits.
PRIVSEP_HELPER = mn_fixtures.INSTALLED_OR_NOT + textwrap.dedent("""\
    import atexit, json
    report = sys.argv.pop(1)
    def write():
        with open(report, 'w') as f:
            json.dump(sorted(sys.modules), f)
    atexit.register(write)
    from oslo_privsep.daemon import helper_main
    sys.exit(helper_main())
    """)


class TestPrivsepHelper(testtools.TestCase):
    """privsep-helper, which nova-compute starts as root, parses nova.conf.

    It runs as nova-compute's ``helper_command`` runs it, up to where it
    connects to nova-compute's socket (absent here, so it stops there).
    """

    def imported(self, mode):
        """The modules privsep-helper had imported when it stopped."""
        directory = self.useFixture(fixtures.TempDir()).path
        conf = NovaConf(directory, 'threading', plugin=True)
        report = os.path.join(directory, 'modules.json')
        subprocess.run(
            [sys.executable, '-c', PRIVSEP_HELPER, mode, report,
             '--config-file', conf.path,
             '--privsep_context', 'nova.privsep.sys_admin_pctxt',
             '--privsep_sock_path', os.path.join(directory, 'absent.sock')],
            env=operator_environment(), capture_output=True, timeout=120)
        # It stopped where it connects to nova-compute, not before.
        self.assertIn('sock.connect(cfg.CONF.privsep_sock_path)', conf.log())
        with open(report) as f:
            return set(json.load(f))

    def test_privsep_helper_loads_nothing_of_the_driver(self):
        without = self.imported('without-plugin')
        plugin = self.imported('with-plugin')
        self.assertIn('nova_migration_net.config_source', plugin)
        self.assertIn('nova.privsep', plugin)
        self.assertEqual(
            [], sorted(name for name in plugin
                       if name.startswith(('nova.virt', 'nova.objects'))))
        self.assertEqual([], foreign_modules(
            plugin - without, {'nova_migration_net', 'netaddr', 'psutil',
                               'wrapt'}))


class TestInProcessConcurrencyMode(testtools.TestCase):
    """The in-process tiers run in the concurrency mode their env names."""

    def test_nova_runs_in_the_mode_the_tier_names(self):
        from nova import utils
        expected = os.environ.get('NOVA_MIGRATION_NET_CONCURRENCY')
        if expected is None:
            self.skipTest('NOVA_MIGRATION_NET_CONCURRENCY is not set: not '
                          'run by tox')
        found = ('threading' if utils.concurrency_mode_threading()
                 else 'eventlet')
        self.assertEqual(expected, found)
