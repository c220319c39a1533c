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

"""MariaDB on the controller, for every service's database.

Debian's ``mariadbd`` with a data directory of its own under the work
directory, listening on 127.0.0.1 in compute-a's network namespace only.
neutron needs it: its migrations fail on SQLite.
"""

import os

from tests.cloud.services import base

DATABASES = ('keystone', 'nova_api', 'nova_cell0', 'nova', 'placement',
             'glance', 'neutron')
USER = PASSWORD = 'os'


class MySQL(base.Service):

    name = 'mysql'

    def configure(self):
        self.data = os.path.join(self.state, 'data')
        self.socket = os.path.join(self.state, 'mysqld.sock')
        os.makedirs(self.data)

    def init(self):
        base.run(['mariadb-install-db', '--no-defaults',
                  '--datadir=' + self.data, '--user=root',
                  '--auth-root-authentication-method=normal',
                  '--skip-test-db'])

    def start(self):
        self.daemon = self.spawn('mysqld', self.cloud.controller, [
            '/usr/sbin/mariadbd', '--no-defaults', '--datadir=' + self.data,
            '--socket=' + self.socket,
            '--pid-file=' + os.path.join(self.state, 'mysqld.pid'),
            '--bind-address=127.0.0.1', '--port=3306', '--user=root',
            '--skip-name-resolve', '--innodb-buffer-pool-size=128M',
            '--max-connections=500',
            '--log-error=' + os.path.join(self.cloud.log_dir, 'mysqld.log')])
        base.wait_for('mariadb', lambda: self.daemon.check_alive()
                      and self.sql('SELECT 1'))
        self.sql(''.join('CREATE DATABASE %s; ' % db for db in DATABASES)
                 + "CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'; "
                   "GRANT ALL PRIVILEGES ON *.* TO '%s'@'127.0.0.1';"
                 % (USER, PASSWORD, USER))

    def sql(self, statements):
        return base.run(['mariadb', '--no-defaults', '-S', self.socket,
                         '-uroot', '-e', statements], timeout=30)

    def url(self, database):
        """An SQLAlchemy URL of ``database`` for the services."""
        return 'mysql+pymysql://%s:%s@127.0.0.1/%s' % (USER, PASSWORD,
                                                       database)

    def logs(self):
        return [os.path.join(self.cloud.log_dir, 'mysqld.log')]
