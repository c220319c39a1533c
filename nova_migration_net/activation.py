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

"""Turning the plugin on and off inside one nova process.

:func:`activate` registers the option and the object, then wraps the
``LibvirtDriver`` methods named by the ``nova_migration_net.hooks`` entry
points with their hooks. It refuses, leaving nova stock, when a method's
signature is not the one the hooks were written for. :func:`deactivate`
restores nova exactly; tests use it to undo activation.
"""

import functools
import inspect
import threading

from oslo_log import log as logging
import stevedore

from nova_migration_net import conf as migration_net_conf
from nova_migration_net import objects

LOG = logging.getLogger(__name__)

HOOK_NAMESPACE = 'nova_migration_net.hooks'

# The LibvirtDriver methods the hooks were written for, as in nova 34.
KNOWN_SIGNATURES = {
    'init_host': ('self', 'host'),
    'pre_live_migration': ('self', 'context', 'instance',
                           'block_device_info', 'network_info', 'disk_info',
                           'migrate_data'),
    'live_migration': ('self', 'context', 'instance', 'dest', 'post_method',
                       'recover_method', 'block_migration', 'migrate_data'),
    '_live_migration_operation': ('self', 'context', 'instance', 'dest',
                                  'block_migration', 'migrate_data', 'guest',
                                  'device_names'),
}

_lock = threading.Lock()
# Wrapped method name -> nova's original function, while active.
_originals = {}


def is_active():
    return bool(_originals)


def activate(conf):
    """Activate the plugin in this process. Idempotent.

    :param conf: the ``ConfigOpts`` being parsed; the option is registered
        on it.
    :returns: True when the plugin is active, False when it refused.
    """
    with _lock:
        # Every ConfigOpts that opens the source gets the option, also a
        # second one in an already active process.
        migration_net_conf.register_opts(conf)
        if _originals:
            return True
        # Imported here: nothing of nova is loaded before a nova service
        # opens the plugin's config source.
        from nova.virt.libvirt import driver as libvirt_driver
        driver_cls = libvirt_driver.LibvirtDriver
        hooks = stevedore.ExtensionManager(HOOK_NAMESPACE,
                                           invoke_on_load=True)
        problems = incompatibilities(driver_cls, hooks.names())
        if problems:
            LOG.error('nova-migration-net is NOT active, live migrations use '
                      'stock nova: this nova is not the one the plugin was '
                      'built for (%s).', '; '.join(problems))
            return False
        objects.register()
        for hook in hooks:
            original = getattr(driver_cls, hook.name)
            setattr(driver_cls, hook.name, _wrap(original, hook.obj))
            _originals[hook.name] = original
        LOG.info('nova-migration-net is active: LibvirtLiveMigrateData %s '
                 'registered, hooks on LibvirtDriver.%s.',
                 objects.LibvirtLiveMigrateData.VERSION,
                 ', '.join(sorted(_originals)))
        return True


def deactivate():
    """Restore stock nova in this process. Idempotent.

    The option stays registered: removing it would break configuration
    fixtures still holding overrides for it.
    """
    with _lock:
        if not _originals:
            return
        from nova.virt.libvirt import driver as libvirt_driver
        for name, original in _originals.items():
            setattr(libvirt_driver.LibvirtDriver, name, original)
        _originals.clear()
        objects.unregister()


def incompatibilities(driver_cls, hook_names):
    """Why the hooks cannot wrap ``driver_cls``; empty when they can."""
    problems = []
    missing = sorted(set(KNOWN_SIGNATURES) - set(hook_names))
    if missing:
        problems.append('hooks %s not found in entry point namespace %s; '
                        'is the package installed?'
                        % (', '.join(missing), HOOK_NAMESPACE))
    for name in sorted(hook_names):
        expected = KNOWN_SIGNATURES.get(name)
        method = getattr(driver_cls, name, None)
        if expected is None or method is None:
            problems.append('no known LibvirtDriver.%s to hook' % name)
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != expected:
            problems.append('LibvirtDriver.%s(%s) instead of (%s)'
                            % (name, ', '.join(found), ', '.join(expected)))
    if 'target_connect_addr' not in objects.StockLibvirtLiveMigrateData.fields:
        problems.append('LibvirtLiveMigrateData has no target_connect_addr')
    return problems


def _wrap(method, hook):
    """``method`` with the hook's pre, post and error phases (see hooks)."""
    signature = inspect.signature(method)
    pre = getattr(hook, 'pre', None)
    post = getattr(hook, 'post', None)
    error = getattr(hook, 'error', None)

    @functools.wraps(method)
    def hooked(*args, **kwargs):
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        if pre is not None:
            pre(call)
        try:
            rv = method(*call.args, **call.kwargs)
        except Exception as exc:
            if error is not None and error(call, exc) is True:
                return None
            raise
        if post is not None:
            rv = post(call, rv)
        return rv

    return hooked
