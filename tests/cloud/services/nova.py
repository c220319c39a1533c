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

"""nova's control plane: nova-api, nova-conductor, nova-scheduler.

They run on compute-a, from compute-a's nova venv, with compute-a's own
``nova.conf`` (an all-in-one controller, as devstack's first node): that
file also carries what :mod:`tests.cloud.services.compute` writes for the
compute, and the venv has the plugin whenever that compute runs it, so
these services start with the plugin's lines and the plugin installed.
nova-api runs under gunicorn; conductor and scheduler are their console
scripts. Each logs to ``<work dir>/logs/nova-<service>.log``.
"""

import os

from tests.cloud.services import base


def configure_common(cloud, path, host):
    """What every nova process on ``host`` reads from ``path``."""
    iniset = base.iniset
    iniset(path, 'DEFAULT', 'host', host.name)
    iniset(path, 'DEFAULT', 'my_ip', host.mgmt_ip)
    iniset(path, 'DEFAULT', 'debug', 'True')
    iniset(path, 'DEFAULT', 'transport_url', cloud.rabbitmq.transport_url)
    # nova 34 waits 180 s by default before a SIGTERM'd service exits.
    # nova-compute, idle, still takes over 5 s to stop its two RPC servers
    # here and is cut short by this timeout whatever it is: 2 s.
    iniset(path, 'DEFAULT', 'graceful_shutdown_timeout', '2')
    iniset(path, 'DEFAULT', 'report_interval', '2')
    # Versioned notifications on the cloud's RabbitMQ, nova's own and the
    # plugin's (nova sends none by default).
    iniset(path, 'notifications', 'notification_format', 'versioned')
    iniset(path, 'oslo_messaging_notifications', 'driver', 'messagingv2')
    # What an operator sets for a rolling upgrade: RPC to computes goes at
    # the oldest compute's version (nova 33 beside nova 34 in
    # tests/cloud/test_cross_release.py).
    iniset(path, 'upgrade_levels', 'compute', 'auto')
    for section in ('placement', 'neutron'):
        for option, value in cloud.keystone.auth_options('nova'):
            iniset(path, section, option, value)
    iniset(path, 'keystone_authtoken', 'www_authenticate_uri',
           cloud.keystone.url)
    for option, value in cloud.keystone.auth_options('nova'):
        iniset(path, 'keystone_authtoken', option, value)
    # The catalog's endpoints are https (tests/cloud/services/tls.py):
    # every keystoneauth session nova opens verifies them against the
    # cloud's CA. glance's serves the images a destination fetches; cinder
    # and keystone (nova-api's project checks) take the caller's token.
    for section in ('keystone_authtoken', 'placement', 'neutron', 'glance',
                    'cinder', 'keystone'):
        iniset(path, section, 'cafile', cloud.tls.ca_file)


class Nova(base.Service):
    """nova-api, nova-conductor and nova-scheduler on compute-a."""

    name = 'nova'
    port = 8774

    @property
    def url(self):
        return super().url + '/v2.1'

    @property
    def conf(self):
        return self.cloud.computes[self.cloud.controller.name].conf

    def bin(self, command):
        # compute-a's own venv, also while its nova-compute runs an older
        # nova's (tests/cloud/test_cross_release.py): controllers are
        # upgraded first.
        return super().bin(command,
                           self.cloud.venvs[self.cloud.controller.name])

    def configure(self):
        """The controller's options, in compute-a's ``nova.conf``."""
        os.makedirs(self.etc)
        c = self.conf
        mysql = self.cloud.mysql
        configure_common(self.cloud, c, self.cloud.controller)
        self.paste = self.copy_etc(
            'nova', 'api-paste.ini',
            venv=self.cloud.venvs[self.cloud.controller.name])
        base.iniset(c, 'wsgi', 'api_paste_config', self.paste)
        base.iniset(c, 'api_database', 'connection', mysql.url('nova_api'))
        base.iniset(c, 'database', 'connection', mysql.url('nova'))
        base.iniset(c, 'scheduler', 'discover_hosts_in_cells_interval', '2')
        base.iniset(c, 'scheduler', 'workers', '1')
        base.iniset(c, 'conductor', 'workers', '1')
        # nova-api is a WSGI application and has no --log-file: its log
        # file comes from a file of its own after nova.conf.
        self.api_conf = os.path.join(self.etc, 'nova-api.conf')
        base.iniset(self.api_conf, 'DEFAULT', 'log_file',
                    self.log('api'))
        # Its version documents' links and every resource's.
        self.behind_proxy(self.api_conf)

    def log(self, service):
        return os.path.join(self.cloud.log_dir, 'nova-%s.log' % service)

    def manage(self, *argv, **kwargs):
        """nova-manage with the controller's config."""
        return super().manage(self.bin('nova-manage'), '--config-file',
                              self.conf, *argv, **kwargs)

    def init(self):
        mysql = self.cloud.mysql
        self.manage('api_db', 'sync')
        self.manage('cell_v2', 'map_cell0', '--database_connection',
                    mysql.url('nova_cell0'))
        self.manage('cell_v2', 'create_cell', '--name', 'cell1',
                    '--database_connection', mysql.url('nova'),
                    '--transport-url', self.cloud.rabbitmq.transport_url)
        self.manage('db', 'sync')
        self.cloud.keystone.add_service('nova', 'compute', self.url)

    def start(self):
        controller = self.cloud.controller
        for service in ('conductor', 'scheduler'):
            self.spawn('nova-' + service, controller, [
                self.bin('nova-' + service), '--config-file', self.conf,
                '--log-file', self.log(service)])
        # nova-api reads OS_NOVA_CONFIG_FILES with the paste file first.
        self.gunicorn('nova-api', 'nova.wsgi.osapi_compute', env={
            'OS_NOVA_CONFIG_DIR': '/',
            'OS_NOVA_CONFIG_FILES': '%s;%s;%s' % (
                self.paste, self.conf, self.api_conf)})

    def logs(self):
        return [self.log(s) for s in ('api', 'conductor', 'scheduler')] + [
            d.output for d in self.daemons]
