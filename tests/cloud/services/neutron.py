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

"""neutron-server with ML2 and no agents.

Servers boot with ``networks: none``, so no port is ever bound; a live
migration still asks neutron for its extensions, the server's ports and
networks, and this server answers them. Its migrations need MariaDB.
"""

import os

from tests.cloud.services import base


class Neutron(base.Service):

    name = 'neutron'
    port = 9696

    def configure(self):
        os.makedirs(os.path.join(self.etc, 'plugins', 'ml2'))
        self.conf = os.path.join(self.etc, 'neutron.conf')
        self.ml2_conf = os.path.join(self.etc, 'plugins', 'ml2',
                                     'ml2_conf.ini')
        paste = self.copy_etc('neutron', 'api-paste.ini')
        c = self.conf
        base.iniset(c, 'DEFAULT', 'log_file', self.log_file)
        base.iniset(c, 'DEFAULT', 'core_plugin', 'ml2')
        base.iniset(c, 'DEFAULT', 'service_plugins', '')
        base.iniset(c, 'DEFAULT', 'api_paste_config', paste)
        base.iniset(c, 'DEFAULT', 'transport_url',
                    self.cloud.rabbitmq.transport_url)
        base.iniset(c, 'DEFAULT', 'notify_nova_on_port_status_changes',
                    'False')
        base.iniset(c, 'DEFAULT', 'notify_nova_on_port_data_changes',
                    'False')
        base.iniset(c, 'DEFAULT', 'state_path', self.state)
        base.iniset(c, 'database', 'connection',
                    self.cloud.mysql.url('neutron'))
        base.iniset(c, 'oslo_concurrency', 'lock_path',
                    os.path.join(self.state, 'lock'))
        self.authtoken(c)
        # Its version document's links and every resource's.
        self.behind_proxy(c)
        m = self.ml2_conf
        base.iniset(m, 'ml2', 'type_drivers', 'flat,vlan')
        base.iniset(m, 'ml2', 'tenant_network_types', '')
        base.iniset(m, 'ml2', 'mechanism_drivers', '')
        base.iniset(m, 'ml2', 'extension_drivers', '')
        base.iniset(m, 'ml2_type_flat', 'flat_networks', '*')

    def init(self):
        self.manage(self.bin('neutron-db-manage'), '--config-file',
                    self.conf, '--config-file', self.ml2_conf, 'upgrade',
                    'heads')
        self.cloud.keystone.add_service('neutron', 'network', self.url)

    def start(self):
        self.gunicorn('neutron', 'neutron.wsgi.api', env={
            'OS_NEUTRON_CONFIG_DIR': self.etc,
            'OS_NEUTRON_CONFIG_FILES': 'neutron.conf;plugins/ml2/'
                                       'ml2_conf.ini'})
