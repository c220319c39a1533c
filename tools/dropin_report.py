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

A test that failed while nova's SQLite test database said "database is
locked" runs once more (:func:`retry_locked`), and only its second result
counts; the report names it. In threading mode nova's fixtures put each
cell's database in an SQLite file that several threads write at once (a
compute's rollback and the other compute's, say), and SQLite can refuse one
of two writers at once where MariaDB or MySQL would make it wait. That is a
race of nova's test fixture, not of nova or the plugin: a test that fails
for any other reason, or twice, still fails the tier.
"""

import collections
import io
import os
import subprocess
import sys
import tempfile

import subunit
import testtools

from tests import dropin


# What sqlite3 says when SQLite refuses a writer (SQLITE_BUSY).
LOCKED = 'sqlite3.OperationalError) database is locked'
TEST_PATH = './tests/dropin'


def last_run():
    """Per test id, its status and its details' text in the last stestr
    run; a test that ran twice (:func:`retry_locked`) by its last result.
    """
    stream = subprocess.run(['stestr', 'last', '--subunit'], check=True,
                            capture_output=True).stdout
    tests = {}
    result = testtools.StreamToDict(lambda test: tests.__setitem__(
        test['id'], (test['status'], '\n'.join(
            content.as_text() for content in test['details'].values()))))
    result.startTestRun()
    subunit.ByteStreamToStreamResult(io.BytesIO(stream)).run(result)
    result.stopTestRun()
    return tests


def retry_locked(tests, output=None):
    """Run once more, into the same stestr run, each failed test whose
    output has SQLite's "database is locked"; the ids run again. stestr's
    own output goes to ``output`` (a file or ``subprocess.DEVNULL``; None:
    this process's).
    """
    locked = sorted(test_id for test_id, (status, text) in tests.items()
                    if status == 'fail' and LOCKED in text)
    if not locked:
        return []
    with tempfile.NamedTemporaryFile('w', suffix='.txt') as load_list:
        load_list.write(''.join(test_id + '\n' for test_id in locked))
        load_list.flush()
        # Its own exit status is judged below, with the whole run's.
        subprocess.run(['stestr', '--test-path=' + TEST_PATH, 'run',
                        '--combine', '--load-list', load_list.name],
                       stdout=output, stderr=output)
    return locked


def mode():
    """The concurrency mode, as nova's tests select it."""
    if os.environ.get('OS_NOVA_DISABLE_EVENTLET_PATCHING', '').lower() in (
            '1', 'true', 'yes'):
        return 'threading'
    return 'eventlet'


def main():
    tests = last_run()
    retried = retry_locked(tests)
    if retried:
        tests = last_run()
    statuses = {test_id: status for test_id, (status, _text) in tests.items()}
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
    for test_id in retried:
        print('  ran again after nova\'s SQLite test database said '
              '"database is locked": %s: %s' % (test_id, statuses[test_id]))
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
