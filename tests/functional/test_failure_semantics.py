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

"""When a live migration fails or is cut short: the plugin against nova.

The plugin may change nova's outcome only where nova's rollback surely left
the guest running, whole and alone, on the source: libvirt could not
connect to the migration IP at all. Each test here makes one migration with
the destination advertising its migration IP (the plane) and, where the
case allows, the same migration with the option unset (nova's own
handling), and compares what an operator sees: the server's status, host
and task state, the migration record, where the guest runs, and where
placement holds its resources.

nova's fake libvirt stands in for libvirtd; its migration here runs as a
real job does (:class:`RunningMigrationCloud`): nova's monitor sees it
running, runs force-complete and its timeout actions against it, and the
API's abort reaches ``abortJob``.
"""

import functools
import threading
import time

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt

from tests import fixtures as mn_fixtures
from tests.functional import cloud
from tests.functional import test_faults

IPV4 = test_faults.IPV4
PLANE_FAILED = 'Live migration to dest over the migration plane'
# Each a new libvirtError, as libvirt raises it.
# What a running migration fails with once it is aborted, as measured on
# the real cloud tier (libvirt 9.0, QEMU 7.2): QEMU closes the stream.
ABORTED = functools.partial(cloud.qemu_migration_error,
                            'Unable to write to socket: Broken pipe')
# A stream cut after QEMU had sent memory.
CONNECTION_RESET = functools.partial(
    cloud.qemu_migration_error,
    'Unable to write to socket: Connection reset by peer')
# Failures that have nothing to do with the network.
HOSTDEV = functools.partial(
    fakelibvirt.make_libvirtError, fakelibvirt.libvirtError,
    'Requested operation is not valid: domain has assigned non-USB host '
    'devices', error_code=fakelibvirt.VIR_ERR_OPERATION_INVALID,
    error_domain=fakelibvirt.VIR_FROM_QEMU)
CERTIFICATE = functools.partial(
    cloud.qemu_migration_error,
    'Certificate does not match the hostname 172.168.1.15')


class Job:
    """One running migration job of the fake libvirt, and how it ends."""

    def __init__(self, domain):
        self.domain = domain
        self.aborted = threading.Event()
        self.post_copy = threading.Event()
        # The libvirtError the job ends with when the test says so.
        self.failure = None
        self.end = threading.Event()

    def paused(self):
        return self.domain._state == fakelibvirt.VIR_DOMAIN_PAUSED


@mn_fixtures.requires_nova(
    34, "these tests pin nova 34's handling of a failed or cut-short "
    'migration (its _live_migration re-raises the operation\'s error after '
    'the monitor; nova 32 only logs it), as checked with nova 34.0.0')
