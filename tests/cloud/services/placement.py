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

"""Placement: the resource providers nova's scheduler picks hosts from."""

import os

from tests.cloud.services import base


class Placement(base.Service):

    name = 'placement'
    port = 8778

    def configure(self):
        os.makedirs(self.etc)
        self.conf = os.path.join(self.etc, 'placement.conf')
        c = self.conf
        base.iniset(c, 'DEFAULT', 'log_file', self.log_file)
        base.iniset(c, 'api', 'auth_strategy', 'keystone')
        base.iniset(c, 'placement_database', 'connection',
                    self.cloud.mysql.url('placement'))
        self.authtoken(c)

    def init(self):
        self.manage(self.bin('placement-manage'), '--config-file',
                    self.conf, 'db', 'sync')
        self.cloud.keystone.add_service('placement', 'placement', self.url)

    def start(self):
        self.gunicorn('placement', 'placement.wsgi.api',
                      env={'OS_PLACEMENT_CONFIG_DIR': self.etc})
