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

"""The links: tbf on both ends of both, and what tbf did.

Each end's egress of ``mgmt0`` and ``migr0`` gets a token bucket filter
(burst 32 kbit, latency 50 ms: a tail-drop queue of about 1.25 MB at
200 Mbit/s, as a switch port has). The queue is the sending host's own
qdisc, so TCP small queues and the hosts' congestion control decide how
full it gets; a real switch buffering for several senders can be worse.

tbf's counters tell network from CPU: a probe that slows down while tbf
dropped nothing and held no backlog on the management link waited for a
CPU, not for the link.
"""

import json

from tests.hypervisor import testbed

TBF_BURST = '32kbit'
TBF_LATENCY = '50ms'
LINKS = (testbed.MGMT_IF, testbed.MIGR_IF)


def shape(tb, mgmt_mbit, migr_mbit):
    """tbf on the egress of both ends of both links, at these rates."""
    for host in tb.hosts:
        for ifname, rate in ((testbed.MGMT_IF, mgmt_mbit),
                             (testbed.MIGR_IF, migr_mbit)):
            testbed.netns_exec(
                host, 'tc', 'qdisc', 'replace', 'dev', ifname, 'root',
                'tbf', 'rate', '%gmbit' % rate, 'burst', TBF_BURST,
                'latency', TBF_LATENCY)


def qdisc_stats(tb):
    """``{host: {ifname: {drops, overlimits, packets}}}`` of the tbf
    qdiscs (``tc -s qdisc``), cumulative since :func:`shape`.
    """
    stats = {}
    for host in tb.hosts:
        out = json.loads(testbed.netns_exec(host, 'tc', '-s', '-j', 'qdisc',
                                            'show'))
        stats[host.name] = {
            q['dev']: {key: q.get(key, 0)
                       for key in ('drops', 'overlimits', 'packets')}
            for q in out if q['kind'] == 'tbf'}
    return stats


def delta(before, after):
    """What tbf counted between two :func:`qdisc_stats`."""
    return {host: {ifname: {key: value - before[host][ifname][key]
                            for key, value in counters.items()}
                   for ifname, counters in links.items()}
            for host, links in after.items()}


def congestion_control(tb, name=None):
    """Set (if ``name``) and return the hosts' TCP congestion control."""
    key = 'net.ipv4.tcp_congestion_control'
    for host in tb.hosts:
        if name:
            # A namespace other than the machine's may only pick one of
            # net.ipv4.tcp_allowed_congestion_control.
            testbed.netns_exec(host, 'sysctl', '-q', '-w',
                               '%s=%s' % (key, name))
    return sorted({testbed.netns_exec(h, 'sysctl', '-n', key).strip()
                   for h in tb.hosts})