class RunningMigrationCloud(test_faults.FaultCloud):
    """``migrateToURI3`` runs until something ends it, as libvirt's does.

    While it runs the guest's job is ``VIR_DOMAIN_JOB_UNBOUNDED``. It ends:

    - failed with libvirt's abort error once ``abortJob`` was called (the
      API's abort, the ``abort`` timeout action);
    - with ``job.failure`` once the test calls :meth:`fail_job`;
    - completed once nova paused the guest or switched to post-copy
      (force-complete), unless ``FAIL_AFTER_SWITCH`` names the error it
      then fails with (libvirt leaves the source paused then, which the
      fake's ``isActive()`` would count as gone: the guest stays running
      here);
    - completed when the test calls :meth:`complete_job`.

    A failed job leaves no job (``VIR_DOMAIN_JOB_NONE``) and the guest
    defined on the source, as libvirt does.
    """

    FAIL_AFTER_SWITCH = None

    def setUp(self):
        super().setUp()
        self.jobs = {}
        self.job_started = threading.Condition()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.abortJob', self._abort_job))
        # Missing from nova's fake libvirt.
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.migrateStartPostCopy',
            lambda domain, flags=0: self._start_post_copy(domain)))

    def _running_job(self, domain):
        job = self.jobs.get(domain.UUIDString())
        if job is None or job.end.is_set():
            raise fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError,
                'Requested operation is not valid: no job is active on the '
                'domain', error_code=fakelibvirt.VIR_ERR_OPERATION_INVALID,
                error_domain=fakelibvirt.VIR_FROM_QEMU)
        return job

    def _abort_job(self, domain):
        self._running_job(domain).aborted.set()

    def _start_post_copy(self, domain):
        self._running_job(domain).post_copy.set()

    def _migrate_to_uri3(self, domain, dconnuri, params, flags):
        uuid = domain.UUIDString()
        self.migrate_calls.append(cloud.MigrateCall(
            uuid, dconnuri, params, flags))
        cloud.raise_if_unreachable(dconnuri, params, self.unreachable)
        job = self.jobs[uuid] = Job(domain)
        domain._job_type = fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED
        while not job.end.wait(0.05):
            if job.aborted.is_set():
                job.failure = ABORTED()
                break
            if job.post_copy.is_set() or job.paused():
                if self.FAIL_AFTER_SWITCH:
                    job.failure = self.FAIL_AFTER_SWITCH()
                break
        job.end.set()
        if job.failure is not None:
            domain._job_type = fakelibvirt.VIR_DOMAIN_JOB_NONE
            raise job.failure
        self.dest.driver._host.get_connection().createXML(
            params['destination_xml'],
            'fake-createXML-doesnt-care-about-flags')
        domain.complete_job()

    def fail_job(self, server, error):
        job = self.wait_for_job(server)
        job.failure = error()
        job.end.set()

    def complete_job(self, server):
        self.wait_for_job(server).end.set()

    def wait_for_job(self, server, timeout=30):
        deadline = time.monotonic() + timeout
        while server['id'] not in self.jobs:
            self.assertLess(time.monotonic(), deadline,
                            'no migration job for %s' % server['id'])
            time.sleep(0.05)
        return self.jobs[server['id']]

    # Steps

    def boot(self):
        return self._create_server(host='src', networks='none')

    def start_on_plane(self, plane):
        """The destination advertises its migration IP, or not."""
        self.flags(my_live_migration_ip=IPV4 if plane else None)

    def migration_of(self, server):
        migrations = self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations']
        return migrations[-1]

    def wait_for_source_task_end(self, server, timeout=60):
        """Wait until the source's compute manager is done with the live
        migration of ``server`` (its own task record): its rollback and its
        error handling both come before that.
        """
        manager = self.src.manager
        deadline = time.monotonic() + timeout
        while any(t['name'] == 'live_migration' and
                  t['instance_uuid'] == server['id']
                  for t in list(manager._in_progress_tasks.values())):
            self.assertLess(time.monotonic(), deadline,
                            'live migration of %s still running on src'
                            % server['id'])
            time.sleep(0.1)

    def outcome(self, server, statuses):
        """What an operator sees once the migration ended in one of
        ``statuses``.
        """
        self.wait_for_source_task_end(server)
        migration = self._wait_for_migration_status(server, statuses)
        server = self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None})
        src = self.src.driver._host.get_connection()
        dest = self.dest.driver._host.get_connection()
        providers = {self._get_provider_uuid_by_host(h): h
                     for h in ('src', 'dest')}
        return {
            'status': server['status'],
            'host': server['OS-EXT-SRV-ATTR:host'],
            'migration': migration['status'],
            'guest on src': server['id'] in [
                d.UUIDString() for d in src._vms.values()],
            'guest on dest': server['id'] in [
                d.UUIDString() for d in dest._vms.values()],
            'allocations': sorted(
                providers[rp] for rp in
                self._get_allocations_by_server_uuid(server['id'])),
            'migration allocations': sorted(
                providers[rp] for rp in self.placement.get(
                    '/allocations/%s' % migration['uuid']
                ).body['allocations']),
        }

    def same_as_stock(self, act, statuses=('failed', 'error', 'cancelled')):
        """Start a migration over the plane and call ``act(server)``, then
        the same with the option unset; the first outcome. Both must be
        equal.
        """
        self.start_computes(dest_migration_ip=IPV4)
        outcomes = []
        for plane in (True, False):
            self.start_on_plane(plane)
            server = self.boot()
            self.start_live_migration(server)
            act(server)
            outcomes.append(self.outcome(server, list(statuses)))
        self.assertEqual(outcomes[1], outcomes[0])
        plane, stock = self.migrate_calls
        self.assertEqual('qemu+tcp://172.168.1.15/system', plane.dconnuri)
        self.assertEqual('qemu+tcp://dest/system', stock.dconnuri)
        return outcomes[0]

    def force_complete(self, server):
        self.wait_for_job(server)
        migration = self._wait_for_migration_status(server, ['running'])
        self.api.force_complete_migration(server['id'], migration['id'])

    def assertAbortHedged(self):
        """The plugin's line for the aborted migration on the plane cannot
        tell an abort from a broken link, and says so.
        """
        [line] = self.plane_error_lines()
        self.assertIn('failed on its connection to 172.168.1.15', line)
        self.assertIn('unless the migration was aborted, the migration '
                      'plane may be the cause', line)

    def plane_error_lines(self):
        return self.log_lines('nova_migration_net.hooks', PLANE_FAILED)


