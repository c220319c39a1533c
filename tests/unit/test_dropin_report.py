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

"""The drop-in tier's report runs again only what SQLite refused.

A nova test that failed because nova's SQLite test database said "database
is locked" gets one more run, whose result counts; any other failure, and
a second "locked", still fail the tier. Checked on a real stestr
repository of four small tests, as the tier's report reads its own.
"""

import os
import sqlite3
import subprocess
import sys
import textwrap

import fixtures
import sqlalchemy
import testtools

from tools import dropin_report

TESTS = textwrap.dedent('''
    import os
    import unittest

    LOCKED = '(sqlite3.OperationalError) database is locked'


    def _first_time(name):
        marker = os.path.join(os.environ['MARKERS'], name)
        if os.path.exists(marker):
            return False
        open(marker, 'w').close()
        return True


    class T(unittest.TestCase):
        def test_locked_once(self):
            if _first_time('once'):
                self.fail(LOCKED)

        def test_locked_always(self):
            self.fail(LOCKED)

        def test_other_failure_once(self):
            if _first_time('other'):
                self.fail('AssertionError: 1 != 2')

        def test_passes(self):
            pass
''')


class TestRetryLocked(testtools.TestCase):

    def setUp(self):
        super().setUp()
        work = self.useFixture(fixtures.TempDir()).path
        markers = os.path.join(work, 'sample', 'markers')
        os.makedirs(markers)
        for name, text in (('__init__.py', ''), ('test_sample.py', TESTS)):
            with open(os.path.join(work, 'sample', name), 'w') as f:
                f.write(text)
        with open(os.path.join(work, '.stestr.conf'), 'w') as f:
            f.write('[DEFAULT]\ntest_path=./sample\ntop_dir=./\n')
        # stestr from this virtualenv, as tox runs the report.
        path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get(
            'PATH', '')
        self.useFixture(fixtures.EnvironmentVariable('PATH', path))
        self.useFixture(fixtures.EnvironmentVariable('MARKERS', markers))
        self.useFixture(fixtures.MonkeyPatch(
            'tools.dropin_report.TEST_PATH', './sample'))
        old = os.getcwd()
        os.chdir(work)
        self.addCleanup(os.chdir, old)
        subprocess.run(['stestr', 'run'], check=False, capture_output=True)

    def test_only_the_locked_failures_run_again_and_count(self):
        # Not on this worker's stdout: that is stestr's subunit stream.
        retried = dropin_report.retry_locked(dropin_report.last_run(),
                                             output=subprocess.DEVNULL)
        self.assertEqual(['test_locked_always', 'test_locked_once'],
                         [test_id.rsplit('.', 1)[1] for test_id in retried])
        self.assertEqual(
            {'test_locked_once': 'success', 'test_locked_always': 'fail',
             'test_other_failure_once': 'fail', 'test_passes': 'success'},
            {test_id.rsplit('.', 1)[1]: status
             for test_id, (status, _text) in dropin_report.last_run().items()})


class TestLockedText(testtools.TestCase):

    def test_the_text_is_what_sqlalchemy_says_when_sqlite_refuses(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'db')
        holder = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute('CREATE TABLE t (x INTEGER)')
        holder.execute('BEGIN IMMEDIATE')
        engine = sqlalchemy.create_engine(
            'sqlite:///%s' % path, connect_args={'timeout': 0})
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            err = self.assertRaises(
                sqlalchemy.exc.OperationalError, conn.execute,
                sqlalchemy.text('INSERT INTO t VALUES (1)'))
        self.assertIn(dropin_report.LOCKED, str(err))
