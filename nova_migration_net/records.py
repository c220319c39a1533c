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

"""Which plane each live migration used, where operators look for it.

Two records, both through nova's own interfaces and stock services:

- an instance action event on the ``live-migration`` action: the source's
  :data:`SOURCE_EVENT`, and a destination running the plugin with the
  option unset adds :data:`DESTINATION_EVENT`. Its ``details`` (API
  microversion 2.84, admin by default) say the plane, the address and why,
  the transport and whether it encrypted the memory stream, and every
  attempt when there was more than one. The source writes its event once
  libvirt's migration call returned or raised, an ``Error`` when it
  raised. The event is written by the conductor (a remotable
  ``InstanceActionEvent.create``, which a stock nova 34 conductor runs);
- a versioned notification, :class:`MigrationPlaneNotification`, event type
  ``migration_net.live_migration`` (INFO) or
  ``migration_net.live_migration.error`` (ERROR), with a
  :class:`MigrationPlanePayload`. Sent only as nova sends its own: with
  ``[notifications] notification_format`` ``versioned`` or ``both`` and a
  notification driver set.

The source cannot tell a destination with the option unset from one without
the plugin: both send stock migration data. The destination's own event and
notification, present only when it runs the plugin, tell them apart.

Recording never fails a migration: any error is logged as a warning and
the migration goes on. It costs one conductor call and one notification
per record, as nova's own events and notifications of a migration do.
"""

import collections
import functools
import time
import traceback
import urllib.parse

from nova.notifications.objects import base as notification_base
from nova.objects import base as nova_base
from nova.objects import fields
from nova.objects import instance as instance_obj
from nova.objects import instance_action
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import timeutils

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

SOURCE_EVENT = 'migration_net_live_migration'
DESTINATION_EVENT = 'migration_net_pre_live_migration'

# Where the stream went.
PLANE_MIGRATION = 'migration'
PLANE_MANAGEMENT = 'management'
PLANE_INBOUND_ADDR = 'inbound_addr'

# Why it did not go to the migration plane.
REASON_NOT_ADVERTISED = 'not_advertised'
REASON_OPTION_UNSET = 'option_unset'
REASON_STOCK_TLS = 'stock_tls'
REASON_FALLBACK = 'fallback'

_WHY = {
    REASON_NOT_ADVERTISED: 'the destination advertised no '
                           'my_live_migration_ip (unset there, or '
                           'nova-migration-net not installed there)',
    REASON_OPTION_UNSET: 'my_live_migration_ip is unset on this host',
    REASON_STOCK_TLS: "native TLS and this host's libvirt has no "
                      'tls.destination',
    REASON_FALLBACK: 'no migration address of the destination could be '
                     'used, and fallback_to_management is set on this host',
}
_WHERE = {
    PLANE_MIGRATION: "the destination's my_live_migration_ip",
    PLANE_MANAGEMENT: "the destination's hostname",
    PLANE_INBOUND_ADDR: "the destination's live_migration_inbound_addr",
}


class PlaneField(fields.BaseEnumField):
    AUTO_TYPE = fields.Enum(valid_values=(PLANE_MIGRATION, PLANE_MANAGEMENT,
                                          PLANE_INBOUND_ADDR))


class ReasonField(fields.BaseEnumField):
    AUTO_TYPE = fields.Enum(valid_values=(REASON_NOT_ADVERTISED,
                                          REASON_OPTION_UNSET,
                                          REASON_STOCK_TLS,
                                          REASON_FALLBACK))


class ActionField(fields.BaseEnumField):
    # nova's NotificationAction is nova's to extend: the plugin's events
    # have an enum of their own, under an object name of their own.
    AUTO_TYPE = fields.Enum(valid_values=('live_migration',
                                          'pre_live_migration'))


