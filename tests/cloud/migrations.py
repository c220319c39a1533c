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

"""When nova is done with a live migration, as its API says.

Polled through openstacksdk, as a client sees it: the server has no task
state and is on the destination, or in ERROR, or its latest migration
record is over. The source marks the record completed last, after the
server is already on the destination.
"""

import time

from tests.cloud.services import base

# A migration record's statuses once nova is done with it.
DONE = ('completed', 'failed', 'error', 'cancelled')


def records(conn, server, done_only=False):
    """The server's migration records, oldest first; with ``done_only``,
    only if the latest is over.
    """
    # openstacksdk's Migration.id is the record's uuid; created_at (ISO
    # 8601, to the second) orders them, the API's own order breaks ties.
    found = sorted(conn.compute.migrations(instance_uuid=server.id),
                   key=lambda m: m.created_at)
    if done_only and not (found and found[-1].status in DONE):
        return []
    return found


def last_record(conn, server, timeout=60, interval=1):
    """The server's latest migration record, once it is over (the source
    marks it completed last, after the server is already on the
    destination).

    :raises TimeoutError: it is not over after ``timeout`` seconds.
    """
    return base.wait_for(
        'migration record of %s over' % server.id,
        lambda: (records(conn, server, done_only=True) or [None])[-1],
        timeout, interval=interval)


def is_over(conn, server, destination):
    """``server`` as nova's API has it now, if its migration to
    ``destination`` is over; else None.
    """
    server = conn.compute.get_server(server)
    if server.task_state is None and (
            server.compute_host == destination.name
            or server.status == 'ERROR'
            or records(conn, server, done_only=True)):
        return server
    return None


def wait_over(conn, servers, destination, timeout, interval=0.5):
    """``{server id: (time.time() seen over, server)}`` once the migration
    of each of ``servers`` to ``destination`` is over.

    :raises TimeoutError: some are not over after ``timeout`` seconds;
        its ``servers`` attribute has them as last seen.
    """
    done, last = {}, {s.id: s for s in servers}
    deadline = time.monotonic() + timeout
    while True:
        for server in servers:
            if server.id not in done:
                over = is_over(conn, server, destination)
                if over is not None:
                    done[server.id] = (time.time(), over)
        if len(done) == len(servers):
            return done
        if time.monotonic() > deadline:
            error = TimeoutError('migrations not over after %d s: %s' % (
                timeout, sorted(set(last) - set(done))))
            error.servers = [conn.compute.get_server(last[i])
                             for i in sorted(set(last) - set(done))]
            raise error
        time.sleep(interval)
