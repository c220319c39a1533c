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

"""Rolling upgrades: every mix of stock and plugin nova migrates.

Four real nova processes (``tests/functional/nova_peer.py``): stock and
plugin, each with ``my_live_migration_ip`` set and unset in its nova.conf.
For each of the 16 cases they play source, destination and conductor and
pass the live migration data along the hops of a nova 34 live migration,
each hop in the process of the side that owns it, through nova's RPC
serializer. The result is checked and written as the table in
``doc/source/upgrade-matrix.inc``.

The same hops run between this plugin and an older one (plugin version 1,
one migration address), the older one's package taken from git.
"""

import itertools
import json
import os
import subprocess
import sys
import tempfile
import unittest

from nova.objects import migrate_data
from nova import version as nova_version
import testtools

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MATRIX_DOC = os.path.join(REPO, 'doc', 'source', 'upgrade-matrix.inc')
# The nova release the documented matrix was observed with.
DOCUMENTED_NOVA = '34.0.0'
MIGRATION_IP = '172.168.1.15'
# A second migration network, listed second.
SECOND_ADDRESS = '172.31.0.15'
TWO_NETWORKS = '172.168.0.0/16, 172.31.0.0/24'
TWO_NETWORK_INTERFACES = {
    'eth0': [[4, '192.0.2.15', '255.255.255.0']],
    'eth1': [[4, MIGRATION_IP, '255.255.0.0']],
    'eth2': [[4, SECOND_ADDRESS, '255.255.255.0']],
}
# This package before it advertised more than one address: plugin version
# 1, LibvirtLiveMigrateData <stock>.1 with migration_ip only (main when
# issue 28 began).
OLDER_PLUGIN_COMMIT = '902c30a080d55843770640170be49e56961488bc'
STOCK_VERSION = migrate_data.LibvirtLiveMigrateData.VERSION

NOVA_CONF = """\
[DEFAULT]
config_source = migration_net
{option}
[migration_net]
driver = nova_migration_net
{networks}"""


class PeerError(Exception):
    pass


class Peer:
    """A nova process playing one host; see nova_peer.py.

    :param option_set: whether the host sets ``my_live_migration_ip``
    :param networks: its ``[migration_net] migration_networks``, if any
    :param plugin_tree: a directory holding another ``nova_migration_net``
        (an older plugin), run instead of this tree's
    :param interfaces: the host's interface table, for nova_peer.py
    """

    def __init__(self, kind, option_set, workdir, python=sys.executable,
                 networks=None, plugin_tree=None, interfaces=None):
        self.kind = kind
        conf = os.path.join(workdir, 'nova-%s-%s-%d.conf'
                            % (kind, 'set' if option_set else 'unset',
                               id(self)))
        with open(conf, 'w') as f:
            f.write(NOVA_CONF.format(
                option='my_live_migration_ip = %s\n' % MIGRATION_IP
                if option_set and networks is None else '',
                networks='migration_networks = %s\n' % networks
                if networks else ''))
        self.log = open(conf + '.log', 'w+')
        env = dict(os.environ, PYTHONPATH=REPO, EVENTLET_TESTS='1')
        if interfaces is not None:
            env['NOVA_PEER_INTERFACES'] = json.dumps(interfaces)
        # python -m puts its working directory first on sys.path.
        cwd = REPO
        if plugin_tree is not None:
            cwd = plugin_tree
            env['PYTHONPATH'] = os.pathsep.join((plugin_tree, REPO))
        self.process = subprocess.Popen(
            [python, '-m', 'tests.functional.nova_peer', kind, conf],
            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, env=env)

    def _receive(self):
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise PeerError('%s peer died:\n%s' % (self.kind,
                                                   self.log.read()[-4000:]))
        return json.loads(line)

    def _send(self, message):
        self.process.stdin.write(json.dumps(message) + '\n')
        self.process.stdin.flush()

    def wait_ready(self):
        assert self._receive() == {'ready': True}

    def call(self, op, *args, conductor=None, backports=None):
        """One hop; a backport request goes to the conductor process."""
        self._send({'op': op, 'args': list(args)})
        while True:
            message = self._receive()
            if 'backport' in message:
                backports.append(message['versions'])
                self._send({'primitive': conductor.call(
                    'backport', message['backport'], message['versions'])})
            elif 'error' in message:
                raise PeerError('%s %s: %s' % (self.kind, op,
                                               message['error']))
            else:
                return message['result']

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.log.close()


