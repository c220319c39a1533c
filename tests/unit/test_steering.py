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

"""The reachability probe on real loopback sockets; the transport's words.

A listener whose accept queue is full drops further SYNs without an answer
(Linux, ``tcp_abort_on_overflow`` 0), as a link that is down or a firewall
that drops does: the probe's bound is measured on that, on loopback only.
"""

import socket
import time
import types

import testtools

from nova_migration_net import records
from nova_migration_net import steering


class TestProbe(testtools.TestCase):

    def listener(self, backlog=8):
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.bind(('127.0.0.1', 0))
        sock.listen(backlog)
        return sock, sock.getsockname()[1]

    def test_a_listening_port_answers(self):
        _, port = self.listener()
        self.assertIsNone(steering.probe('127.0.0.1', port))

    def test_a_refusal_is_an_answer(self):
        sock, port = self.listener()
        sock.close()
        self.assertIsNone(steering.probe('127.0.0.1', port))

    def test_silence_costs_the_bound_and_says_so(self):
        sock, port = self.listener(backlog=0)
        # Fill the accept queue: the next SYNs go unanswered.
        filled = []
        self.addCleanup(lambda: [s.close() for s in filled])
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(('127.0.0.1', port))
            filled.append(client)
        time.sleep(0.2)
        start = time.monotonic()
        why = steering.probe('127.0.0.1', port, timeout=0.5)
        took = time.monotonic() - start
        self.assertEqual('no answer on port %d within 0.5 s' % port, why)
        self.assertGreaterEqual(took, 0.5)
        self.assertLess(took, 0.5 + steering.PROBE_TIMEOUT)

    def test_libvirt_port_of_each_scheme(self):
        for uri, port in (('qemu+tcp://172.30.0.2/system', 16509),
                          ('qemu+tls://172.30.0.2/system', 16514),
                          ('qemu://172.30.0.2/system', 16514),
                          ('qemu+ssh://[fd00:30::2]/system', 22),
                          ('qemu+ssh://172.30.0.2:2222/system', 2222),
                          ('qemu+tcp://[fd00:30::2]:16000/system', 16000),
                          ('qemu+unix:///system', None)):
            self.assertEqual(port, steering.libvirt_port(uri), uri)


# libvirt's migration flags, as the module Transport.of is given has them
# (nova 32's fake libvirt has no VIR_MIGRATE_PARALLEL).
fakelibvirt = types.SimpleNamespace(VIR_MIGRATE_TUNNELLED=4,
                                    VIR_MIGRATE_PARALLEL=131072,
                                    VIR_MIGRATE_TLS=65536)


class TestTransport(testtools.TestCase):

    def transport(self, uri, *flags, parallel=0, tls_name=None):
        value = 0
        for flag in flags:
            value |= flag
        return records.Transport.of(uri, value, parallel, tls_name,
                                    fakelibvirt)

    def test_qemu_tls_alone_does_not_encrypt_the_memory_stream(self):
        # OSSN-0089: libvirt's connection is TLS, QEMU's stream is not.
        transport = self.transport('qemu+tls://172.30.0.2/system')
        self.assertEqual(('qemu+tls', False, None),
                         (transport.name, transport.encrypted,
                          transport.tls_name))
        self.assertEqual('qemu+tls, memory stream not encrypted',
                         str(transport))

    def test_native_tls_encrypts_and_names_what_it_verifies(self):
        transport = self.transport(
            'qemu+tcp://compute-b/system', fakelibvirt.VIR_MIGRATE_TLS,
            fakelibvirt.VIR_MIGRATE_PARALLEL, parallel=2,
            tls_name='compute-b')
        self.assertEqual(
            'native TLS with 2 parallel connections, memory stream '
            'encrypted, TLS verifies compute-b', str(transport))

    def test_tunnelled_over_tls_or_ssh_is_encrypted(self):
        tls = self.transport('qemu+tls://172.30.0.2/system',
                             fakelibvirt.VIR_MIGRATE_TUNNELLED,
                             tls_name='172.30.0.2')
        self.assertEqual('tunnelled over qemu+tls, memory stream encrypted, '
                         'TLS verifies 172.30.0.2', str(tls))
        ssh = self.transport('qemu+ssh://172.30.0.2/system',
                             fakelibvirt.VIR_MIGRATE_TUNNELLED,
                             tls_name='172.30.0.2')
        self.assertEqual('tunnelled over qemu+ssh, memory stream encrypted',
                         str(ssh))
        tcp = self.transport('qemu+tcp://172.30.0.2/system',
                             fakelibvirt.VIR_MIGRATE_TUNNELLED)
        self.assertFalse(tcp.encrypted)

    def test_parallel_without_the_flag_is_not_multifd(self):
        self.assertEqual(0, self.transport('qemu+tcp://h/system',
                                           parallel=4).multifd)
