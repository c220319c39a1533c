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

"""Fuzzing a peer's ``migration_ip`` through to the URIs libvirt is handed.

A primitive carrying an arbitrary value is read as the source's RPC client
reads it; whatever is accepted goes through the source hook and nova's own
``LibvirtDriver._live_migration_uri`` and ``_migrate_uri``. The URIs' host
must always be the canonical form of the very IP address that was sent.
"""

import datetime
import inspect
import ipaddress
import re

import hypothesis
from hypothesis import strategies as st
import netaddr
from nova import context as nova_context
from nova import objects as nova_objects
from nova.objects import base as nova_base
from nova import test
from nova.tests.unit import fake_instance
from nova.virt.libvirt import driver as libvirt_driver

from nova_migration_net import hooks
from nova_migration_net import objects
from tests import fixtures as mn_fixtures

# Bounded: 1000 examples of about a millisecond each, about 1.5 s in all;
# the deadline only catches an example that hangs.
FUZZ = hypothesis.settings(
    max_examples=1000,
    deadline=datetime.timedelta(seconds=2),
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)

# Characters of addresses, URIs, zones, whitespace and log lines.
_PIECES = st.text(alphabet='0123456789abcdefABCDEFxz:.[]/%@#?&=+-_ '
                           '\t\n\r\x00\u0660\uff11', max_size=12)


def _ipv6_forms(ip):
    forms = [str(ip), ip.exploded, ip.exploded.upper(), ip.compressed]
    if ip.ipv4_mapped is not None:
        forms.append('::ffff:%s' % ip.ipv4_mapped)
    return st.sampled_from(forms)


ADDRESS_TEXT = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).flatmap(_ipv6_forms),
)
VALUES = st.one_of(
    ADDRESS_TEXT,
    st.tuples(_PIECES, ADDRESS_TEXT, _PIECES).map(''.join),
    st.tuples(ADDRESS_TEXT, st.sampled_from(':/%#?@]'), _PIECES).map(
        ''.join),
    _PIECES,
    st.text(max_size=60),
    st.text(alphabet='0123456789abcdef:.', min_size=40, max_size=200),
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.binary(max_size=20),
    st.lists(ADDRESS_TEXT, max_size=2),
)

_QEMU_URI = re.compile(r'qemu\+tcp://(?:\[([^\]]*)\]|([^/\[\]:]*))/system')
_MIGRATE_URI = re.compile(r'tcp://(?:\[([^\]]*)\]|([^/\[\]:]*))')


class TestFuzzMigrationIP(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(mn_fixtures.MigrationNetFixture())
        self.ctxt = nova_context.get_admin_context()
        self.instance = fake_instance.fake_instance_obj(self.ctxt)
        self.serializer = nova_base.NovaObjectSerializer()
        data = objects.LibvirtLiveMigrateData.from_stock(
            nova_objects.LibvirtLiveMigrateData(target_connect_addr=None),
            '172.168.1.15')
        self.primitive = self.serializer.serialize_entity(self.ctxt, data)
        self.original = libvirt_driver.LibvirtDriver.live_migration.__wrapped__
        self.examples = {'refused': 0, 'accepted': 0}

    def receive(self, value):
        primitive = dict(self.primitive)
        primitive['nova_object.data'] = dict(primitive['nova_object.data'],
                                             migration_ip=value)
        return self.serializer.deserialize_entity(self.ctxt, primitive)

    def connect_address(self, data):
        """What the source hook leaves in ``target_connect_addr``."""
        call = inspect.signature(self.original).bind(
            None, self.ctxt, self.instance, 'dest', None, None, False, data)
        call.apply_defaults()
        hooks.LiveMigration().pre(call)
        return data.target_connect_addr

    def assert_host_is_canonical(self, pattern, uri, sent):
        match = pattern.fullmatch(uri)
        self.assertIsNotNone(match, uri)
        bracketed, plain = match.groups()
        host = bracketed if bracketed is not None else plain
        ip = ipaddress.ip_address(host)
        # Brackets exactly for IPv6, the address that was sent, canonical.
        self.assertEqual(ip.version == 6, bracketed is not None, uri)
        self.assertEqual(ipaddress.ip_address(sent), ip, uri)
        self.assertEqual(str(netaddr.IPAddress(host)), host, uri)

    @FUZZ
    @hypothesis.given(VALUES)
    def fuzz(self, value):
        try:
            data = self.receive(value)
        except ValueError:
            self.examples['refused'] += 1
            return
        address = self.connect_address(data)
        if value is None:
            self.assertIsNone(address)
            return
        self.examples['accepted'] += 1
        self.assertIsInstance(value, str)
        self.assert_host_is_canonical(
            _QEMU_URI, libvirt_driver.LibvirtDriver._live_migration_uri(
                address), value)
        self.assert_host_is_canonical(
            _MIGRATE_URI, libvirt_driver.LibvirtDriver._migrate_uri(address),
            value)

    def test_uri_host_is_always_the_canonical_sent_address(self):
        self.fuzz()
        # A fuzz that only ever refuses (or accepts) would prove nothing.
        self.assertGreater(self.examples['refused'], 20, self.examples)
        self.assertGreater(self.examples['accepted'], 20, self.examples)
