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

"""Steps of a nova live migration, for code that drives the driver alone.

The rolling-upgrade peers (``nova_peer.py``) and the control-path benchmark
call ``LibvirtDriver`` methods without nova's compute manager; these are
the parts of the migration they play instead of it. Imports nothing of the
plugin: stock peers use it too.
"""

# The instance that migrates.
INSTANCE_UUID = '6d6d5e3a-4ba4-4c65-8b8f-64dc2b3f4d8c'

# What check_can_live_migrate_destination of a libvirt destination with
# nova's default configuration writes into the live migration data.
DESTINATION_CHECKS = dict(
    filename='tmp-shared-check', image_type='qcow2',
    block_migration=False, disk_over_commit=False,
    disk_available_mb=409600,
    graphics_listen_addr_vnc='127.0.0.1',
    graphics_listen_addr_spice='127.0.0.1',
    serial_listen_addr=None,
    dst_wants_file_backed_memory=False,
    file_backed_memory_discard=False,
    dst_supports_numa_live_migration=True,
    dst_supports_mdev_live_migration=True,
    dst_cpu_shared_set_info=set())

# What check_can_live_migrate_source adds, for an instance on shared
# storage.
SOURCE_CHECKS = dict(
    is_shared_instance_path=True, is_shared_block_storage=True,
    is_volume_backed=False, instance_relative_path=INSTANCE_UUID,
    src_supports_numa_live_migration=True)


def libvirt_uris(driver, dest, migrate_data):
    """``(dconnuri, migrate_uri)`` as ``_live_migration_operation`` derives
    them (non-tunnelled), with nova's own URI builders.
    """
    migrate_uri = None
    if ('target_connect_addr' in migrate_data and
            migrate_data.target_connect_addr is not None):
        dest = migrate_data.target_connect_addr
        migrate_uri = driver._migrate_uri(dest)
    return driver._live_migration_uri(dest), migrate_uri
