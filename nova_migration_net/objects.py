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

"""``LibvirtLiveMigrateData`` with the destination's migration IP.

The plugin's object keeps nova's object name and extends the installed nova's
``LibvirtLiveMigrateData`` with one nullable field, ``migration_ip``. Its
version is the stock version with a third part, ``<stock X.Y>.1`` (``1.14.1``
on nova 34):

* nova's ``NovaObjectSerializer`` reads an ``X.Y.Z`` version it does not know
  as ``X.Y`` without asking the conductor for a backport, so a process without
  the plugin reads the object as its own stock version and ignores the field;
* nova only ever bumps the minor part, so the label never collides with a
  future stock version, and it follows the installed nova by construction.

Only objects that carry a migration IP are of this class: a destination with
``my_live_migration_ip`` unset hands nova the stock class, stock version,
byte for byte.
"""

import netaddr
from nova.objects import base as nova_base
from nova.objects import fields
from nova.objects import migrate_data
from oslo_utils import versionutils
from oslo_versionedobjects import base as ovo_base

from nova_migration_net import addresses

StockLibvirtLiveMigrateData = migrate_data.LibvirtLiveMigrateData

# The plugin's own history, appended to the stock version as its third part.
# Plugin 1: Added migration_ip
PLUGIN_VERSION = 1


class MigrationIPAddress(fields.IPAddress):
    """An IP address that refuses anything but a usable address string.

    nova's ``IPAddress`` hands any value to ``netaddr.IPAddress``, which also
    turns integers into addresses. A peer's primitive must be the text form
    of one IPv4 or IPv6 address a source can connect to
    (:func:`addresses.parse`); anything else makes reading the object fail
    with a ``ValueError`` that quotes the value, before any URI is built.
    """

    def from_primitive(self, obj, attr, value):
        return addresses.parse(value, name=attr)

    def coerce(self, obj, attr, value):
        if isinstance(value, netaddr.IPAddress):
            value = str(value)
        return addresses.parse(value, name=attr)


class MigrationIPAddressField(fields.AutoTypedField):
    AUTO_TYPE = MigrationIPAddress()


@nova_base.NovaObjectRegistry.register_if(False)
class LibvirtLiveMigrateData(StockLibvirtLiveMigrateData):
    """Stock live migration data plus the destination's migration IP.

    Not registered on import: :func:`register` adds it to nova's object
    registry when the plugin is activated.
    """

    # Version <stock>.1: Added migration_ip
    VERSION = '%s.%d' % (StockLibvirtLiveMigrateData.VERSION, PLUGIN_VERSION)

    fields = dict(StockLibvirtLiveMigrateData.fields,
                  migration_ip=MigrationIPAddressField(nullable=True))

    @property
    def has_migration_ip(self):
        """Whether the destination advertised a migration plane address."""
        return 'migration_ip' in self and self.migration_ip is not None

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        if target < versionutils.convert_version_to_tuple(self.VERSION):
            primitive.pop('migration_ip', None)

    @classmethod
    def from_stock(cls, stock, migration_ip):
        """Copy a stock object into this class and set ``migration_ip``.

        Field values, set/unset state and changed fields carry over, so the
        copy serializes like the original plus one field. The values are
        the stock object's, already coerced by the same field definitions,
        so they are copied as stored, not set again field by field.
        """
        obj = cls()
        obj._context = stock._context
        for name in stock.fields:
            attr = nova_base.get_attrname(name)
            if hasattr(stock, attr):
                setattr(obj, attr, getattr(stock, attr))
        # Changes inside nested objects are found again on the copy, which
        # shares them; only the stock object's own set is copied.
        obj._changed_fields = set(stock._changed_fields)
        obj.migration_ip = migration_ip
        return obj


def migration_ip_of(migrate_data):
    """The migration IP a destination advertised, or None.

    Works on any live migration data: objects that passed through a process
    without the plugin are stock instances without the field.
    """
    if isinstance(migrate_data, LibvirtLiveMigrateData):
        if migrate_data.has_migration_ip:
            return migrate_data.migration_ip
    return None


def register():
    """Make the object known to nova's RPC deserializer. Idempotent.

    The class goes into the registry *behind* the stock class of the same
    name. An exact version match picks a class first, so ``1.14`` primitives
    stay stock and ``1.14.1`` ones become this class; any other version is
    resolved, and version manifests are built, from the stock class as on a
    host without the plugin. ``nova.objects.LibvirtLiveMigrateData`` keeps
    pointing to the stock class, so nova builds stock objects.
    """
    classes = ovo_base.VersionedObjectRegistry.obj_classes()[
        LibvirtLiveMigrateData.obj_name()]
    if LibvirtLiveMigrateData in classes:
        return
    classes.insert(classes.index(StockLibvirtLiveMigrateData) + 1,
                   LibvirtLiveMigrateData)


def unregister():
    """Undo :func:`register`. Idempotent."""
    classes = ovo_base.VersionedObjectRegistry.obj_classes()[
        LibvirtLiveMigrateData.obj_name()]
    if LibvirtLiveMigrateData in classes:
        classes.remove(LibvirtLiveMigrateData)
