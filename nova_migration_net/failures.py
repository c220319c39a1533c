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

"""What the libvirt error of a failed live migration says about the plane.

libvirt raises one ``libvirtError`` from ``virDomainMigrateToURI3`` for
every kind of failure; its error domain, code and message tell them
apart:

- :data:`CONNECT`: no connection to the migration address could be made.
  libvirt's own connection to the destination's libvirtd
  (``VIR_FROM_RPC``, ``VIR_ERR_SYSTEM_ERROR``, "unable to connect to
  server at 'ADDR:PORT'", or ssh's "connect to host ADDR") or QEMU's
  migration stream (``VIR_FROM_QEMU``, ``VIR_ERR_OPERATION_FAILED``,
  "Failed to connect to 'ADDR:PORT'"). libvirt makes these connections
  before it starts the migration job, so no byte of the guest left.
- :data:`TRANSPORT`: a connection toward the address broke, stalled or
  was refused later: an RPC error of libvirt's connection when it goes to
  the address, or a socket error of QEMU's stream. The plane may be the
  cause, but the guest may have been partly or wholly sent.
- None: anything else (an abort, a CPU or configuration mismatch, a TLS
  handshake, an error on the destination).

Error codes are looked up by name on the driver's ``libvirt`` module: the
real binding, or nova's fake one in tests, whose numbers differ.
"""

import re

CONNECT = 'connect'
TRANSPORT = 'transport'

# strerror() of the socket errors a broken or unreachable peer gives.
SOCKET_ERRORS = ('Connection refused', 'Connection reset by peer',
                 'Connection timed out', 'Broken pipe', 'No route to host',
                 'Network is unreachable')


def _code(libvirt, name):
    return getattr(libvirt, name, object())


def classify(exc, address, libvirt, connection_to_address):
    """:data:`CONNECT`, :data:`TRANSPORT` or None for ``exc``.

    :param exc: the ``libvirt.libvirtError`` of the migration
    :param address: the migration IP the stream went to
    :param libvirt: the libvirt module ``exc`` comes from
    :param connection_to_address: whether libvirt's own connection went to
        ``address`` (it stays on the hostname with native TLS)
    """
    domain, code = exc.get_error_domain(), exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if code == _code(libvirt, 'VIR_ERR_OPERATION_ABORTED'):
        return None
    host = re.escape(str(address))
    rpc = domain == _code(libvirt, 'VIR_FROM_RPC')
    qemu_failed = (domain == _code(libvirt, 'VIR_FROM_QEMU') and
                   code == _code(libvirt, 'VIR_ERR_OPERATION_FAILED'))
    if (rpc and connection_to_address and
            code == _code(libvirt, 'VIR_ERR_SYSTEM_ERROR') and
            re.search(r"unable to connect to server at '%s:\d+'|"
                      r"connect to host %s port" % (host, host), message)):
        return CONNECT
    if qemu_failed and re.search(r"Failed to connect to '%s:\d+'" % host,
                                 message):
        return CONNECT
    if rpc and connection_to_address:
        return TRANSPORT
    if qemu_failed and any(e in message for e in SOCKET_ERRORS):
        return TRANSPORT
    return None
