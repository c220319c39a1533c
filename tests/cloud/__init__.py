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

"""Real-cloud tier: a two-node OpenStack of real services.

Keystone, placement, glance, neutron-server and nova's API, conductor and
scheduler run on compute-a beside its nova-compute, as devstack multinode
lays out a controller; compute-b runs a nova-compute. Every service is its
own process inside the hypervisor testbed's host namespaces, on real
MariaDB and RabbitMQ, and tests drive it through the API with openstacksdk.

Not part of the default run; ``tox -e cloud`` runs it, as root. The run
order lives in :mod:`tests.cloud.cloud`; each service's setup, in devstack
``lib/`` shape, lives in its own module of :mod:`tests.cloud.services`.
"""

from tests import watchdog

load_tests = watchdog.load_tests(__name__)
