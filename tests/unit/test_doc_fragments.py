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

"""The ``nova.conf`` fragments of the README and ``doc/source``.

Every fragment an operator may paste (a literal or ``ini`` block that
opens with a ``[section]`` line) goes through ``oslo-config-validator``
against the machine-readable sample ``oslo-config-generator`` writes for
nova's namespace (``nova.conf``) and the plugin's two, so a misspelt
option or group fails here. Two options no namespace lists are added from
oslo.config itself, as it registers them when it parses a file:
``[DEFAULT] config_source`` and the ``driver`` of the source's group.

The validator checks names, not values, and knows the source's group by
the name the documentation uses (``migration_net``). A block whose
``:caption:`` names a file other than nova's (``kolla-build.conf``) is
not a fragment.
"""

import os
import re
import subprocess
import sys
import tempfile

from oslo_config import cfg
from oslo_config import generator
import stevedore
import testtools
import yaml

from nova_migration_net import config_source

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NAMESPACES = ('nova.conf', 'nova_migration_net',
              'nova_migration_net.config_source')
SECTION = re.compile(r'\[[A-Za-z0-9_.-]+\]$')
MARKER = re.compile(r'(?:.*::|\s*\.\. code-block:: ini)$')
KEPT = ('name', 'dest', 'default')
# nova 34's options that the pages name and an older nova lacks: the pages
# document nova 34, and the nova32 and nova33 environments run this test
# against the older nova's options.
NOVA_34_OPTIONS = {'DEFAULT': ('concurrency_backend',)}
CAPTION = re.compile(r'\s*:caption:\s*(\S+)')


def _indent(line):
    return len(line) - len(line.lstrip())


def _block(lines, start, indent):
    """The literal block from ``start``: its lines as deep as its first.

    ``indent`` is the marker's; the block's first line is deeper.
    """
    block = []
    depth = None
    for line in lines[start:]:
        if line.strip():
            if depth is None:
                if _indent(line) <= indent:
                    break
                depth = _indent(line)
            elif _indent(line) < depth:
                break
        block.append(line)
    while block and not block[-1].strip():
        block.pop()
    return block


def fragments(path):
    """``(line number, caption, text)`` of each fragment in ``path``."""
    with open(path) as f:
        lines = f.read().splitlines()
    found = []
    consumed = 0
    for number, line in enumerate(lines):
        if number < consumed:
            continue
        if path.endswith('.md'):
            # A Markdown code block: indented by four after a blank line.
            opens = not line.strip() and number + 1 < len(lines) and (
                lines[number + 1].startswith('    '))
            indent = 0
        else:
            opens = bool(MARKER.match(line))
            indent = _indent(line)
        if not opens:
            continue
        block = _block(lines, number + 1, indent)
        consumed = number + 1 + len(block)
        caption = None
        body = []
        for text in block:
            match = CAPTION.match(text)
            if match and not body:
                caption = match.group(1)
            elif text.strip() or body:
                body.append(text)
        if body and SECTION.match(body[0].strip()):
            found.append((number + 2, caption,
                          '\n'.join(s.strip() for s in body) + '\n'))
    return found


def nova_conf_fragments():
    paths = [os.path.join(ROOT, 'README.md')]
    source = os.path.join(ROOT, 'doc', 'source')
    paths += sorted(os.path.join(source, name) for name in os.listdir(source)
                    if name.endswith(('.rst', '.inc')))
    for path in paths:
        for number, caption, text in fragments(path):
            if caption and not os.path.basename(caption).startswith('nova'):
                continue
            yield '%s:%d' % (os.path.relpath(path, ROOT), number), text


def _entry(opt, group):
    return generator._build_entry(opt, group, 'oslo.config', cfg.CONF)


def write_opt_data(path):
    """The generator's YAML sample, plus what oslo.config registers."""
    subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator', '--format', 'yaml',
         '--output-file', path] +
        ['--namespace=%s' % ns for ns in NAMESPACES],
        check=True, capture_output=True, text=True, timeout=120)
    with open(path) as f:
        data = yaml.safe_load(f)
    options = data['options']
    options['DEFAULT']['opts'].append(
        _entry(cfg.ConfigOpts._config_source_opt, 'DEFAULT'))
    for group, names in NOVA_34_OPTIONS.items():
        known = {opt['name'] for opt in options[group]['opts']}
        options[group]['opts'] += [_entry(cfg.StrOpt(name), group)
                                   for name in names if name not in known]
    drivers = stevedore.ExtensionManager('oslo.config.driver').names()
    options[config_source.DEFAULT_GROUP]['opts'].append(_entry(
        cfg.StrOpt('driver', choices=drivers), config_source.DEFAULT_GROUP))
    # The validator reads names only (and defaults with --check-defaults);
    # without the help texts the YAML it parses per fragment is small.
    for group in options.values():
        group['opts'] = [{key: opt.get(key) for key in KEPT}
                         for opt in group['opts']]
    with open(path, 'w') as f:
        yaml.safe_dump(data, f)


def validate(opt_data, text):
    """oslo-config-validator's exit status and output for ``text``."""
    with tempfile.NamedTemporaryFile('w', suffix='.conf') as conf:
        conf.write(text)
        conf.flush()
        result = subprocess.run(
            [sys.executable, '-m', 'oslo_config.validator', '--opt-data',
             opt_data, '--input-file', conf.name],
            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


class TestDocFragments(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.opt_data = os.path.join(cls.tmp.name, 'opts.yaml')
        write_opt_data(cls.opt_data)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_every_fragment_names_known_options(self):
        found = list(nova_conf_fragments())
        # The README's smallest configuration, configure.rst's, and the
        # deploy page's per tool at least.
        self.assertGreaterEqual(len(found), 10, found)
        places = {place.split(':')[0] for place, _ in found}
        self.assertIn('README.md', places)
        self.assertIn('doc/source/deploy.rst', places)
        failed = []
        for place, text in found:
            status, output = validate(self.opt_data, text)
            if status:
                failed.append('%s:\n%s%s' % (place, text, output))
        self.assertEqual([], failed)

    def test_a_misspelt_option_fails(self):
        status, output = validate(self.opt_data, (
            '[DEFAULT]\nconfig_source = migration_net\n'
            'my_live_migraton_ip = 172.168.1.15\n\n'
            '[migration_net]\ndriver = nova_migration_net\n'))
        self.assertEqual(1, status, output)
        self.assertIn('DEFAULT/my_live_migraton_ip is not part of the '
                      'sample config', output)
        self.assertNotIn('config_source', output)
        self.assertNotIn('driver', output)

    def test_a_misspelt_group_fails(self):
        status, output = validate(self.opt_data, (
            '[libvrt]\nlive_migration_inbound_addr = 172.168.1.15\n'))
        self.assertEqual(1, status, output)
        self.assertIn('libvrt', output)

    def test_kolla_build_conf_is_not_a_fragment(self):
        places = [place for place, text in nova_conf_fragments()
                  if 'nova-compute-plugin' in text]
        self.assertEqual([], places)