def live_migrate(source, dest, conductor):
    """The hops of one nova 34 live migration; returns the source's URIs."""
    backports = []
    kw = {'conductor': conductor, 'backports': backports}
    # conductor -> dest: check_can_live_migrate_destination, which asks
    # dest -> source: check_can_live_migrate_source, and returns
    # source -> dest -> conductor.
    data = dest.call('check_destination', **kw)
    data = source.call('check_source', data, **kw)
    data = dest.call('relay', data, **kw)
    data = conductor.call('relay', data, **kw)
    # conductor -> source: live_migration; source -> dest:
    # pre_live_migration, whose result goes back to the source.
    data = source.call('relay', data, **kw)
    sent_version = data['nova_object.version']
    data = dest.call('pre_live_migration', data, **kw)
    uris = source.call('live_migration', data, **kw)
    uris['backports'] = len(backports)
    uris['sent_version'] = sent_version
    uris['reply_version'] = data['nova_object.version']
    return uris


CASES = list(itertools.product(('stock', 'plugin'), ('stock', 'plugin'),
                               ('stock', 'plugin'), (True, False)))


def start_peers(workdir, python=sys.executable):
    """Stock and plugin peers, each with the option set and unset."""
    peers = {(kind, option): Peer(kind, option, workdir, python)
             for kind in ('stock', 'plugin') for option in (True, False)}
    for peer in peers.values():
        peer.wait_ready()
    return peers


class PeersTestCase(testtools.TestCase):

    def assertStreamsTo(self, address, uris, case):
        """The source's libvirt URIs go to ``address``: an IP, whose
        ``migrate_uri`` nova sets, or the destination's hostname.
        """
        plane = address != 'dest'
        self.assertEqual('qemu+tcp://%s/system' % address, uris['dconnuri'],
                         case)
        self.assertEqual('tcp://%s' % address if plane else None,
                         uris['migrate_uri'], case)

    @classmethod
    def tearDownClass(cls):
        for peer in cls.peers.values():
            peer.close()
        super().tearDownClass()