# Not registered in NovaObjectRegistry: the objects are only ever turned
# into a primitive on the notification bus, never read by a nova service,
# so no stock peer meets a class it does not know.
@nova_base.NovaObjectRegistry.register_if(False)
class MigrationPlaneEventType(notification_base.NotificationObject):
    """``migration_net.<action>[.<phase>]``, as nova's ``EventType``."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'object': fields.StringField(nullable=False),
        'action': ActionField(nullable=False),
        'phase': fields.NotificationPhaseField(nullable=True),
    }

    def __init__(self, action, phase=None):
        super().__init__()
        self.object = 'migration_net'
        self.action = action
        self.phase = phase

    to_notification_event_type_field = (
        notification_base.EventType.to_notification_event_type_field)


@nova_base.NovaObjectRegistry.register_if(False)
class MigrationPlanePayload(notification_base.NotificationPayloadBase):
    """Which plane one live migration's stream used, seen from ``host``.

    ``address`` is where the stream went (an IP, or the destination's
    hostname); ``reason`` is None on the migration plane; ``error`` is set
    in ``migration_net.live_migration.error`` only. The source's payload
    also lists its ``attempts`` (``"<address>: <outcome>"``, in order, the
    last one ``used`` when it carried the migration) and the ``transport``
    libvirt was asked for (:class:`Transport`): ``encrypted`` tells whether
    the memory stream was, ``tls_name`` the name TLS verified.
    """

    # Version 1.0: Initial version
    # Version 1.1: Added attempts, transport, encrypted and tls_name; reason
    #              fallback
    VERSION = '1.1'

    fields = {
        'instance_uuid': fields.UUIDField(),
        'migration_uuid': fields.UUIDField(nullable=True),
        'request_id': fields.StringField(nullable=True),
        'host': fields.StringField(),
        'source_host': fields.StringField(nullable=True),
        'destination_host': fields.StringField(nullable=True),
        'plane': PlaneField(),
        'address': fields.StringField(nullable=True),
        'reason': ReasonField(nullable=True),
        'error': fields.StringField(nullable=True),
        'attempts': fields.ListOfStringsField(nullable=True),
        'transport': fields.StringField(nullable=True),
        'encrypted': fields.BooleanField(nullable=True),
        'tls_name': fields.StringField(nullable=True),
    }

    def __init__(self, **kwargs):
        super().__init__()
        # Every field, as nova's payloads have: consumers see null, not a
        # missing key.
        for name in self.fields:
            setattr(self, name, kwargs.get(name))
        self.populated = True


@nova_base.NovaObjectRegistry.register_if(False)
class MigrationPlaneNotification(notification_base.NotificationBase):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'event_type': fields.ObjectField('MigrationPlaneEventType'),
        'payload': fields.ObjectField('MigrationPlanePayload'),
    }


class Transport(collections.namedtuple(
        'Transport', 'name multifd encrypted tls_name')):
    """What carried a migration's memory, as libvirt was asked.

    ``name`` is ``native TLS`` or the connection URI's scheme
    (``qemu+tcp``, ``qemu+tls``, ``qemu+ssh``), ``tunnelled over`` it when
    the stream goes through libvirt's connection; ``multifd`` the number of
    parallel connections (0 without). The memory stream is encrypted with
    native TLS, or tunnelled over TLS or ssh: ``qemu+tls`` alone encrypts
    libvirt's control connection, not QEMU's stream (OSSN-0089).
    ``tls_name`` is the name TLS verifies the destination's certificate
    against: ``tls.destination`` when set, else the URI's host.
    """

    @classmethod
    def of(cls, dconnuri, flags, parallel, tls_name, libvirt):
        scheme = urllib.parse.urlsplit(dconnuri).scheme
        native_tls = bool(flags & libvirt.VIR_MIGRATE_TLS)
        tunnelled = bool(flags & libvirt.VIR_MIGRATE_TUNNELLED)
        # Not in nova 32's fake libvirt; nova asks for it since nova 34.
        multifd = (parallel if flags & getattr(
            libvirt, 'VIR_MIGRATE_PARALLEL', 0) and parallel > 1 else 0)
        if native_tls:
            return cls('native TLS', multifd, True, tls_name)
        if tunnelled:
            secure = scheme.endswith(('+tls', '+ssh', '+libssh', '+libssh2'))
            return cls('tunnelled over %s' % scheme, multifd, secure,
                       tls_name if scheme.endswith('+tls') else None)
        return cls(scheme, multifd, False, None)

    def __str__(self):
        text = self.name
        if self.multifd:
            text += ' with %d parallel connections' % self.multifd
        if not self.encrypted:
            return text + ', memory stream not encrypted'
        if self.tls_name:
            return (text + ', memory stream encrypted, TLS verifies %s'
                    % self.tls_name)
        return text + ', memory stream encrypted'


def attempt_text(attempt):
    """``"<address>: <outcome>"``: one attempt, as records list it."""
    return '%s: %s' % (attempt.address, attempt.outcome)


def attempts_text(attempts):
    """``"<address>: <outcome>; ..."`` of a migration's attempts."""
    return '; '.join(attempt_text(a) for a in attempts)