class TestConnectFailure(RunningMigrationCloud):
    """libvirt cannot connect to the migration IP: nothing was sent."""

    ROLLED_BACK = {'status': 'ACTIVE', 'host': 'src', 'migration': 'failed',
                   'guest on src': True, 'guest on dest': False,
                   'allocations': ['src'], 'migration allocations': []}

    def unreachable_plane(self, **libvirt_flags):
        """Migrate with the migration IP unreachable; the plugin's line."""
        self.start_computes(dest_migration_ip=IPV4, **libvirt_flags)
        self.unreachable.add(IPV4)
        server = self.boot()
        self.start_live_migration(server)
        self.assertEqual(self.ROLLED_BACK,
                         self.outcome(server, ['failed', 'error']))
        [line] = self.plane_error_lines()
        self.assertIn('No memory of the instance was sent', line)
        return line

    def test_unreachable_libvirtd_rolls_back_to_active_on_the_source(self):
        self.assertIn("libvirt could not connect to 172.168.1.15, the "
                      "destination's my_live_migration_ip (unable to connect "
                      "to server at '172.168.1.15:16509': No route to host)",
                      self.unreachable_plane())

    def test_native_tls_unreachable_stream_rolls_back_to_active(self):
        # libvirt's connection stays on the hostname; QEMU's stream to the
        # migration IP is what cannot connect.
        self.assertIn("(operation failed: job 'migration out' failed: Failed "
                      "to connect to '172.168.1.15:49152': No route to "
                      "host)", self.unreachable_plane(
                          live_migration_with_native_tls=True))


