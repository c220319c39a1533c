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

"""A per-test bound that holds even when the test process is stuck.

``OS_TEST_TIMEOUT`` (oslotest's SIGALRM) stays the gentle first line, but
it is only a signal handler: under eventlet it runs only when the hub gets
to run, and a test blocked in native code or in a stuck hub never sees it.

:class:`WatchedSuite` arms a watchdog when each test starts and disarms it
when the test stops. The watchdog is a real OS thread (in an eventlet
monkey-patched process, one made from eventlet's unpatched ``threading``)
so it runs whatever the test's threads and greenthreads are doing. When a
test outlives ``NOVA_MIGRATION_NET_TEST_TIMEOUT`` seconds (default
:data:`DEFAULT_TIMEOUT`) the watchdog

- writes the test id, every thread's stack (``faulthandler``) and every
  greenlet's stack to stderr and to a file in
  ``NOVA_MIGRATION_NET_WATCHDOG_DIR`` (default: the temporary directory),
- writes a subunit ``fail`` status for the test, with the stacks attached,
  onto the worker's subunit stream (stdout), so stestr reports the test by
  name as failed and shows the stacks,
- and ends the worker process: a stuck test cannot be unwound.

Every tier's package uses :func:`load_tests` (or wraps its suite in
:class:`WatchedSuite`), so one mechanism bounds every test.
"""

import datetime
import faulthandler
import gc
import io
import os
import sys
import tempfile
import traceback
import unittest

DEFAULT_TIMEOUT = 300
TIMEOUT_VAR = 'NOVA_MIGRATION_NET_TEST_TIMEOUT'
DIR_VAR = 'NOVA_MIGRATION_NET_WATCHDOG_DIR'
# Exit status of a worker the watchdog ended.
EXIT_STATUS = 3


def _native():
    """Unpatched ``threading`` and ``time``, in either concurrency mode."""
    # Never import eventlet here: in native threading mode nova poisons
    # its import.
    eventlet = sys.modules.get('eventlet')
    if eventlet is not None:
        from eventlet import patcher
        if patcher.is_monkey_patched('thread'):
            return patcher.original('threading'), patcher.original('time')
    import threading
    import time
    return threading, time


def timeout():
    """The per-test bound in seconds (0 or less: no watchdog)."""
    return float(os.environ.get(TIMEOUT_VAR) or DEFAULT_TIMEOUT)


def report_dir():
    return os.environ.get(DIR_VAR) or tempfile.gettempdir()


def greenlet_stacks():
    """The stack of every greenlet that has one, as text."""
    try:
        import greenlet
    except ImportError:
        return ''
    out = []
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            out.append('Greenlet %r:\n%s' % (
                obj, ''.join(traceback.format_stack(obj.gr_frame))))
    return '\n'.join(out)


def thread_stacks():
    """Every OS thread's stack, as ``faulthandler`` writes it."""
    with tempfile.TemporaryFile() as dump:
        faulthandler.dump_traceback(file=dump, all_threads=True)
        dump.seek(0)
        return dump.read().decode('utf-8', 'replace')


class Watchdog(object):
    """One real OS thread per process that bounds the running test."""

    def __init__(self, bound, out=None, exit=os._exit):
        threading, self._time = _native()
        self.bound = bound
        self._out = out
        self._exit = exit
        self._cond = threading.Condition(threading.Lock())
        self._test_id = None
        self._deadline = None
        thread = threading.Thread(target=self._watch, daemon=True,
                                  name='nova-migration-net-watchdog')
        thread.start()

    def arm(self, test_id):
        with self._cond:
            self._test_id = test_id
            self._deadline = self._time.monotonic() + self.bound
            self._cond.notify()

    def disarm(self):
        with self._cond:
            self._test_id = self._deadline = None
            self._cond.notify()

    @property
    def current_test(self):
        return self._test_id

    def _watch(self):
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - self._time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                test_id = self._test_id
                self._deadline = None
                break
        self._fire(test_id)

    def report(self, test_id):
        return ('nova-migration-net watchdog: %s still running after %ss '
                '(%s=%s), pid %d, %s\n\n--- threads ---\n%s\n'
                '--- greenlets ---\n%s\n'
                % (test_id, self.bound, TIMEOUT_VAR, self.bound, os.getpid(),
                   datetime.datetime.now().isoformat(), thread_stacks(),
                   greenlet_stacks()))

    def _fire(self, test_id):
        text = self.report(test_id)
        sys.__stderr__.write(text)
        sys.__stderr__.flush()
        path = os.path.join(report_dir(), 'watchdog-%d.txt' % os.getpid())
        try:
            with open(path, 'a') as f:
                f.write(text)
        except OSError as e:
            sys.__stderr__.write('watchdog: cannot write %s: %s\n' % (path, e))
        self._fail_on_stream(test_id, text, path)
        self._exit(EXIT_STATUS)

    def _fail_on_stream(self, test_id, text, path):
        """Write a subunit 'fail' for the test onto the worker's stdout."""
        out = self._out
        if out is None:
            try:
                import subunit
            except ImportError:
                return
            packet = io.BytesIO()
            stream = subunit.StreamResultToBytes(packet)
            stream.status(
                test_id=test_id, file_name='traceback',
                file_bytes=('Test still running after %ss; stacks also '
                            'in %s\n\n%s' % (self.bound, path, text)
                            ).encode('utf-8'),
                mime_type='text/plain;charset=utf8', eof=True)
            stream.status(test_id=test_id, test_status='fail',
                          timestamp=datetime.datetime.now(
                              datetime.timezone.utc))
            data = packet.getvalue()
            # fd 1 is the stream stestr reads; tests replace sys.stdout.
            while data:
                data = data[os.write(1, data):]
        else:
            out(test_id, text)


_watchdog = None


def watchdog():
    """This process's watchdog, started on first use; None if disabled."""
    global _watchdog
    if _watchdog is None and timeout() > 0:
        _watchdog = Watchdog(timeout())
    return _watchdog


def current_test():
    """The id of the test running in this process, if any."""
    return _watchdog.current_test if _watchdog is not None else None


class _ArmingResult(object):
    """Pass everything to ``result``; arm and disarm around each test."""

    def __init__(self, result, dog):
        object.__setattr__(self, '_result', result)
        object.__setattr__(self, '_dog', dog)

    def __getattr__(self, name):
        return getattr(self._result, name)

    def __setattr__(self, name, value):
        setattr(self._result, name, value)

    def startTest(self, test):
        self._dog.arm(test.id())
        self._result.startTest(test)

    def stopTest(self, test):
        try:
            self._result.stopTest(test)
        finally:
            self._dog.disarm()


class WatchedSuite(unittest.TestSuite):
    """A suite whose every test is bounded by this process's watchdog."""

    def run(self, result, debug=False):
        dog = watchdog()
        if dog is not None and not isinstance(result, _ArmingResult):
            result = _ArmingResult(result, dog)
        return super().run(result, debug)


def load_tests(package):
    """A ``load_tests`` for the package named ``package``: its tests, each
    bounded by the watchdog.
    """
    here = os.path.dirname(os.path.abspath(sys.modules[package].__file__))
    top = here
    for _ in package.split('.'):
        top = os.path.dirname(top)

    def load_tests(loader, tests, pattern):
        suite = WatchedSuite(tests)
        suite.addTests(loader.discover(here, pattern=pattern or 'test*.py',
                                       top_level_dir=top))
        return suite

    return load_tests
