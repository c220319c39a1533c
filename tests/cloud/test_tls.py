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

"""Every API of the cloud behind TLS, as clients meet it.

The catalog lists each API once per interface, at ``https://`` on the
controller's management address; there haproxy
(:mod:`tests.cloud.services.tls`) answers only TLS, with a certificate the
cloud's own CA signed (the machine's trust store does not know it), and
every link the services build says ``https``. keystoneauth's version
discovery, which follows those links, lands on https endpoints for every
service openstacksdk uses. The live migrations of the other modules are
made through these endpoints.
"""

import http.client
import json
import ssl
import urllib.parse

from tests.cloud import scenario

# The catalog's service types, by the cloud's service names.
SERVICE_TYPES = {'keystone': 'identity', 'placement': 'placement',
                 'glance': 'image', 'neutron': 'network',
                 'nova': 'compute'}
# A collection each API lists (under its discovered endpoint).
COLLECTIONS = {'keystone': '/projects', 'placement': '/resource_providers',
               'glance': '/images', 'neutron': '/networks',
               'nova': '/servers'}
# The APIs whose root document links to the API by absolute URL, built from
# the request; placement's link is relative ("href": "").
ABSOLUTE_LINKS = ('keystone', 'glance', 'neutron', 'nova')


def hrefs(document):
    """Every ``href`` anywhere in a JSON ``document``."""
    if isinstance(document, dict):
        return [v for k, v in document.items() if k == 'href'] + [
            h for v in document.values() for h in hrefs(v)]
    if isinstance(document, list):
        return [h for v in document for h in hrefs(v)]
    return []


class TestTLS(scenario.CloudTestCase):

    def get(self, url, context):
        """``GET url`` with ``context`` (None: in clear); the status and
        the body.
        """
        parts = urllib.parse.urlsplit(url)
        if context:
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=30, context=context)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                              timeout=30)
        try:
            conn.request('GET', parts.path or '/',
                         headers={'Accept': 'application/json'})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def test_the_catalog_lists_https_endpoints_only(self):
        expected = {(SERVICE_TYPES[api.name], interface): api.url
                    for api in self.cloud.tls.apis
                    for interface in ('public', 'internal')}
        identity = self.conn.identity
        types = {s.id: s.type for s in identity.services()}
        catalog = {(types[e.service_id], e.interface): e.url
                   for e in identity.endpoints()}
        # keystone's bootstrap adds its admin endpoint.
        self.assertEqual(expected, {k: v for k, v in catalog.items()
                                    if k[1] != 'admin'})
        self.assertEqual({self.cloud.keystone.url}, {
            v for k, v in catalog.items() if k[1] == 'admin'})
        for url in catalog.values():
            self.assertTrue(url.startswith(
                'https://%s:' % self.cloud.controller_ip), url)

    def test_each_api_answers_tls_only_with_the_clouds_certificate(self):
        verified = ssl.create_default_context(cafile=self.cloud.tls.ca_file)
        system = ssl.create_default_context()
        for api in self.cloud.tls.apis:
            with self.subTest(api=api.name):
                status, body = self.get(api.url, verified)
                self.assertLess(status, 400, body)
                # Links to the cloud, not to docs.openstack.org.
                own = [h for h in hrefs(json.loads(body))
                       if urllib.parse.urlsplit(h).hostname
                       == self.cloud.controller_ip]
                self.assertEqual(api.name in ABSOLUTE_LINKS, bool(own), body)
                for link in own:
                    self.assertTrue(link.startswith(
                        'https://%s:%d/' % (self.cloud.controller_ip,
                                            api.port)), link)
                with self.assertRaises(ssl.SSLCertVerificationError):
                    self.get(api.url, system)
                clear = api.url.replace('https://', 'http://', 1)
                with self.assertRaises((http.client.RemoteDisconnected,
                                        ConnectionResetError)):
                    self.get(clear, None)

    def test_openstacksdk_discovers_https_endpoints(self):
        """The endpoint each of openstacksdk's proxies discovered from the
        version documents (keystoneauth follows their ``self`` links) is
        under the catalog's https one, and answers there.
        """
        for api in self.cloud.tls.apis:
            with self.subTest(api=api.name):
                proxy = getattr(self.conn, SERVICE_TYPES[api.name])
                url = proxy.get_endpoint_data().url
                self.assertTrue(url.startswith(api.url + '/'), url)
                response = proxy.get(COLLECTIONS[api.name])
                self.assertEqual(200, response.status_code, response.text)
                self.assertTrue(response.url.startswith(url), response.url)
