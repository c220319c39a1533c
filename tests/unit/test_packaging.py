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

"""The package's metadata, as pip reads it into nova's environment.

The runtime requirements are what pip installs beside nova on every
compute host; a test tool there is a package operators must carry and
keep patched for nothing. The built wheel itself, twine's check and an
install into a fresh nova venv are the packaging tier's
(``tox -e packaging``).
"""

import configparser
import importlib.metadata
import os
import re

from packaging import requirements
from packaging import specifiers
from packaging import utils
from packaging import version
import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Test runners, fixtures, mocks, fuzzers, linters and doc builders of the
# OpenStack world, whatever test-requirements.txt lists today.
KNOWN_TEST_TOOLS = frozenset(utils.canonicalize_name(name) for name in (
    'bandit', 'coverage', 'ddt', 'doc8', 'fixtures', 'flake8', 'hacking',
    'hypothesis', 'mock', 'nose', 'openstackdocstheme', 'os-testr',
    'oslotest', 'pre-commit', 'pytest', 'python-subunit', 'reno',
    'requests-mock', 'sphinx', 'stestr', 'testrepository',
    'testresources', 'testscenarios', 'testtools', 'tox', 'twine',
    'wsgi-intercept',
))
MINOR = re.compile(r'Programming Language :: Python :: (3\.\d+)$')


def requirement_names(name):
    """Canonical names of the requirements in the file ``name``."""
    names = set()
    with open(os.path.join(ROOT, name)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                names.add(utils.canonicalize_name(
                    requirements.Requirement(line).name))
    return names


def metadata():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, 'setup.cfg'))
    return parser['metadata']


def minors(classifiers):
    return sorted((m.group(1) for m in map(MINOR.match, classifiers) if m),
                  key=version.Version)


class TestRequirements(testtools.TestCase):

    def test_runtime_requirements_hold_no_test_tool(self):
        runtime = requirement_names('requirements.txt')
        self.assertIn('nova', runtime)
        self.assertEqual(
            set(), runtime & requirement_names('test-requirements.txt'))
        self.assertEqual(set(), runtime & KNOWN_TEST_TOOLS)

    def test_known_test_tools_cover_the_test_requirements_tools(self):
        # The list is only worth something if it knows today's tools.
        for tool in ('stestr', 'fixtures', 'testtools', 'oslotest',
                     'hypothesis'):
            self.assertIn(tool, requirement_names('test-requirements.txt'))
            self.assertIn(tool, KNOWN_TEST_TOOLS)


class TestClassifiers(testtools.TestCase):

    def setUp(self):
        super().setUp()
        meta = metadata()
        self.requires = specifiers.SpecifierSet(meta['python_requires'])
        self.minors = minors(meta['classifier'].strip().splitlines())

    def test_every_python_classifier_meets_python_requires(self):
        self.assertNotEqual([], self.minors)
        self.assertEqual(
            [], [m for m in self.minors if m not in self.requires])

    def test_the_oldest_python_allowed_is_classified(self):
        oldest = next(v for v in ('3.%d' % n for n in range(6, 20))
                      if v in self.requires)
        self.assertEqual(oldest, self.minors[0])

    def test_every_python_the_installed_nova_declares_is_classified(self):
        nova = importlib.metadata.metadata('nova').get_all('Classifier')
        self.assertEqual(
            [], [m for m in minors(nova) if m not in self.minors])