class TestNovaHandlingStands(RunningMigrationCloud):
    """Failures the plane did not surely cause, or after memory was sent:
    the same outcome as the option unset, nova's own, ERROR included.
    """

    def test_stream_cut_after_memory_was_sent_puts_the_server_in_error(self):
        outcome = self.same_as_stock(
            lambda server: self.fail_job(server, CONNECTION_RESET))
        self.assertEqual(('ERROR', 'src', 'error'), (
            outcome['status'], outcome['host'], outcome['migration']))
        [line] = self.plane_error_lines()
        self.assertIn('failed on its connection to 172.168.1.15', line)
        self.assertIn('the migration plane may be the cause', line)

    def test_non_network_error_is_left_to_nova(self):
        outcome = self.same_as_stock(
            lambda server: self.fail_job(server, HOSTDEV))
        self.assertEqual('ERROR', outcome['status'])
        self.assertEqual([], self.log_lines('nova_migration_net', 'failed'))

    def test_certificate_mismatch_is_left_to_nova(self):
        outcome = self.same_as_stock(
            lambda server: self.fail_job(server, CERTIFICATE))
        self.assertEqual('ERROR', outcome['status'])
        self.assertEqual([], self.log_lines('nova_migration_net', 'failed'))

    def test_operator_abort_is_left_to_nova(self):
        def abort(server):
            self.wait_for_job(server)
            migration = self._wait_for_migration_status(server, ['running'])
            self.api.api_delete('/servers/%s/migrations/%s' % (
                server['id'], migration['id']))

        outcome = self.same_as_stock(abort)
        # nova 34's own handling: _live_migration re-raises libvirt's abort
        # error after its rollback, and the compute manager sets ERROR.
        self.assertEqual(('ERROR', 'error'), (outcome['status'],
                                              outcome['migration']))
        self.assertEqual('src', outcome['host'])
        self.assertTrue(outcome['guest on src'])
        self.assertAbortHedged()

    def test_timeout_action_abort_is_left_to_nova(self):
        self.flags(live_migration_completion_timeout=1,
                   live_migration_timeout_action='abort', group='libvirt')
        outcome = self.same_as_stock(self.wait_for_job)
        self.assertEqual(('ERROR', 'error'), (outcome['status'],
                                              outcome['migration']))
        self.assertEqual('src', outcome['host'])
        self.assertTrue(outcome['guest on src'])
        self.assertAbortHedged()


class TestFailureAfterPostCopySwitch(RunningMigrationCloud):
    """After the switch the destination holds the guest's current memory:
    a failure then is never reported as a clean rollback.
    """

    FAIL_AFTER_SWITCH = CONNECTION_RESET

    def test_failure_after_post_copy_switch_puts_the_server_in_error(self):
        self.flags(live_migration_permit_post_copy=True, group='libvirt')
        outcome = self.same_as_stock(self.force_complete)
        self.assertEqual(('ERROR', 'error'), (outcome['status'],
                                              outcome['migration']))
        self.assertTrue(any('Switching to post-copy migration mode' in line
                            for line in self.stdlog.logger.output.splitlines()
                            ))
        [line] = self.plane_error_lines()
        self.assertIn('the migration plane may be the cause', line)


class TestCompletingOnThePlane(RunningMigrationCloud):
    """nova's ways to finish a migration that does not converge: the same
    outcome on the plane as with the option unset.
    """

    def completes_as_stock(self, finish):
        """:meth:`same_as_stock` for a migration that must complete."""
        outcome = self.same_as_stock(finish, ['completed', 'error', 'failed'])
        # nova's fake libvirt keeps the source's domain defined; libvirt
        # undefines it (VIR_MIGRATE_UNDEFINE_SOURCE).
        del outcome['guest on src']
        self.assertEqual(
            {'status': 'ACTIVE', 'host': 'dest', 'migration': 'completed',
             'guest on dest': True, 'allocations': ['dest'],
             'migration allocations': []}, outcome)
        plane = self.migrate_calls[0]
        self.assertEqual('tcp://172.168.1.15', plane.params['migrate_uri'])
        return plane

    def test_force_complete_pauses_the_guest(self):
        self.completes_as_stock(self.force_complete)
        self.assertEqual([], [line for line in self.log_lines(
            'Switching to post-copy')])

    def test_force_complete_switches_to_post_copy(self):
        self.flags(live_migration_permit_post_copy=True, group='libvirt')
        call = self.completes_as_stock(self.force_complete)
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_POSTCOPY)
        self.assertEqual(2, len(self.log_lines(
            'Switching to post-copy migration mode')))

    def test_timeout_action_force_complete(self):
        self.flags(live_migration_completion_timeout=1,
                   live_migration_timeout_action='force_complete',
                   group='libvirt')
        # Nothing but the timeout action ends these jobs.
        self.completes_as_stock(self.wait_for_job)
        self.assertTrue(self.log_lines('Live migration not completed after'))

    def test_auto_converge(self):
        self.flags(live_migration_permit_auto_converge=True, group='libvirt')
        call = self.completes_as_stock(self.complete_job)
        self.assertTrue(call.flags & fakelibvirt.VIR_MIGRATE_AUTO_CONVERGE)