class TestRollingUpgrade(PeersTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.peers = start_peers(tempfile.mkdtemp(prefix='nova-peers-'))

    def test_every_mix_migrates_on_the_expected_plane(self):
        rows = []
        for source, dest, conductor, option_set in CASES:
            case = ('source %s, destination %s, conductor %s, option %s'
                    % (source, dest, conductor,
                       'set' if option_set else 'unset'))
            uris = live_migrate(self.peers[(source, False)],
                                self.peers[(dest, option_set)],
                                self.peers[(conductor, False)])
            plane = (source == dest == 'plugin' and option_set)
            self.assertStreamsTo(MIGRATION_IP if plane else 'dest', uris,
                                 case)
            self.assertEqual(0, uris['backports'], case)
            self.assertEqual(
                STOCK_VERSION + ('.1' if dest == 'plugin' and option_set
                                 else ''),
                uris['reply_version'], case)
            rows.append((source, dest, conductor,
                         'set' if option_set else 'unset',
                         uris['reply_version'], uris['dconnuri'],
                         uris['migrate_uri'] or '(none)',
                         'migration' if plane else 'management'))
        if nova_version.version_string() == DOCUMENTED_NOVA:
            self.assertMatrixDocumented(rows)

    def assertMatrixDocumented(self, rows):
        table = render(rows)
        try:
            with open(MATRIX_DOC) as f:
                documented = f.read()
        except FileNotFoundError:
            documented = None
        if documented != table:
            with open(MATRIX_DOC, 'w') as f:
                f.write(table)
            self.fail('%s did not match this run; it has been rewritten: '
                      'review and commit it.' % MATRIX_DOC)


HEADER = ('source', 'destination', 'conductor', 'my_live_migration_ip',
          'pre_live_migration reply', 'libvirt connection URI',
          'migrate_uri', 'plane')


def render(rows):
    """An RST table of the cases, as the test observed them."""
    rows = [HEADER] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    rule = ' '.join('=' * width for width in widths)

    def line(row):
        return ' '.join(cell.ljust(width)
                        for cell, width in zip(row, widths)).rstrip()

    out = ['.. Generated by tests/functional/test_rolling_upgrade.py from '
           'its last run', '   with nova %s; do not edit.' % DOCUMENTED_NOVA,
           '', rule, line(rows[0]), rule]
    out += [line(row) for row in rows[1:]]
    out += [rule, '']
    return '\n'.join(out)


def older_plugin_tree(workdir):
    """``nova_migration_net`` at :data:`OLDER_PLUGIN_COMMIT`, from git.

    The whole package as a host that installed that commit runs it (its
    object and its hooks), not a copy kept beside the tests that could
    drift from what was released. Skips the test where the tree has no
    git history.
    """
    try:
        archive = subprocess.run(
            ['git', '-C', REPO, 'archive', OLDER_PLUGIN_COMMIT,
             'nova_migration_net'], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise unittest.SkipTest('the older plugin comes from git commit %s, '
                                'which this tree does not have: %s'
                                % (OLDER_PLUGIN_COMMIT, err))
    tree = os.path.join(workdir, 'older-plugin')
    os.makedirs(tree)
    subprocess.run(['tar', '-x', '-C', tree], input=archive.stdout,
                   check=True)
    return tree


class TestOlderPlugin(PeersTestCase):
    """This plugin beside plugin version 1 on the same nova.

    The newer destination takes two addresses from ``migration_networks``;
    the older one sets ``my_live_migration_ip`` to the first of them. In
    every mix of older, newer and stock source, destination and conductor,
    the migration streams to the first address when both computes run a
    plugin and the destination advertises, else to the hostname; no mix
    asks for a backport, and only a newer source reads the second address.
    """

    KINDS = ('stock', 'older', 'plugin')

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        workdir = tempfile.mkdtemp(prefix='nova-peers-')
        tree = older_plugin_tree(workdir)
        cls.peers = {
            ('stock', False): Peer('stock', False, workdir),
            ('older', False): Peer('plugin', False, workdir,
                                   plugin_tree=tree),
            ('older', True): Peer('plugin', True, workdir,
                                  plugin_tree=tree),
            ('plugin', False): Peer('plugin', False, workdir),
            ('plugin', True): Peer('plugin', True, workdir,
                                   networks=TWO_NETWORKS,
                                   interfaces=TWO_NETWORK_INTERFACES),
        }
        for peer in cls.peers.values():
            peer.wait_ready()

    def test_older_plugin_writes_version_1_and_this_one_version_2(self):
        older = self.peers[('older', False)].call('versions')
        newer = self.peers[('plugin', False)].call('versions')
        self.assertEqual(STOCK_VERSION + '.1', older['plugin'])
        self.assertEqual(STOCK_VERSION + '.2', newer['plugin'])

    def test_every_mix_with_an_older_plugin_streams_to_the_first_address(
            self):
        for source, dest, conductor in itertools.product(self.KINDS,
                                                         repeat=3):
            if 'older' not in (source, dest, conductor):
                continue
            for option in (True, False):
                if dest == 'stock' and option:
                    continue
                case = ('source %s, destination %s, conductor %s, option %s'
                        % (source, dest, conductor,
                           'set' if option else 'unset'))
                uris = live_migrate(self.peers[(source, False)],
                                    self.peers[(dest, option)],
                                    self.peers[(conductor, False)])
                plane = option and source != 'stock'
                self.assertStreamsTo(MIGRATION_IP if plane else 'dest', uris,
                                     case)
                self.assertEqual(0, uris['backports'], case)
                self.assertEqual(
                    uris['sent_version'] + ('.1' if option else ''),
                    uris['reply_version'], case)
                if source == 'stock':
                    expected = None
                elif not option:
                    expected = []
                elif source == dest == 'plugin':
                    expected = [MIGRATION_IP, SECOND_ADDRESS]
                else:
                    expected = [MIGRATION_IP]
                self.assertEqual(expected, uris['addresses'], case)

    def test_newer_plugins_read_both_addresses_through_a_stock_conductor(
            self):
        uris = live_migrate(self.peers[('plugin', False)],
                            self.peers[('plugin', True)],
                            self.peers[('stock', False)])
        self.assertEqual([MIGRATION_IP, SECOND_ADDRESS], uris['addresses'])
        self.assertStreamsTo(MIGRATION_IP, uris, 'through a stock conductor')
        self.assertEqual(0, uris['backports'])


# The python of a virtualenv with another nova release and the plugin; the
# nova32 and nova33 tox environments point it at the py3 environment's
# nova 34.
OTHER_NOVA_PYTHON = os.environ.get('NOVA_MIGRATION_NET_OTHER_NOVA_PYTHON')


def _release(version):
    """A version string as a tuple to compare: '33.0.2' -> (33, 0, 2)."""
    return tuple(int(part) for part in version.split('.') if part.isdigit())


@testtools.skipUnless(OTHER_NOVA_PYTHON,
                      'NOVA_MIGRATION_NET_OTHER_NOVA_PYTHON is not set (tox '
                      '-e nova32 and -e nova33 set it after tox -e py3)')
class TestNovaUpgrade(PeersTestCase):
    """Hosts on two nova releases, as during a nova upgrade.

    The conductor runs the newer release, as nova's upgrade order requires.
    The live migration data crosses releases in both directions. With the
    plugin on both computes and the option set on the destination, the
    migration streams to the migration IP whatever the conductor, also
    when the releases' stock versions of the object differ (nova 32 and
    34: a model of the next stock bump); otherwise on the hostname. The
    destination answers in the version the source sent, and no mix asks
    the conductor for more backports than the same mix of stock hosts.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.path.exists(OTHER_NOVA_PYTHON):
            raise RuntimeError('%s does not exist; run tox -e py3 first'
                               % OTHER_NOVA_PYTHON)
        workdir = tempfile.mkdtemp(prefix='nova-peers-')
        cls.releases = {'this': start_peers(workdir),
                        'other': start_peers(workdir, OTHER_NOVA_PYTHON)}
        cls.peers = dict(
            ((release,) + key, peer)
            for release, peers in cls.releases.items()
            for key, peer in peers.items())
        cls.versions = {release: peers[('plugin', False)].call('versions')
                        for release, peers in cls.releases.items()}
        cls.newer = ('other' if _release(cls.versions['other']['nova'])
                     > _release(cls.versions['this']['nova']) else 'this')
        cls.older = 'this' if cls.newer == 'other' else 'other'

    def test_plugin_version_follows_the_installed_nova(self):
        for release, peers in self.releases.items():
            versions = self.versions[release]
            self.assertEqual(versions['stock'] + '.2', versions['plugin'])
            self.assertIsNone(
                peers[('stock', False)].call('versions')['plugin'])
        self.assertNotEqual(self.versions['this']['nova'],
                            self.versions['other']['nova'])

    def cross(self, direction, source, dest, conductor, option):
        """One live migration from ``direction[0]``'s release to
        ``direction[1]``'s; its case in words and the source's URIs.
        """
        source_release, dest_release = direction
        case = ('source %s on nova %s, destination %s on nova %s, '
                'conductor %s on nova %s, option %s'
                % (source, self.versions[source_release]['nova'], dest,
                   self.versions[dest_release]['nova'], conductor,
                   self.versions[self.newer]['nova'],
                   'set' if option else 'unset'))
        return case, live_migrate(
            self.peers[(source_release, source, False)],
            self.peers[(dest_release, dest, option)],
            self.peers[(self.newer, conductor, False)])

    def test_data_crosses_releases_both_ways(self):
        for direction in ((self.older, self.newer),
                          (self.newer, self.older)):
            # What an all-stock pair asks of the conductor this way: the
            # plugin may add no backport request to it.
            _, stock = self.cross(direction, 'stock', 'stock', 'stock',
                                  False)
            for source, dest, conductor, option in CASES:
                case, uris = self.cross(direction, source, dest, conductor,
                                        option)
                plane = source == dest == 'plugin' and option
                self.assertStreamsTo(MIGRATION_IP if plane else 'dest', uris,
                                     case)
                # The destination answers in the version the source sent.
                self.assertEqual(
                    uris['sent_version'] + ('.1' if dest == 'plugin' and
                                            option else ''),
                    uris['reply_version'], case)
                self.assertEqual(stock['backports'], uris['backports'], case)
