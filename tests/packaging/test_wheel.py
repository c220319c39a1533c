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

"""Build the sdist and the wheel, check them, install into a fresh nova.

What an operator does: ``pip install -c upper-constraints.txt`` of the
wheel into a new virtualenv, which brings nova 34 with it, then the
plugin's commands. The built files are checked as PyPI would take them
(``twine check --strict``). Runs once per class: building and the install
take a few minutes and need the package index (or pip's cache).
"""

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

from packaging import requirements
from packaging import utils
import testtools

from tests.unit import test_packaging

ROOT = test_packaging.ROOT
CONSTRAINTS = os.environ.get(
    'TOX_CONSTRAINTS_FILE', os.path.join(ROOT, 'upper-constraints.txt'))


def run(*args, **kwargs):
    """Run ``args``; fail with its output when it fails."""
    result = subprocess.run(args, capture_output=True, text=True,
                            timeout=kwargs.pop('timeout', 900), **kwargs)
    if result.returncode:
        raise AssertionError('%s exited %d:\n%s%s' % (
            ' '.join(args), result.returncode, result.stdout,
            result.stderr))
    return result.stdout


class TestWheel(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        dist = os.path.join(cls.tmp.name, 'dist')
        run(sys.executable, '-m', 'build', '--sdist', '--wheel',
            '--outdir', dist, ROOT)
        cls.sdist, = glob.glob(os.path.join(dist, '*.tar.gz'))
        cls.wheel, = glob.glob(os.path.join(dist, '*.whl'))
        venv = os.path.join(cls.tmp.name, 'venv')
        run(sys.executable, '-m', 'venv', venv)
        cls.bin = os.path.join(venv, 'bin')
        cls.install = run(os.path.join(cls.bin, 'pip'), 'install',
                          '-c', CONSTRAINTS, cls.wheel)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_twine_accepts_the_sdist_and_the_wheel(self):
        output = run(sys.executable, '-m', 'twine', 'check', '--strict',
                     self.sdist, self.wheel)
        self.assertEqual(2, output.count('PASSED'), output)

    def test_the_wheel_requires_no_test_tool(self):
        with zipfile.ZipFile(self.wheel) as wheel:
            name, = [n for n in wheel.namelist()
                     if n.endswith('.dist-info/METADATA')]
            meta = wheel.read(name).decode()
        required = {utils.canonicalize_name(
            requirements.Requirement(line.split(':', 1)[1]).name)
            for line in meta.splitlines()
            if line.startswith('Requires-Dist:')}
        self.assertIn('nova', required)
        self.assertEqual(set(), required & test_packaging.KNOWN_TEST_TOOLS)

    def test_installs_beside_nova_34_with_consistent_dependencies(self):
        python = os.path.join(self.bin, 'python')
        versions = run(python, '-c', (
            'import importlib.metadata as m; '
            'print(m.version("nova"), m.version("nova-migration-net"))'))
        self.assertTrue(versions.startswith('34.'), versions)
        run(os.path.join(self.bin, 'pip'), 'check')

    def test_the_entry_points_are_found_in_the_new_venv(self):
        output = run(os.path.join(self.bin, 'python'), '-c', (
            'import importlib.metadata as m\n'
            'for group in ("oslo.config.driver", "oslo.config.opts",\n'
            '              "nova_migration_net.hooks"):\n'
            '    for ep in m.entry_points(group=group):\n'
            '        if ep.value.startswith("nova_migration_net"):\n'
            '            ep.load(); print(group, ep.name)\n'))
        for line in ('oslo.config.driver nova_migration_net',
                     'oslo.config.opts nova_migration_net',
                     'nova_migration_net.hooks pre_live_migration',
                     'nova_migration_net.hooks live_migration'):
            self.assertIn(line, output)

    def test_the_commands_an_operator_runs(self):
        sample = run(os.path.join(self.bin, 'oslo-config-generator'),
                     '--namespace', 'nova_migration_net',
                     '--namespace', 'nova_migration_net.config_source')
        self.assertIn('#my_live_migration_ip = ', sample)
        self.assertIn('#migration_networks =', sample)
        usage = run(os.path.join(self.bin, 'nova-migration-net-status'),
                    '--help')
        self.assertIn('upgrade', usage)
