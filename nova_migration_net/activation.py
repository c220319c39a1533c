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

Activation happens in two steps, so that only a process that runs nova's
libvirt driver is ever hooked:

1. :func:`arm`, called when the service's own configuration (oslo.config's
   global ``cfg.CONF``) opens the plugin's config source. It imports nothing
   of nova: it only asks to be told when ``nova.virt.libvirt.driver`` is
   imported (a ``wrapt`` post-import hook), and then traps the first
   instantiation of ``LibvirtDriver``. nova-compute instantiates it in
   ``load_compute_driver``, after logging is set up and after nova has chosen
   between eventlet and native threading. nova-manage and privsep-helper may
   import the module but never instantiate the driver, so they stay stock.
2. :func:`activate`, run by that trap (or directly by tests): it registers
   the object and wraps the ``LibvirtDriver`` methods named by the
   ``nova_migration_net.hooks`` entry points with their hooks. It refuses,
   leaving nova stock and saying so at ERROR, when a method's signature is
   not the one the hooks were written for.

:func:`arm` also has the plugin say, at ERROR and when nova-compute starts
its compute manager, when eventlet patched this process too late for what
oslo.config imported (:mod:`nova_migration_net.early_imports`).

:func:`deactivate` restores nova exactly, trap included; tests use it to
undo activation.
"""

import functools
import inspect
import threading

from oslo_log import log as logging
import stevedore
import wrapt

from nova_migration_net import early_imports

LOG = logging.getLogger(__name__)

HOOK_NAMESPACE = 'nova_migration_net.hooks'
DRIVER_MODULE = 'nova.virt.libvirt.driver'

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

# Reentrant: when activate() is the first to import the driver module, the
# post-import hook (_driver_imported) runs inside activate()'s lock.
_lock = threading.RLock()
# Wrapped method name -> nova's original function, while active.
_originals = {}
# LibvirtDriver.__init__ as nova defines it, while the trap is set.
_trapped_init = None
# Whether the post-import hook waits for the driver module (wrapt keeps a
# hook until the module is imported, and cannot take one back).
_hook_pending = False
_armed = False


def is_active():
    return bool(_originals)


def is_armed():
    """Whether the plugin activates when nova instantiates its driver."""
    return _armed


def arm():
    """Activate when this process first instantiates ``LibvirtDriver``.

    Idempotent. Imports no nova module: when the driver module is not
    imported yet, the trap is set once it is.
    """
    global _armed, _hook_pending
    with _lock:
        if not _armed:
            early_imports.report_when_nova_compute_starts()
        _armed = True
        if _hook_pending:
            return
        _hook_pending = True
    # Outside the lock: wrapt runs the hook at once when the module is
    # already imported.
    wrapt.register_post_import_hook(_driver_imported, DRIVER_MODULE)


def _driver_imported(module):
    global _hook_pending
    with _lock:
        _hook_pending = False
        if _armed:
            _set_trap(module.LibvirtDriver)


def _set_trap(driver_cls):
    global _trapped_init
    if _trapped_init is not None or _originals:
        return
    init = driver_cls.__dict__['__init__']

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        activate()
        init(self, *args, **kwargs)

    _trapped_init = init
    driver_cls.__init__ = __init__


def _clear_trap(driver_cls):
    global _trapped_init
    if _trapped_init is not None:
        driver_cls.__init__ = _trapped_init
        _trapped_init = None


def activate():
    """Activate the plugin in this process. Idempotent.

    :returns: True when the plugin is active, False when it refused.
    """
    with _lock:
        if _originals:
            return True
        # Imported here: the package alone loads nothing of nova.
        from nova.virt.libvirt import driver as libvirt_driver

        from nova_migration_net import objects
        driver_cls = libvirt_driver.LibvirtDriver
        _clear_trap(driver_cls)
        # Once per process: nova-compute already did when it started its
        # compute manager; a test or tool that makes the driver alone
        # reports here.
        early_imports.report()
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
    """Restore stock nova in this process, trap included. Idempotent.

    The option stays registered: removing it would break configuration
    fixtures still holding overrides for it.
    """
    global _armed
    with _lock:
        _armed = False
        if not _originals and _trapped_init is None:
            return
        from nova.virt.libvirt import driver as libvirt_driver

        from nova_migration_net import objects
        _clear_trap(libvirt_driver.LibvirtDriver)
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
    from nova_migration_net import objects
    stock = objects.StockLibvirtLiveMigrateData
    if 'target_connect_addr' not in stock.fields:
        problems.append('LibvirtLiveMigrateData has no target_connect_addr')
    if not objects.can_label(stock.VERSION):
        problems.append(
            'LibvirtLiveMigrateData is version %s, a stable-branch version; '
            'the plugin\'s %s would be read as stock by no nova, so hosts '
            'without the plugin would need a backport'
            % (stock.VERSION, objects.plugin_version(stock.VERSION)))
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
