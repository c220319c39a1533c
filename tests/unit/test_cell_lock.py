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

"""The drop-in tier's lock for nova's test database fixture."""

import threading
import time
from unittest import mock

import testtools

from tests.dropin import cell_lock

nova_fixtures = cell_lock.nova_fixtures
WAIT = 3 * cell_lock.GRACE


def nested_read_with_pending_writer(lock):
    """The drop-in hang's pattern: how long the nested reader waited.

    A reader holds the lock and waits for a second thread that needs a read
    lock too (``_run_periodics`` and nova 34's ``update_available_resource``),
    while a third thread waits for the write lock (the test polling the API).
    The holder gives up after WAIT seconds, so the stock lock's deadlock
    ends; None if the nested reader did not get in by then.
    """
    holding = threading.Event()
    nested_in = threading.Event()
    got_in = []

    def nested():
        with lock.read_lock():
            nested_in.set()

    def holder():
        with lock.read_lock():
            holding.set()
            deadline = time.monotonic() + WAIT
            while not lock.has_pending_writers:
                assert time.monotonic() < deadline, 'no writer came'
                time.sleep(0.01)
            start = time.monotonic()
            threading.Thread(target=nested).start()
            if nested_in.wait(WAIT):
                got_in.append(time.monotonic() - start)

    def writer():
        holding.wait(WAIT)
        with lock.write_lock():
            pass

    threads = [threading.Thread(target=holder),
               threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(3 * WAIT)
    return got_in[0] if got_in else None


class TestDeadlockFreeLock(testtools.TestCase):

    def test_stock_fixture_lock_blocks_a_nested_reader_behind_a_writer(self):
        # Why the drop-in replaces it: this is the deadlock.
        self.assertIsNone(nested_read_with_pending_writer(
            nova_fixtures.ReaderWriterLock()))

    def test_nested_reader_gets_in_after_its_grace_while_a_writer_waits(self):
        waited = nested_read_with_pending_writer(cell_lock.DeadlockFreeLock())

        self.assertIsNotNone(waited)
        # The writer keeps its turn for the grace period, as in the stock
        # lock.
        self.assertGreaterEqual(waited, cell_lock.GRACE)

    def test_writer_excludes_readers_while_it_holds_the_lock(self):
        lock = cell_lock.DeadlockFreeLock()
        read = threading.Event()

        def reader():
            with lock.read_lock():
                read.set()

        with lock.write_lock():
            threading.Thread(target=reader).start()
            self.assertFalse(read.wait(0.5))
        self.assertTrue(read.wait(WAIT))

    def test_interrupted_writer_does_not_stay_queued(self):
        lock = cell_lock.DeadlockFreeLock()
        release = threading.Event()
        holding = threading.Event()

        def reader():
            with lock.read_lock():
                holding.set()
                release.wait(WAIT)

        threading.Thread(target=reader).start()
        holding.wait(WAIT)
        # As the test timeout's exception interrupts a waiting writer.
        with mock.patch.object(lock._cond, 'wait',
                               side_effect=KeyboardInterrupt):
            self.assertRaises(KeyboardInterrupt, lock.acquire_write_lock)
        self.assertFalse(lock.has_pending_writers)
        release.set()
        with lock.write_lock():
            pass

    def test_drop_in_makes_nova_fixture_build_it(self):
        # Put nova's name back after the test.
        self.addCleanup(setattr, nova_fixtures, 'ReaderWriterLock',
                        nova_fixtures.ReaderWriterLock)
        cell_lock.use_in_nova_fixtures()
        self.assertIsInstance(nova_fixtures.CellDatabases()._cell_lock,
                              cell_lock.DeadlockFreeLock)
