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

"""The per-test watchdog, through a real stestr run of a stuck test."""

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

import fixtures
import testtools

import tests
from tests import watchdog

REPO = os.path.dirname(os.path.dirname(os.path.abspath(tests.__file__)))
BOUND = 5

INIT = '''
from tests import watchdog

load_tests = watchdog.load_tests(__name__)
'''

EVENTLET_CASE = '''
import eventlet
eventlet.monkey_patch()

import eventlet.event
import unittest


def parked_in_a_greenthread(event):
    event.wait()


class Stuck(unittest.TestCase):
    def test_passes_first(self):
        pass

    def test_waits_forever(self):
        never = eventlet.event.Event()
        eventlet.spawn(parked_in_a_greenthread, never)
        # The main greenlet parks too: the hub sits in do_poll.
        eventlet.event.Event().wait()
'''

NATIVE_CASE = '''
import threading
import unittest


def parked_in_a_thread(event):
    event.wait()


class Stuck(unittest.TestCase):
    def test_passes_first(self):
        pass

    def test_waits_forever(self):
        never = threading.Event()
        threading.Thread(target=parked_in_a_thread, args=(never,),
                         daemon=True).start()
        never.wait()
'''


class TestWatchdogFailsAStuckTest(testtools.TestCase):
    """A stuck test fails, named and with its stacks, within its bound."""

    def run_stuck(self, case, native=False):
        tmp = self.useFixture(fixtures.TempDir()).path
        reports = os.path.join(tmp, 'reports')
        os.mkdir(reports)
        os.mkdir(os.path.join(tmp, 'stuck'))
        with open(os.path.join(tmp, 'stuck', '__init__.py'), 'w') as f:
            f.write(INIT)
        with open(os.path.join(tmp, 'stuck', 'test_stuck.py'), 'w') as f:
            f.write(textwrap.dedent(case))
        with open(os.path.join(tmp, '.stestr.conf'), 'w') as f:
            f.write('[DEFAULT]\ntest_path=./stuck\ntop_dir=./\n')
        env = dict(os.environ, PYTHONPATH=os.pathsep.join((tmp, REPO)))
        env[watchdog.TIMEOUT_VAR] = str(BOUND)
        env[watchdog.DIR_VAR] = reports
        for name in ('OS_TEST_TIMEOUT', 'OS_NOVA_DISABLE_EVENTLET_PATCHING'):
            env.pop(name, None)
        if native:
            # As nova's own tests select native threading.
            env['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = '1'
        stestr = [sys.executable, '-m', 'stestr']
        start = time.monotonic()
        run = subprocess.run(stestr + ['run', '--concurrency', '1'],
                             cwd=tmp, env=env, capture_output=True,
                             timeout=BOUND + 120)
        took = time.monotonic() - start
        last = subprocess.run(stestr + ['last', '--subunit'], cwd=tmp,
                              env=env, capture_output=True, check=True)
        files = os.listdir(reports)
        with open(os.path.join(reports, files[0])) as f:
            report = f.read()
        return run, took, last.stdout, report

    def assert_failed_with_stacks(self, run, took, stream, report,
                                  stuck_frame):
        output = run.stdout.decode() + run.stderr.decode()
        test_id = 'stuck.test_stuck.Stuck.test_waits_forever'
        self.assertNotEqual(0, run.returncode, output)
        self.assertLess(took, BOUND + 60)
        # stestr's own line for a failed test.
        self.assertRegex(output,
                         re.escape(test_id) + r' \[[0-9.]+s\] \.\.\. FAILED')
        self.assertIn('still running after %ss' % float(BOUND), output)
        self.assertIn(stuck_frame, output)
        self.assertIn('test_waits_forever', report)
        self.assertIn(stuck_frame, report)
        # The run records the stuck test as failed and the other as passed.
        statuses = _statuses(stream)
        self.assertEqual('fail', statuses[test_id])
        self.assertEqual(
            'success', statuses['stuck.test_stuck.Stuck.test_passes_first'])

    def test_eventlet_hub_stuck_in_poll_fails_named_with_greenlet_stacks(self):
        run, took, stream, report = self.run_stuck(EVENTLET_CASE)
        self.assert_failed_with_stacks(run, took, stream, report,
                                       'in parked_in_a_greenthread')
        self.assertIn('--- greenlets ---', report)
        # The main thread: eventlet's hub, waiting on its poll.
        self.assertRegex(report, r'eventlet/hubs/\w+\.py", line \d+ in wait')

    def test_native_thread_wait_fails_named_with_thread_stacks(self):
        run, took, stream, report = self.run_stuck(NATIVE_CASE, native=True)
        self.assert_failed_with_stacks(run, took, stream, report,
                                       'in parked_in_a_thread')
        self.assertIn('Current thread', report)


def _statuses(stream):
    import io

    import subunit

    statuses = {}
    result = testtools.StreamToDict(
        lambda test: statuses.__setitem__(test['id'], test['status']))
    result.startTestRun()
    subunit.ByteStreamToStreamResult(io.BytesIO(stream)).run(result)
    result.stopTestRun()
    return statuses


class TestWatchdog(testtools.TestCase):

    def test_disarmed_test_never_fires(self):
        fired = []
        dog = watchdog.Watchdog(0.2, out=lambda *a: fired.append(a),
                                exit=fired.append)
        dog.arm('a.test')
        dog.disarm()
        time.sleep(0.5)
        self.assertEqual([], fired)
        self.assertIsNone(dog.current_test)

    def test_fires_once_for_the_armed_test(self):
        fired = []
        self.useFixture(fixtures.EnvironmentVariable(
            watchdog.DIR_VAR, self.useFixture(fixtures.TempDir()).path))
        self.useFixture(fixtures.MonkeyPatch('sys.__stderr__',
                                             tempfile.TemporaryFile('w+')))
        dog = watchdog.Watchdog(0.2, out=lambda test_id, text: fired.append(
            (test_id, text)), exit=lambda status: fired.append(status))
        dog.arm('a.test')
        time.sleep(1)
        self.assertEqual(2, len(fired))
        self.assertEqual('a.test', fired[0][0])
        self.assertIn('--- threads ---', fired[0][1])
        self.assertEqual(watchdog.EXIT_STATUS, fired[1])
