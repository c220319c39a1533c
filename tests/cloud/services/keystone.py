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

"""Keystone: identity, the service catalog, and real Fernet tokens.

Every API of the cloud checks its callers' tokens with this keystone
through keystonemiddleware; nova finds placement, glance and neutron in
its catalog. ``keystone-manage bootstrap`` makes the admin user, project
and role and keystone's own endpoint; :meth:`Keystone.add_service` then
gives each other service a user in the ``service`` project (roles admin
and service) and its endpoints, as devstack's ``create_service_user``
and ``get_or_create_endpoint`` do.
"""

import os
import threading

from tests.cloud.services import base

REGION = 'RegionOne'
ADMIN_PASSWORD = 'admin'
SERVICE_PASSWORD = 'service'
SERVICE_PROJECT = 'service'


class Keystone(base.Service):

    name = 'keystone'
    port = 5000

    def __init__(self, cloud):
        super().__init__(cloud)
        self._lock = threading.Lock()

    @property
    def url(self):
        return super().url + '/v3'

    def configure(self):
        os.makedirs(self.etc)
        self.conf = os.path.join(self.etc, 'keystone.conf')
        c = self.conf
        base.iniset(c, 'DEFAULT', 'log_file', self.log_file)
        base.iniset(c, 'database', 'connection',
                    self.cloud.mysql.url('keystone'))
        base.iniset(c, 'token', 'provider', 'fernet')
        base.iniset(c, 'fernet_tokens', 'key_repository',
                    os.path.join(self.state, 'fernet-keys'))
        base.iniset(c, 'credential', 'key_repository',
                    os.path.join(self.state, 'credential-keys'))

    def init(self):
        manage = [self.bin('keystone-manage'), '--config-file', self.conf]
        self.manage(*manage, 'db_sync')
        for keys in ('fernet_setup', 'credential_setup'):
            self.manage(*manage, keys, '--keystone-user', 'root',
                        '--keystone-group', 'root')
        self.manage(*manage, 'bootstrap',
                    '--bootstrap-password', ADMIN_PASSWORD,
                    '--bootstrap-admin-url', self.url,
                    '--bootstrap-internal-url', self.url,
                    '--bootstrap-public-url', self.url,
                    '--bootstrap-region-id', REGION)

    def start(self):
        self.gunicorn('keystone', 'keystone.wsgi.api',
                      env={'OS_KEYSTONE_CONFIG_FILES': self.conf})

    def auth_options(self, user):
        """keystoneauth's password options for service user ``user``."""
        return (('auth_type', 'password'), ('auth_url', self.url),
                ('username', user), ('password', SERVICE_PASSWORD),
                ('project_name', SERVICE_PROJECT),
                ('user_domain_name', 'Default'),
                ('project_domain_name', 'Default'),
                ('region_name', REGION))

    def add_service(self, user, service_type=None, url=None):
        """Service user ``user``; and, with ``service_type``, its entry
        in the catalog with ``url`` as public and internal endpoint.
        """
        # The cloud brings services up at once; one lock, so that only one
        # of them finds no service project and makes it.
        with self._lock:
            self._add_service(user, service_type, url)

    def _add_service(self, user, service_type, url):
        # A connection of its own: the admin one caches a catalog, which
        # lacks the services registered after its first token.
        identity = self.cloud.connect().identity
        project = (identity.find_project(SERVICE_PROJECT)
                   or identity.create_project(name=SERVICE_PROJECT,
                                              domain_id='default'))
        roles = [identity.find_role(name) or identity.create_role(name=name)
                 for name in ('admin', 'service')]
        account = identity.create_user(name=user,
                                       password=SERVICE_PASSWORD,
                                       domain_id='default')
        for role in roles:
            identity.assign_project_role_to_user(project, account, role)
        if service_type:
            service = identity.create_service(name=user, type=service_type)
            for interface in ('public', 'internal'):
                identity.create_endpoint(service_id=service.id,
                                         interface=interface, url=url,
                                         region_id=REGION)
