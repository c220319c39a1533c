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

"""Glance with its file store: the noise guest's kernel and disk images.

The destination of a block migration fetches the image from here.
"""

import os

from tests.cloud.services import base


class Glance(base.Service):

    name = 'glance'
    port = 9292

    def configure(self):
        os.makedirs(self.etc)
        self.conf = os.path.join(self.etc, 'glance-api.conf')
        paste = self.copy_etc('glance', 'glance-api-paste.ini')
        c = self.conf
        base.iniset(c, 'DEFAULT', 'log_file', self.log_file)
        base.iniset(c, 'DEFAULT', 'enabled_backends', 'fs:file')
        base.iniset(c, 'database', 'connection',
                    self.cloud.mysql.url('glance'))
        base.iniset(c, 'glance_store', 'default_backend', 'fs')
        for section, sub in (('fs', 'images'),
                             ('os_glance_staging_store', 'staging'),
                             ('os_glance_tasks_store', 'tasks')):
            path = os.path.join(self.state, sub)
            os.makedirs(path)
            base.iniset(c, section, 'filesystem_store_datadir', path)
        base.iniset(c, 'paste_deploy', 'config_file', paste)
        base.iniset(c, 'paste_deploy', 'flavor', 'keystone')
        base.iniset(c, 'oslo_concurrency', 'lock_path',
                    os.path.join(self.state, 'lock'))
        self.authtoken(c)
        # Its version document's links.
        self.behind_proxy(c)

    def init(self):
        self.manage(self.bin('glance-manage'), '--config-file', self.conf,
                    'db', 'sync')
        self.cloud.keystone.add_service('glance', 'image', self.url)

    def start(self):
        self.gunicorn('glance', 'glance.wsgi.api',
                      env={'OS_GLANCE_CONFIG_DIR': self.etc})
