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

"""Report and check the drop-in tier's last stestr run.

Prints how many of nova's own live-migration tests ran and passed with the
plugin active, in which concurrency mode, and exits non-zero unless exactly
the expected selection ran, every test in it passed, and no worker recorded
a non-stock object on the wire (:func:`tests.dropin.wire_violations`). Run
after the tier's stestr runs (``tox -e dropin`` and ``tox -e
dropin-threading`` do both).
"""

import collections
import io
import os
import subprocess
import sys

import subunit
import testtools

from tests import dropin


def last_run():
    """Per test id, its status in the last stestr run."""
    stream = subprocess.run(['stestr', 'last', '--subunit'], check=True,
                            capture_output=True).stdout
    statuses = {}
    result = testtools.StreamToDict(lambda test: statuses.__setitem__(
        test['id'], test['status']))
    result.startTestRun()
    subunit.ByteStreamToStreamResult(io.BytesIO(stream)).run(result)
    result.stopTestRun()
    return statuses


def mode():
    """The concurrency mode, as nova's tests select it."""
    if os.environ.get('OS_NOVA_DISABLE_EVENTLET_PATCHING', '').lower() in (
            '1', 'true', 'yes'):
        return 'threading'
    return 'eventlet'


def main():
    statuses = last_run()
    nova_tests = {test_id: status for test_id, status in statuses.items()
                  if test_id.startswith('nova.')}
    by_status = collections.Counter(nova_tests.values())
    tiers = collections.Counter(test_id.split('.')[2]
                                for test_id, status in nova_tests.items()
                                if status == 'success')
    passed = by_status['success']
    print("nova's own %d live-migration tests pass with the plugin active "
          "in %s mode (%d unit, %d functional; expected %d)"
          % (passed, mode(), tiers['unit'], tiers['functional'],
             dropin.EXPECTED_TESTS))
    problems = {test_id: status for test_id, status in statuses.items()
                if status != 'success'}
    for test_id, status in sorted(problems.items()):
        print('  %s: %s' % (status, test_id))
    violations = dropin.wire_violations()
    for path, text in violations.items():
        print('  non-stock object on the wire with the option unset '
              '(%s):\n%s' % (path, text))
    if violations or problems or len(nova_tests) != dropin.EXPECTED_TESTS:
        print('FAILED: %d ran, %d passed, %d expected'
              % (len(nova_tests), passed, dropin.EXPECTED_TESTS))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
