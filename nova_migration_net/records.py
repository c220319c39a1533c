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
  microversion 2.84, admin by default) say the plane, the address and why;
  a failed migration over the plane turns the source's event into an
  ``Error`` whose details name the address. The event is written by the
  conductor (a remotable ``InstanceActionEvent.create`` or
  ``event_finish_with_failure``, which a stock nova 34 conductor runs);
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

import functools
import time
import traceback

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

_WHY = {
    REASON_NOT_ADVERTISED: 'the destination advertised no '
                           'my_live_migration_ip (unset there, or '
                           'nova-migration-net not installed there)',
    REASON_OPTION_UNSET: 'my_live_migration_ip is unset on this host',
    REASON_STOCK_TLS: "native TLS and this host's libvirt has no "
                      'tls.destination',
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
                                          REASON_STOCK_TLS))


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
    in ``migration_net.live_migration.error`` only.
    """

    # Version 1.0: Initial version
    VERSION = '1.0'

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


def details(plane, address, reason=None):
    """The event's details: the plane, the address and why."""
    text = '%s plane: streams to %s, %s' % (plane, address, _WHERE[plane])
    if reason is not None:
        text += '; %s' % _WHY[reason]
    return text


def failure_details(address, exc):
    """The details of a failed migration over the plane."""
    return ('migration plane: the live migration to %s, the destination\'s '
            'my_live_migration_ip, failed: %s' % (address, exc))


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
           reason=None):
    """The source's record of the plane a migration to ``dest`` uses."""
    # The instance is on the source until the migration is over.
    _record(context, instance, 'live_migration', SOURCE_EVENT,
            details(plane, address, reason),
            _payload(context, instance, migrate_data, host=instance.host,
                     source_host=instance.host, destination_host=dest,
                     plane=plane, address=address, reason=reason))


@_never_fails
def destination(context, instance, migrate_data):
    """A destination running the plugin with the option unset says so."""
    _record(context, instance, 'pre_live_migration', DESTINATION_EVENT,
            details(PLANE_MANAGEMENT, CONF.host, REASON_OPTION_UNSET),
            _payload(context, instance, migrate_data, host=CONF.host,
                     source_host=instance.host, destination_host=CONF.host,
                     plane=PLANE_MANAGEMENT,
                     address=CONF.host, reason=REASON_OPTION_UNSET))


@_never_fails
def failure(context, instance, dest, migrate_data, address, exc):
    """The source's event of a migration over the plane becomes an error."""
    text = failure_details(address, exc)
    try:
        # The source's event, found by its name on this request's action.
        instance_action.InstanceActionEvent.event_finish_with_failure(
            context, instance.uuid, SOURCE_EVENT, exc_val=text,
            exc_tb=''.join(traceback.format_exception(exc)),
            want_result=False)
    except Exception as err:
        _warn('the instance action event', SOURCE_EVENT, instance, err)
    _notify(context, instance, 'live_migration',
            fields.NotificationPhase.ERROR,
            _payload(context, instance, migrate_data, host=instance.host,
                     source_host=instance.host, destination_host=dest,
                     plane=PLANE_MIGRATION, address=address,
                     error=str(exc)))


def _payload(context, instance, migrate_data, **values):
    migration = None
    if (migrate_data is not None and
            migrate_data.obj_attr_is_set('migration')):
        migration = migrate_data.migration
    return dict(instance_uuid=instance.uuid,
                migration_uuid=getattr(migration, 'uuid', None),
                request_id=context.request_id, **values)


def _record(context, instance, action, event, text, payload):
    now = timeutils.utcnow()
    try:
        instance_action.InstanceActionEvent(
            context, event=event, host=payload['host'], start_time=now,
            finish_time=now, result='Success', details=text,
        ).create(instance.uuid, context.request_id)
    except Exception as err:
        _warn('the instance action event', event, instance, err)
    _notify(context, instance, action, None, payload)


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