def details(plane, address, reason=None, transport=None, attempts=(),
            error=None):
    """The event's details: the plane, the address and why; the transport
    and the attempts when the source knows them.
    """
    if error is not None:
        text = ('%s plane: the live migration to %s, %s, failed: %s'
                % (plane, address, _WHERE[plane], error))
    else:
        text = '%s plane: streams to %s, %s' % (plane, address,
                                                _WHERE[plane])
    if reason is not None:
        text += '; %s' % _WHY[reason]
    if transport is not None:
        text += '; transport %s' % (transport,)
    if len(attempts) > 1 or reason == REASON_FALLBACK:
        text += '; attempts: %s' % attempts_text(attempts)
    return text


def _never_fails(record):
    """``record``, logging instead of raising whatever it raises."""
    @functools.wraps(record)
    def guarded(context, instance, *args, **kwargs):
        start = time.monotonic()
        try:
            record(context, instance, *args, **kwargs)
        except Exception as err:
            _warn('the records', record.__name__, instance, err)
        # What recording adds to the migration's control path.
        LOG.debug('Recorded the plane of this live migration (%(what)s) in '
                  '%(seconds).3f s.',
                  {'what': record.__name__,
                   'seconds': time.monotonic() - start})
    return guarded


@_never_fails
def source(context, instance, dest, migrate_data, plane, address,
           reason=None, transport=None, attempts=(), error=None):
    """The source's record of the plane a migration to ``dest`` used.

    An ``error`` makes the event an ``Error`` and the notification
    ``migration_net.live_migration.error``.
    """
    text = details(plane, address, reason, transport, attempts, error)
    payload = _payload(
        context, instance, migrate_data, host=instance.host,
        source_host=instance.host, destination_host=dest, plane=plane,
        address=address, reason=reason,
        error=None if error is None else str(error),
        attempts=[attempt_text(a) for a in attempts] or None)
    if transport is not None:
        payload.update(transport=transport.name
                       + (' multifd' if transport.multifd else ''),
                       encrypted=transport.encrypted,
                       tls_name=transport.tls_name)
    # The instance is on the source until the migration is over.
    _record(context, instance, 'live_migration', SOURCE_EVENT, text, payload,
            error)


@_never_fails
def destination(context, instance, migrate_data):
    """A destination running the plugin with the option unset says so."""
    _record(context, instance, 'pre_live_migration', DESTINATION_EVENT,
            details(PLANE_MANAGEMENT, CONF.host, REASON_OPTION_UNSET),
            _payload(context, instance, migrate_data, host=CONF.host,
                     source_host=instance.host, destination_host=CONF.host,
                     plane=PLANE_MANAGEMENT,
                     address=CONF.host, reason=REASON_OPTION_UNSET))


def _payload(context, instance, migrate_data, **values):
    migration = None
    if (migrate_data is not None and
            migrate_data.obj_attr_is_set('migration')):
        migration = migrate_data.migration
    return dict(instance_uuid=instance.uuid,
                migration_uuid=getattr(migration, 'uuid', None),
                request_id=context.request_id, **values)


def _record(context, instance, action, event, text, payload, error=None):
    now = timeutils.utcnow()
    result = {'result': 'Success'}
    if error is not None:
        result = {'result': 'Error', 'traceback': ''.join(
            traceback.format_exception(error))}
    try:
        instance_action.InstanceActionEvent(
            context, event=event, host=payload['host'], start_time=now,
            finish_time=now, details=text, **result,
        ).create(instance.uuid, context.request_id)
    except Exception as err:
        _warn('the instance action event', event, instance, err)
    _notify(context, instance, action,
            None if error is None else fields.NotificationPhase.ERROR,
            payload)


def _notify(context, instance, action, phase, payload):
    # As nova's own events, the notification's publisher is the host that
    # sends it.
    priority = (fields.NotificationPriority.ERROR if phase
                else fields.NotificationPriority.INFO)
    try:
        MigrationPlaneNotification(
            priority=priority,
            event_type=MigrationPlaneEventType(action, phase),
            publisher=notification_base.NotificationPublisher(
                host=payload['host'],
                source=fields.NotificationSource.COMPUTE),
            payload=MigrationPlanePayload(**payload),
        ).emit(context)
    except Exception as err:
        _warn('the notification', 'migration_net.%s' % action, instance,
              err)


def _warn(what, name, instance, err):
    if not isinstance(instance, instance_obj.Instance):
        instance = None
    LOG.warning('Could not record which plane this live migration uses '
                '(%(what)s %(name)s): %(err)s. The migration goes on.',
                {'what': what, 'name': name, 'err': err}, instance=instance)
