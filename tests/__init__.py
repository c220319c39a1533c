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

"""nova-migration-net tests: unit, functional (nova in-process cloud)."""

# As in nova's own test packages: patch before anything imports nova.
from nova import monkey_patch ; monkey_patch.patch()  # noqa

import os  # noqa: E402

# The default run (.stestr.conf: test_path=./tests) is the unit and
# functional tiers. Other tiers have their own tox environment and are run
# with --test-path.
DEFAULT_TIERS = ('unit', 'functional')


def load_tests(loader, tests, pattern):
    here = os.path.dirname(__file__)
    for tier in DEFAULT_TIERS:
        tests.addTests(loader.discover(os.path.join(here, tier),
                                       pattern=pattern or 'test*.py',
                                       top_level_dir=os.path.dirname(here)))
    return tests
