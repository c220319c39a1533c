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

"""RabbitMQ on the controller: nova's RPC between its services.

Debian's RabbitMQ 3.10 needs its whole environment spelled out to run
anywhere but as the system service: ``HOME`` (the Erlang cookie), the
``RABBITMQ_*`` paths, and ``ERL_EPMD_ADDRESS`` with the distribution
bound to loopback, so that ``epmd`` stays inside compute-a's namespace.
It listens on the management address for compute-b and on loopback.
"""

import os
import socket

from tests.cloud.services import base

PORT = 5672

RABBITMQ_CONF = """listeners.tcp.1 = {ip}:{port}
listeners.tcp.2 = 127.0.0.1:{port}
loopback_users = none
"""


class RabbitMQ(base.Service):

    name = 'rabbitmq'

    def configure(self):
        os.makedirs(os.path.join(self.state, 'mnesia'))
        os.makedirs(os.path.join(self.state, 'log'))
        with open(os.path.join(self.state, 'rabbitmq.conf'), 'w') as f:
            f.write(RABBITMQ_CONF.format(ip=self.cloud.controller_ip,
                                         port=PORT))
        with open(os.path.join(self.state, 'enabled_plugins'), 'w') as f:
            f.write('[].\n')

    def start(self):
        s = self.state
        self.daemon = self.spawn(
            'rabbitmq', self.cloud.controller,
            ['/usr/lib/rabbitmq/bin/rabbitmq-server'],
            env={'HOME': s, 'RABBITMQ_NODENAME': 'rabbit@localhost',
                 'RABBITMQ_MNESIA_BASE': os.path.join(s, 'mnesia'),
                 'RABBITMQ_LOG_BASE': os.path.join(s, 'log'),
                 'RABBITMQ_CONFIG_FILE': os.path.join(s, 'rabbitmq'),
                 'RABBITMQ_ENABLED_PLUGINS_FILE':
                     os.path.join(s, 'enabled_plugins'),
                 'RABBITMQ_PID_FILE': os.path.join(s, 'rabbit.pid'),
                 'ERL_EPMD_ADDRESS': '127.0.0.1',
                 'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS':
                     '-kernel inet_dist_use_interface {127,0,0,1}'})
        base.wait_for('rabbitmq', lambda: self.daemon.check_alive()
                      and self._listening())

    def _listening(self):
        """AMQP's greeting on the management address (this process is in
        compute-a's network namespace).
        """
        with socket.create_connection((self.cloud.controller_ip, PORT),
                                      timeout=5) as s:
            s.sendall(b'AMQP\x00\x00\x09\x01')
            return s.recv(8)

    @property
    def transport_url(self):
        return 'rabbit://guest:guest@%s:%d/' % (self.cloud.controller_ip,
                                                PORT)

    def logs(self):
        return [os.path.join(self.cloud.log_dir, 'rabbitmq.out')]
