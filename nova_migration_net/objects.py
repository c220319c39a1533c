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

"""``LibvirtLiveMigrateData`` with the destination's migration addresses.

The plugin's object keeps nova's object name and extends the installed nova's
``LibvirtLiveMigrateData`` with two nullable fields: ``migration_ip``, the
address a source streams to first, and ``migration_addresses``, every address
the destination advertises, in order (only set when there is more than one;
its first is ``migration_ip``). Its label on the wire is a stock version with
a third part, ``<stock X.Y>.1`` (``1.14.1`` on nova 34):

* nova's ``NovaObjectSerializer`` reads an ``X.Y.Z`` version it does not know
  as ``X.Y`` without asking the conductor for a backport, so a process without
  the plugin reads the object as its own stock version and ignores the fields;
* nova only ever bumps the minor part of this object, so the label never
  collides with a future stock version. A stock version that has a third
  part itself (a stable-branch backport) would make the label four parts,
  which nova cannot strip: :mod:`nova_migration_net.activation` refuses to
  activate on such a nova.

The label stays ``.1`` (:data:`WIRE_VERSION`) although the class is at
plugin version 2 (:data:`PLUGIN_VERSION`, the fingerprint's version): an
older plugin (version 1, field ``migration_ip`` only) finds its class for
``1.14.1`` by exact match and reads the fields it has, ignoring
``migration_addresses`` as oslo.versionedobjects ignores every key a class
does not declare. A label ``1.14.2`` would be neither an exact match nor
compatible with its ``1.14.1``; nova would strip it to stock ``1.14`` and the
older plugin would lose ``migration_ip`` and migrate on the hostname. So the
plugin's later versions may only add nullable fields whose absence means
what version 1 meant, and keep writing ``.1``.

The destination answers in the version the source spoke: the stock object
it got from the source, with the source's stock version, plus the fields
(``1.13.1`` to a source on a nova whose stock version is ``1.13``). So the
stock part is made compatible by nova's own code, as between stock hosts,
and no conductor backport is needed that stock nova would not need. Across
releases the reader must then know the labels of other stock versions:
:func:`register` adds one alias class per stock minor, so ``1.13.1`` is read
as this class, not as the stock class it is compatible with.

Only objects that carry a migration IP are of this class: a destination
that advertises no address hands nova the stock object, byte for byte; one
that advertises a single address hands it what plugin version 1 did.
"""

import netaddr
from nova.objects import base as nova_base
from nova.objects import fields
from nova.objects import migrate_data
from oslo_utils import versionutils
from oslo_versionedobjects import base as ovo_base

from nova_migration_net import addresses

StockLibvirtLiveMigrateData = migrate_data.LibvirtLiveMigrateData

# The plugin's own history, the third part of the class's version.
# Plugin 1: Added migration_ip
# Plugin 2: Added migration_addresses
PLUGIN_VERSION = 2
# The third part of every label the plugin writes: the one every plugin
# version reads (see the module's documentation).
WIRE_VERSION = 1
# The most addresses a destination may advertise; a longer list from a peer
# is refused.
MAX_ADDRESSES = 8


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


class MigrationIPAddressList(fields.List):
    """A non-empty list of distinct migration addresses.

    At most :data:`MAX_ADDRESSES` long: a peer's list is refused otherwise.
    """

    def __init__(self):
        super().__init__(MigrationIPAddress())

    def coerce(self, obj, attr, value):
        addrs = super().coerce(obj, attr, value)
        if not 0 < len(addrs) <= MAX_ADDRESSES:
            raise ValueError('%s must list 1 to %d addresses, not %d'
                             % (attr, MAX_ADDRESSES, len(addrs)))
        if len(set(addrs)) != len(addrs):
            raise ValueError('%s lists an address twice' % attr)
        return addrs

    def from_primitive(self, obj, attr, value):
        if not isinstance(value, list):
            raise ValueError('%s must be a list, not %s'
                             % (attr, type(value).__name__))
        return self.coerce(obj, attr, super().from_primitive(obj, attr,
                                                             value))


class MigrationIPAddressListField(fields.AutoTypedField):
    AUTO_TYPE = MigrationIPAddressList()


def plugin_version(stock_version, plugin=WIRE_VERSION):
    """The plugin's label for ``stock_version``: ``<X.Y>.<plugin>``."""
    return '%s.%d' % (stock_version, plugin)


def can_label(stock_version):
    """Whether :func:`plugin_version` of ``stock_version`` is one nova
    strips back to ``stock_version`` (only ``X.Y.Z`` loses its third part).
    """
    return stock_version.count('.') == 1


