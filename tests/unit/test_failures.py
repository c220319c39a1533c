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

"""Which libvirt errors say the plane could not be reached at all.

The messages are libvirt 9's and QEMU 7.2's own, as their sources word
them; the error numbers are nova's fake libvirt's, looked up by name as
the plugin does.
"""

import types

from nova.tests.fixtures import libvirt as fakelibvirt
import testtools

from nova_migration_net import failures

# The real libvirt numbers this abort code; nova's fake has none.
LIBVIRT = types.SimpleNamespace(**{
    name: getattr(fakelibvirt, name) for name in dir(fakelibvirt)
    if name.startswith('VIR_')}, VIR_ERR_OPERATION_ABORTED=78,
    libvirtError=fakelibvirt.libvirtError)
RPC = (fakelibvirt.VIR_ERR_SYSTEM_ERROR, fakelibvirt.VIR_FROM_RPC)
QEMU = (fakelibvirt.VIR_ERR_OPERATION_FAILED, fakelibvirt.VIR_FROM_QEMU)


def classify(message, code_domain, address='172.30.0.2',
             connection_to_address=True):
    code, domain = code_domain
    exc = fakelibvirt.make_libvirtError(
        fakelibvirt.libvirtError, message, error_code=code,
        error_domain=domain)
    return failures.classify(exc, address, LIBVIRT, connection_to_address)


class TestClassify(testtools.TestCase):

    def test_libvirtd_unreachable_is_a_connect_failure(self):
        for reason in ('No route to host', 'Connection refused',
                       'Connection timed out'):
            self.assertEqual(failures.CONNECT, classify(
                "unable to connect to server at '172.30.0.2:16509': %s"
                % reason, RPC))

    def test_ipv6_libvirtd_unreachable_is_a_connect_failure(self):
        self.assertEqual(failures.CONNECT, classify(
            "unable to connect to server at 'fd00:30::2:16509': No route "
            "to host", RPC, address='fd00:30::2'))

    def test_ssh_unreachable_is_a_connect_failure(self):
        self.assertEqual(failures.CONNECT, classify(
            'Cannot recv data: ssh: connect to host 172.30.0.2 port 22: No '
            'route to host: Connection reset by peer', RPC))

    def test_qemu_stream_unreachable_is_a_connect_failure(self):
        # With native TLS libvirt's connection is on the hostname.
        self.assertEqual(failures.CONNECT, classify(
            "operation failed: job 'migration out' failed: Failed to "
            "connect to '172.30.0.2:49152': No route to host", QEMU,
            connection_to_address=False))

    def test_another_address_unreachable_is_no_connect_failure(self):
        self.assertEqual(failures.TRANSPORT, classify(
            "unable to connect to server at '172.30.0.20:16509': No route "
            "to host", RPC))
        self.assertIsNone(classify(
            "unable to connect to server at 'compute-b:16509': No route "
            "to host", RPC, connection_to_address=False))

    def test_broken_connections_are_transport_failures(self):
        self.assertEqual(failures.TRANSPORT, classify(
            'Cannot recv data: Connection reset by peer', RPC))
        self.assertEqual(failures.TRANSPORT, classify(
            'internal error: connection closed due to keepalive timeout',
            (fakelibvirt.VIR_ERR_INTERNAL_ERROR, fakelibvirt.VIR_FROM_RPC)))
        self.assertEqual(failures.TRANSPORT, classify(
            "operation failed: job 'migration out' failed: Unable to write "
            "to socket: Broken pipe", QEMU, connection_to_address=False))

    def test_abort_is_not_the_plane(self):
        self.assertIsNone(classify(
            'operation aborted: migration out job: canceled by client',
            (78, fakelibvirt.VIR_FROM_QEMU)))

    def test_other_errors_are_not_the_plane(self):
        self.assertIsNone(classify(
            "operation failed: job 'migration out' failed: Certificate "
            "does not match the hostname 172.30.0.2", QEMU))
        self.assertIsNone(classify(
            'Requested operation is not valid: domain has assigned non-USB '
            'host devices', (fakelibvirt.VIR_ERR_OPERATION_INVALID,
                             fakelibvirt.VIR_FROM_QEMU)))
        self.assertIsNone(classify(
            "internal error: libvirt's RPC to the destination failed",
            (fakelibvirt.VIR_ERR_INTERNAL_ERROR, fakelibvirt.VIR_FROM_QEMU)))
