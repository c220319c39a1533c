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

"""What an operator and a monitoring system learn of each migration's plane.

One server live-migrates three times (:data:`CASES`): over the migration
plane, to a destination with the plugin and the option unset, and to a
stock destination. After each, the records are read as an operator reads
them, with openstackclient (``openstack server event show``, microversion
2.84) and openstacksdk, and as a monitoring system does, with an
oslo.messaging notification listener on the cloud's RabbitMQ; each must say
what the kernel's byte counters saw. The commands and their output are
written to ``doc/source/records-measured.inc``.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging

from tests.cloud import cloud as cloud_
from tests.cloud import install
from tests.cloud import scenario
from tests.cloud.services import compute
from tests.hypervisor import test_planes
from tests.hypervisor import testbed

SOURCE_EVENT = 'migration_net_live_migration'
DESTINATION_EVENT = 'migration_net_pre_live_migration'
MEASURED_DOC = os.path.join(install.REPO, 'doc', 'source',
                            'records-measured.inc')
CAPTURED = os.path.join(cloud_.WORK_DIR, 'records.json')
NOTIFICATION_TIMEOUT = 30


class Listener:
    """The plugin's versioned notifications, as a monitoring system gets
    them: a listener pool of its own on nova's ``versioned_notifications``
    topic.
    """

    filter_rule = oslo_messaging.NotificationFilter(
        event_type=r'^migration_net\.')

    def __init__(self, url):
        self.received = []
        self._cond = threading.Condition()
        transport = oslo_messaging.get_notification_transport(
            cfg.ConfigOpts(), url=url)
        self.listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(
                topic='versioned_notifications', exchange='nova')],
            [self], executor='threading', pool='nova-migration-net-test')
        self.listener.start()

    def _received(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._cond:
            self.received.append({'publisher_id': publisher_id,
                                  'event_type': event_type,
                                  'payload': payload})
            self._cond.notify_all()

    info = error = _received

    def wait_for(self, instance_uuid, request_id, count):
        """The ``count`` notifications of one migration, in arrival order."""
        def mine():
            return [n for n in self.received
                    if n['payload']['nova_object.data']['instance_uuid']
                    == instance_uuid and
                    n['payload']['nova_object.data']['request_id']
                    == request_id]
        deadline = time.monotonic() + NOTIFICATION_TIMEOUT
        with self._cond:
            while len(mine()) < count and time.monotonic() < deadline:
                self._cond.wait(1)
            # A notification too many would arrive with the others.
            return mine()

    def stop(self):
        self.listener.stop()
        self.listener.wait()


class TestPlaneRecords(scenario.CloudTestCase):

    def cases(self):
        """(name, source spec, destination spec, source, destination,
        link, what the source's event says, the destination's or None,
        the notifications' (event type, plane, reason)).
        """
        a, b = self.a, self.b
        # The cloud's computes migrate over qemu+tcp, as nova's default.
        plain = '; transport qemu+tcp, memory stream not encrypted'
        unset = ("management plane: streams to {dest}, the destination's "
                 "hostname; the destination advertised no "
                 "my_live_migration_ip (unset there, or nova-migration-net "
                 "not installed there)" + plain)
        return [
            ('migration plane', scenario.ipv4(a), scenario.ipv4(b), a, b,
             testbed.MIGR_IF,
             "migration plane: streams to %s, the destination's "
             "my_live_migration_ip" % b.migration_ipv4 + plain, None,
             [('migration_net.live_migration', 'migration', None)]),
            ('option unset on the destination', scenario.PLUGIN_UNSET,
             scenario.ipv4(b), b, a, testbed.MGMT_IF,
             unset.format(dest=a.name),
             "management plane: streams to %s, the destination's "
             "hostname; my_live_migration_ip is unset on this host"
             % a.name,
             [('migration_net.pre_live_migration', 'management',
               'option_unset'),
              ('migration_net.live_migration', 'management',
               'not_advertised')]),
            ('stock destination', scenario.PLUGIN_UNSET, compute.STOCK, a,
             b, testbed.MGMT_IF, unset.format(dest=b.name), None,
             [('migration_net.live_migration', 'management',
               'not_advertised')]),
        ]

    def test_each_migration_says_which_plane_it_used(self):
        listener = Listener(self.cloud.rabbitmq.transport_url)
        self.addCleanup(listener.stop)
        captured = []
        server = None
        for (name, spec_a, spec_b, source, dest, link, source_details,
                dest_details, notifications) in self.cases():
            with self.logs_on_failure():
                self.computes(spec_a, spec_b)
                if server is None:
                    server, _ = self.boot(self.a)
                    # openstackclient as an operator on the controller
                    # runs it: the clouds.yaml (its cacert) is all it
                    # needs for the cloud's https endpoints.
                    self.assertIn(server.id, self.openstack(
                        'server', 'list', '-f', 'value', '-c',
                        'ID')['output'].split())
                server, moved, seconds = self.live_migrate(server, dest)
                self.assertEqual(('ACTIVE', dest.name),
                                 (server.status, server.compute_host), name)
                self.assertEqual('completed',
                                 self.last_migration(server).status, name)
                on_link = test_planes.share(moved, link)
                self.assertGreaterEqual(on_link, test_planes.MIN_SHARE,
                                        '%s: %s' % (name, moved))
                action = self.live_migration_action(server)
                events = {e['event']: e for e in action.events}
                self.assertEqual(('Success', source.name, source_details),
                                 (events[SOURCE_EVENT]['result'],
                                  events[SOURCE_EVENT]['host'],
                                  events[SOURCE_EVENT]['details']), name)
                if dest_details is None:
                    self.assertNotIn(DESTINATION_EVENT, events, name)
                else:
                    self.assertEqual(
                        (dest.name, dest_details),
                        (events[DESTINATION_EVENT]['host'],
                         events[DESTINATION_EVENT]['details']), name)
                received = listener.wait_for(server.id, action.request_id,
                                             len(notifications))
                self.assertEqual(
                    sorted(notifications),
                    sorted((n['event_type'],
                            n['payload']['nova_object.data']['plane'],
                            n['payload']['nova_object.data']['reason'])
                           for n in received), name)
                captured.append({
                    'case': name, 'server': server.id,
                    'request_id': action.request_id,
                    'link': link, 'bytes': moved, 'seconds': seconds,
                    'record_seconds': self.record_seconds(source),
                    'event_list': self.openstack(
                        'server', 'event', 'list', server.id),
                    'event_show': self.openstack(
                        'server', 'event', 'show', server.id,
                        action.request_id, '-f', 'json'),
                    'notifications': received})
        with open(CAPTURED, 'w') as f:
            json.dump(captured, f, indent=2)
        with open(MEASURED_DOC, 'w') as f:
            f.write(render(captured))

    def live_migration_action(self, server):
        """The server's latest live-migration action, with its events
        (openstacksdk negotiates microversion 2.84, which shows details).
        """
        actions = sorted(
            (a for a in self.conn.compute.server_actions(server)
             if a.action == 'live-migration'), key=lambda a: a.start_time)
        return self.conn.compute.get_server_action(actions[-1].request_id,
                                                   server)

    def openstack(self, *args):
        """``openstack`` (openstackclient) as the cloud's admin, at the
        microversion that shows event details; its output.
        """
        argv = ['openstack', '--os-cloud', cloud_.CLOUD_NAME,
                '--os-compute-api-version', '2.84'] + list(args)
        result = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), argv[0])]
            + argv[1:], capture_output=True, text=True, timeout=120,
            env=dict(os.environ,
                     OS_CLIENT_CONFIG_FILE=self.cloud.clouds_yaml))
        self.assertEqual(0, result.returncode, result.stderr)
        return {'command': ' '.join(argv), 'output': result.stdout}

    def record_seconds(self, source):
        """What recording took on ``source`` for its latest migration,
        from its debug line.
        """
        return [float(s) for s in re.findall(
            r'Recorded the plane of this live migration \(source\) in '
            r'([\d.]+) s', self.node(source).log_text())][-1:]


def render(captured):
    """The doc's include: the commands and their output; for the second and
    later migrations, the plugin's events of ``event show`` only.
    """
    out = ['.. Written by tests/cloud/test_records.py on the real cloud '
           'tier;', '   do not edit by hand.', '']
    for n, case in enumerate(captured):
        out += ['**%s** (%d MiB of the guest on %s; recorded in %s on the '
                'source, the migration took %.1f s from the API call):' % (
                    case['case'][0].upper() + case['case'][1:],
                    case['bytes'][case['link']] // 2**20, case['link'],
                    ', '.join('%.0f ms' % (1000 * s)
                              for s in case['record_seconds']),
                    case['seconds']), '']
        runs = [case['event_list'], case['event_show']] if n == 0 else []
        if n:
            shown = json.loads(case['event_show']['output'])
            shown['events'] = [e for e in shown['events']
                               if e['event'].startswith('migration_net_')]
            out += ['The plugin\'s events in the output of ``%s``:' % (
                case['event_show']['command']), '']
            runs = [{'command': None,
                     'output': json.dumps(shown['events'], indent=2)}]
        out += ['.. code-block:: %s' % ('json' if n else 'console'), '']
        for run in runs:
            if run['command']:
                out.append('   $ %s' % run['command'])
            out += ['   ' + line if line else ''
                    for line in run['output'].rstrip('\n').split('\n')]
        out.append('')
    first = captured[0]['notifications'][0]
    out += ['The notification of the first migration, as the listener '
            'received it:', '', '.. code-block:: json', '']
    out += ['   ' + line for line in json.dumps(
        first, indent=2, sort_keys=True).split('\n')]
    out.append('')
    return '\n'.join(out)
