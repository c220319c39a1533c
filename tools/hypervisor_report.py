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

"""Print the real-hypervisor tier's per-link byte table (markdown).

Run after ``stestr --test-path=./tests/hypervisor run``. As root, where the
tier must have run, a missing or short result file is an error, so a skip
cannot pass for a proof.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from tests.hypervisor import test_planes  # noqa: E402
from tests.hypervisor import testbed  # noqa: E402


def main():
    reason = testbed.why_unavailable()
    if os.geteuid() != 0:
        print('hypervisor tier skipped: %s' % reason)
        return 0
    results, missing = test_planes.read_results(
        test_planes.RESULTS,
        test_planes.test_names(test_planes.TestMigrationPlanes))
    if missing:
        print('error: no result for %s' % ', '.join(sorted(missing)),
              file=sys.stderr)
        return 1
    print('| case | libvirt connection | `migrate_uri` | `tls.destination` '
          '| outcome | management link | migration link |')
    print('|---|---|---|---|---|---|---|')
    for r in results:
        print('| %s | `%s` | %s | %s | %s | %s | %s |' % (
            test_planes.case_title(r), r['uri'],
            '`%s`' % r['migrate_uri'] if r['migrate_uri'] else '-',
            r['tls.destination'] or '-', r['outcome'],
            test_planes.bytes_cell(r['bytes'], testbed.MGMT_IF),
            test_planes.bytes_cell(r['bytes'], testbed.MIGR_IF)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
