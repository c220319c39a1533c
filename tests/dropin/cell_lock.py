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

"""A lock for nova's test database fixture that cannot deadlock its tests.

nova's ``CellDatabases`` fixture guards its "current cell" with a
writer-preferring readers-writer lock (fasteners): once a writer waits, no
new reader gets in. ``nova.test.TestCase._run_periodics`` holds a read lock
(``target_cell``) while it calls the compute manager's
``update_available_resource``, which in nova 34 runs the per-node work in
another thread of the ``UPDATE_RESOURCES`` pool and waits for it; that
thread needs a read lock for every database access. Several of nova's
live-migration tests run ``_run_periodics`` inside their ``migrateToURI3``
stub, in the compute's live-migration thread, while the test's main thread
polls the API, which takes the write lock to target the cell. If the main
thread asks for the write lock in that window, the three wait for each
other for ever: the writer for the reader, the reader for its pool thread,
the pool thread for the writer. The test's timeout then fires in the main
thread while it waits for the write lock, fasteners leaves it queued as a
pending writer, and the test's cleanup waits for the live-migration thread
(the watchdog's stacks of
``NUMALiveMigrationPositiveTests.test_bug_1843639``: main thread in
``_cleanup_executors``, the live-migration thread in ``_migrate_stub`` ->
``_run_periodics`` -> ``update_available_resource`` -> ``result()``, the
pool thread in ``_wrap_get_context_manager`` -> ``read_lock``).

:class:`DeadlockFreeLock` keeps the stock lock's order (a waiting writer
goes before new readers) except where that order can deadlock: a reader
that has waited :data:`GRACE` seconds behind a pending writer while other
readers hold the lock gets in, since one of those readers may be waiting
for it. It also takes a writer whose wait was interrupted off the queue. A
writer still excludes every reader while it holds the lock, which is all
the fixture relies on.
"""

import importlib
import time

# The module, not the package's name "nova" that its star import rebinds.
nova_fixtures = importlib.import_module('nova.tests.fixtures.nova')


# Seconds a reader waits behind a pending writer, while other readers hold
# the lock, before it goes in.
GRACE = 1.0


class DeadlockFreeLock(nova_fixtures.ReaderWriterLock):
    """nova's fixture lock, without its nested-reader deadlock."""

    def _acquire_read_lock(self, me):
        deadline = None
        with self._cond:
            while True:
                if self._writer is None or self._writer == me:
                    if (me in self._readers or self._writer == me or
                            not self._pending_writers):
                        break
                    if self._readers:
                        now = time.monotonic()
                        if deadline is None:
                            deadline = now + GRACE
                        if now >= deadline:
                            break
                        self._cond.wait(deadline - now)
                        continue
                self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1

    def _acquire_write_lock(self, me):
        try:
            super()._acquire_write_lock(me)
        except BaseException:
            with self._cond:
                if me in self._pending_writers:
                    self._pending_writers.remove(me)
                self._cond.notify_all()
            raise


def use_in_nova_fixtures():
    """Make nova's ``CellDatabases`` fixture build this lock."""
    nova_fixtures.ReaderWriterLock = DeadlockFreeLock
