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

"""The links between the cloud's hosts: their rate, and what tc counted.

This kernel has no ``netem``: a link is slowed by a token bucket filter
on the sender's egress (``tc qdisc replace ... tbf``). Its queue is the
sending host's own qdisc, so TCP small queues and the hosts' congestion
control decide how full it gets; a real switch buffering for several
senders can be worse. The fault tests and the concurrent-migrations
benchmark shape links with :func:`shape`.
"""

import json

from tests.hypervisor import testbed

# A tail-drop queue of about 1.25 MB at 200 Mbit/s, as a switch port has.
BURST = '32kbit'
LATENCY = '50ms'


def shape(host, link, rate, burst=BURST, latency=LATENCY):
    """What ``host`` sends on ``link`` at no more than ``rate`` (tc's
    units: ``'40mbit'``); the function that takes the limit off.
    """
    testbed.netns_exec(host, 'tc', 'qdisc', 'replace', 'dev', link, 'root',
                       'tbf', 'rate', rate, 'burst', burst, 'latency',
                       latency)
    return lambda: testbed.netns_exec(host, 'tc', 'qdisc', 'del', 'dev',
                                      link, 'root')


def mbit(rate):
    """tc's spelling of ``rate`` Mbit/s."""
    return '%gmbit' % rate


def tbf_counters(hosts):
    """``{host name: {link: {drops, overlimits, packets}}}`` of the tbf
    qdiscs (``tc -s qdisc``), cumulative since each was set.
    """
    stats = {}
    for host in hosts:
        out = json.loads(testbed.netns_exec(host, 'tc', '-s', '-j', 'qdisc',
                                            'show'))
        stats[host.name] = {
            q['dev']: {key: q.get(key, 0)
                       for key in ('drops', 'overlimits', 'packets')}
            for q in out if q['kind'] == 'tbf'}
    return stats


def counted_between(before, after):
    """What tbf counted between two :func:`tbf_counters`."""
    return {host: {link: {key: value - before[host][link][key]
                          for key, value in counters.items()}
                   for link, counters in links.items()}
            for host, links in after.items()}


def congestion_control(hosts, name=None):
    """Set (if ``name``) and return the hosts' TCP congestion control.

    A namespace other than the machine's may only pick one of
    ``net.ipv4.tcp_allowed_congestion_control``.
    """
    key = 'net.ipv4.tcp_congestion_control'
    if name:
        for host in hosts:
            testbed.netns_exec(host, 'sysctl', '-q', '-w',
                               '%s=%s' % (key, name))
    return sorted({testbed.netns_exec(h, 'sysctl', '-n', key).strip()
                   for h in hosts})