@nova_base.NovaObjectRegistry.register_if(False)
class LibvirtLiveMigrateData(StockLibvirtLiveMigrateData):
    """Stock live migration data plus the destination's migration addresses.

    Not registered on import: :func:`register` adds it to nova's object
    registry when the plugin is activated.
    """

    # Version <stock>.1: Added migration_ip
    # Version <stock>.2: Added migration_addresses (written as <stock>.1)
    VERSION = plugin_version(StockLibvirtLiveMigrateData.VERSION,
                             PLUGIN_VERSION)

    fields = dict(StockLibvirtLiveMigrateData.fields,
                  migration_ip=MigrationIPAddressField(nullable=True),
                  migration_addresses=MigrationIPAddressListField(
                      nullable=True))

    @property
    def has_migration_ip(self):
        """Whether the destination advertised a migration plane address."""
        return 'migration_ip' in self and self.migration_ip is not None

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        # Any stock version (two parts) lacks the plugin's fields; every
        # plugin label (three parts) reads them or ignores the ones it
        # does not know.
        if len(versionutils.convert_version_to_tuple(target_version)) < 3:
            primitive.pop('migration_ip', None)
            primitive.pop('migration_addresses', None)

    @classmethod
    def from_stock(cls, stock, addresses):
        """Copy a stock object into this class and set the addresses.

        :param addresses: the addresses to advertise, in order (or one
            address alone); the first goes into ``migration_ip``, and all
            of them into ``migration_addresses`` when there is more than
            one, so that a single address is advertised exactly as plugin
            version 1 did.

        Field values, set/unset state and changed fields carry over, so the
        copy serializes like the original plus the plugin's fields. The
        values are the stock object's, already coerced by the same field
        definitions, so they are copied as stored, not set again field by
        field.

        The copy's version is the stock object's own plus the plugin's
        part: an object read from an older source keeps that source's
        stock version (oslo.versionedobjects sets it on the instance), so
        the answer is one the source reads without a backport.
        """
        obj = cls()
        if can_label(stock.VERSION):
            obj.VERSION = plugin_version(stock.VERSION)
        obj._context = stock._context
        for name in stock.fields:
            attr = nova_base.get_attrname(name)
            if hasattr(stock, attr):
                setattr(obj, attr, getattr(stock, attr))
        # Changes inside nested objects are found again on the copy, which
        # shares them; only the stock object's own set is copied.
        obj._changed_fields = set(stock._changed_fields)
        obj.advertise(addresses)
        return obj

    def advertise(self, addresses):
        """Set the fields to ``addresses`` (see :meth:`from_stock`)."""
        if addresses is None:
            addresses = []
        elif isinstance(addresses, (str, netaddr.IPAddress)):
            addresses = [addresses]
        addresses = list(addresses)
        self.migration_ip = addresses[0] if addresses else None
        if len(addresses) > 1:
            self.migration_addresses = addresses
        elif 'migration_addresses' in self:
            self.migration_addresses = None


def migration_ip_of(migrate_data):
    """The first migration IP a destination advertised, or None.

    Works on any live migration data: objects that passed through a process
    without the plugin are stock instances without the field.
    """
    if isinstance(migrate_data, LibvirtLiveMigrateData):
        if migrate_data.has_migration_ip:
            return migrate_data.migration_ip
    return None


def migration_addresses_of(migrate_data):
    """Every migration IP a destination advertised, in order; maybe empty.

    ``migration_addresses`` when it starts with ``migration_ip``; only
    ``migration_ip`` otherwise (a plugin version 1 destination, or a list
    that does not agree with the address every plugin version reads first).
    """
    first = migration_ip_of(migrate_data)
    if first is None:
        return []
    listed = (migrate_data.migration_addresses
              if 'migration_addresses' in migrate_data else None)
    if listed and listed[0] == first:
        return list(listed)
    return [first]


def _aliases():
    """One class per stock minor, the installed one included.

    ``<X.Y>.1`` down to ``1.0.1``: the labels the plugin writes, on this
    nova and on older ones. Each is this class under another version, so
    that oslo.versionedobjects' exact match picks it; without it, ``1.13.1``
    is compatible with stock ``1.14`` and is read as stock. Empty on a nova
    whose stock version the plugin cannot label (the plugin refuses to
    activate there).
    """
    if not can_label(StockLibvirtLiveMigrateData.VERSION):
        return []
    major, minor = versionutils.convert_version_to_tuple(
        StockLibvirtLiveMigrateData.VERSION)
    return [type(LibvirtLiveMigrateData.__name__, (LibvirtLiveMigrateData,),
                 {'VERSION': plugin_version('%d.%d' % (major, older)),
                  '__module__': __name__,
                  '__doc__': LibvirtLiveMigrateData.__doc__})
            for older in range(minor, -1, -1)]


ALIASES = _aliases()


def register():
    """Make the object known to nova's RPC deserializer. Idempotent.

    The class, then its aliases, go into the registry *behind* the stock
    class of the same name. An exact version match picks a class first, so
    ``1.14`` primitives stay stock and ``1.14.1`` (or ``1.13.1``) ones
    become this class, whichever plugin version wrote them; any other
    version is resolved, and version manifests are built, from the stock
    class as on a host without the plugin.
    ``nova.objects.LibvirtLiveMigrateData`` keeps pointing to the stock
    class, so nova builds stock objects.
    """
    classes = ovo_base.VersionedObjectRegistry.obj_classes()[
        LibvirtLiveMigrateData.obj_name()]
    if LibvirtLiveMigrateData in classes:
        return
    at = classes.index(StockLibvirtLiveMigrateData) + 1
    classes[at:at] = [LibvirtLiveMigrateData] + ALIASES


def unregister():
    """Undo :func:`register`. Idempotent."""
    classes = ovo_base.VersionedObjectRegistry.obj_classes()[
        LibvirtLiveMigrateData.obj_name()]
    for cls in [LibvirtLiveMigrateData] + ALIASES:
        if cls in classes:
            classes.remove(cls)
