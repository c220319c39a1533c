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

"""TLS in front of every API, as production clouds serve them.

kolla-ansible (``kolla_enable_tls_internal``) and openstack-ansible
terminate TLS for the internal endpoints in haproxy; devstack's
``lib/tls`` does it in its tls-proxy. Here the cloud's own CA (the
testbed's :class:`tests.hypervisor.testbed.CA`) signs a server certificate
for the controller that names its hostname and management address in
subjectAltName, and Debian's haproxy, in the controller's namespaces,
listens on each API's public port at the management address, terminates
TLS there, sets ``X-Forwarded-Proto: https`` and forwards to the API's
gunicorn on the same port of the controller's loopback
(:meth:`tests.cloud.services.base.Service.gunicorn`). No API is served in
clear on a network: the catalog lists ``https://`` endpoints only.

Every client verifies the certificate against :attr:`TLS.ca_file`: each
service's ``[keystone_authtoken]``, nova's client sections on every
host, and ``clouds.yaml`` (``cacert``) for openstacksdk and
openstackclient. The services that build absolute links from the request
read the forwarded scheme with ``[oslo_middleware]
enable_proxy_headers_parsing``; gunicorn is told to trust no proxy, as
uwsgi or mod_wsgi in production, so that setting is what counts.
"""

import ipaddress
import os
import socket
import ssl

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.cloud.services import base
from tests.hypervisor import testbed

CA_NAME = 'nova-migration-net cloud CA'

# haproxy in the foreground (-db: no daemon, no master process), so the
# process we hold is haproxy; its log on its stdout, one line per request
# (not for connections that sent none, as the readiness check's). A
# backend's idle
# connections are not kept (http-server-close): gunicorn can never close
# one under a request. Client connections stay open as long as gunicorn
# kept them before (--keep-alive 75) and requests as long as its --timeout.
HAPROXY_GLOBAL = """global
    log stdout format raw local0 info
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    option http-server-close
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 75s
"""

HAPROXY_PROXY = """
frontend {name}
    bind {address}:{port} ssl crt {crt}
    http-request set-header X-Forwarded-Proto https
    default_backend {name}

backend {name}
    server {name} {backend}:{port}
"""


class TLS(base.Service):
    """The cloud's CA and the controller's haproxy."""

    name = 'tls'

    @property
    def ca_file(self):
        """The CA certificate every client of the APIs verifies with."""
        return os.path.join(self.etc, 'ca-cert.pem')

    @property
    def crt(self):
        """The controller's certificate and key, one file, as haproxy's
        ``crt`` reads them.
        """
        return os.path.join(self.etc, 'controller-cert-and-key.pem')

    @property
    def apis(self):
        """The services haproxy fronts: every one with an API port."""
        return [s for s in self.cloud.services if s.port]

    def configure(self):
        os.makedirs(self.etc)
        controller = self.cloud.controller
        ca = testbed.CA(CA_NAME)
        cert, key = ca.leaf(
            controller.name, ExtendedKeyUsageOID.SERVER_AUTH,
            x509.IPAddress(ipaddress.ip_address(controller.mgmt_ip)))
        testbed.write_pki(self.etc, {
            os.path.basename(self.ca_file): ca.pem,
            os.path.basename(self.crt): cert + key})
        self.conf = os.path.join(self.etc, 'haproxy.cfg')
        with open(self.conf, 'w') as f:
            f.write(HAPROXY_GLOBAL)
            for api in self.apis:
                f.write(HAPROXY_PROXY.format(
                    name=api.name, address=controller.mgmt_ip,
                    port=api.port, crt=self.crt,
                    backend=base.BACKEND_ADDRESS))

    def start(self):
        haproxy = self.spawn('haproxy', self.cloud.controller,
                             ['haproxy', '-db', '-f', self.conf])
        base.wait_for('haproxy at %s' % self.cloud.controller_ip,
                      lambda: haproxy.check_alive() and all(
                          self.handshake(api.port) for api in self.apis))

    def handshake(self, port):
        """Whether a TLS handshake with the controller's ``port``
        succeeds, the certificate verified against the CA for the
        management address.
        """
        context = ssl.create_default_context(cafile=self.ca_file)
        address = self.cloud.controller_ip
        with socket.create_connection((address, port), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=address):
                return True

    def logs(self):
        return [d.output for d in self.daemons]
