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

"""What oslo.config imported before eventlet patched it, and what it breaks.

nova 34 reads ``[DEFAULT] concurrency_backend`` in a parse of its own,
before it decides on eventlet monkey patching
(``nova.monkey_patch._get_concurrency_from_config``). When ``nova.conf``
names a ``config_source``, as the plugin's lines do, oslo.config (10.7.0)
opens it by loading every installed ``oslo.config.driver`` with stevedore:
its own ``remote_file`` imports requests and urllib3, castellan's imports
oslo_log and oslo_context. When that parse then picks eventlet, eventlet
patches ``ssl`` and ``threading`` too late for them:

- urllib3 keeps the unpatched ``ssl.SSLContext``, and every HTTPS request
  through requests (keystoneauth's, to placement, neutron, glance, cinder
  and keystone) fails with ``RecursionError`` (nova bug 1808951);
- oslo_context's request store stays a real thread-local that every
  greenthread shares, so log lines can carry another request's id (nova
  bug 1773102).

Eventlet selected by ``OS_NOVA_DISABLE_EVENTLET_PATCHING=false`` in the
service's environment is not affected: nova then skips the early parse.
Neither are native threading (nova-compute 34's default) and nova 33, which
has no early parse.

The plugin is loaded by that very parse, too late to prevent the imports,
so it detects their effect and logs one ERROR line with the fix
(:func:`report`) when nova-compute starts its compute manager
(:func:`report_when_nova_compute_starts`, armed while the service parses
its own configuration). Logging is set up by then, and it is before
nova-compute's first HTTPS request: the placement client the manager makes
asks keystone or placement for placement's versions at once, and behind
TLS nova-compute dies there, before it loads its driver.
``nova-migration-net-status upgrade check`` runs the
early parse itself (:func:`early_parse`) to say the same before a restart.
"""

import functools
import json
import os
import ssl
import subprocess
import sys
import textwrap
import threading

from oslo_log import log as logging
import wrapt

LOG = logging.getLogger(__name__)

COMPUTE_MANAGER = 'nova.compute.manager'

# nova's environment variable that chooses the mode before any parse.
ENVIRONMENT = 'OS_NOVA_DISABLE_EVENTLET_PATCHING'

# The modules nova's own warning names (nova/monkey_patch.py), and what each
# breaks when imported before eventlet patches it.
CONSEQUENCES = {
    'urllib3': 'HTTPS requests to placement, neutron, glance, cinder and '
               'keystone fail with RecursionError (nova bug 1808951)',
    'oslo_context.context': 'greenthreads share one request context, so '
                            'log lines can carry another request\'s id '
                            '(nova bug 1773102)',
}

# In the ERROR line; the cloud tier and the tests look for it.
MARK = 'were imported before eventlet monkey patched them'

FIX = ('Select eventlet with %s=false in nova-compute\'s environment instead '
       'of [DEFAULT] concurrency_backend in nova.conf (nova then chooses '
       'before it parses nova.conf), or run nova-compute in native '
       'threading mode, nova 34\'s default.' % ENVIRONMENT)


def unpatched():
    """The modules of :data:`CONSEQUENCES` that hold what eventlet's monkey
    patching replaced in this process; empty when eventlet patched nothing.

    The effect is checked, not the import: urllib3 bound ``SSLContext``
    from ``ssl`` at import, and oslo_context made its request store from
    ``threading.local``; each is unpatched when it is not what the
    patched module now holds.
    """
    patcher = sys.modules.get('eventlet.patcher')
    if patcher is None:
        return []
    found = []
    urllib3_ssl = sys.modules.get('urllib3.util.ssl_')
    if (patcher.is_monkey_patched('socket') and urllib3_ssl is not None
            and getattr(urllib3_ssl, 'SSLContext', None) is not None
            and urllib3_ssl.SSLContext is not ssl.SSLContext):
        found.append('urllib3')
    context = sys.modules.get('oslo_context.context')
    store = getattr(context, '_request_store', None)
    if (patcher.is_monkey_patched('thread') and store is not None
            and not isinstance(store, threading.local)):
        found.append('oslo_context.context')
    return found


def consequences(modules):
    """What importing ``modules`` before patching breaks, as a clause."""
    return '; '.join(CONSEQUENCES[m] for m in modules)


def message(modules):
    """The operator's explanation of ``modules`` and the fix."""
    return ('%s %s: [DEFAULT] config_source made oslo.config import every '
            'installed oslo.config.driver during nova\'s early parse of '
            'nova.conf, which then chose eventlet. So %s. %s'
            % (' and '.join(modules), MARK, consequences(modules), FIX))


_reported = False


def report():
    """Log :func:`message` at ERROR, once per process, when this process is
    affected.

    :returns: the affected modules, empty when none is.
    """
    global _reported
    modules = unpatched()
    if modules and not _reported:
        _reported = True
        LOG.error('%s', message(modules))
    return modules


def report_when_nova_compute_starts():
    """Have :func:`report` run first thing in nova-compute's
    ``ComputeManager.__init__``, when this process is affected.

    Logging is set up by then, and nothing has been requested yet: the
    placement client the manager makes next asks for placement's versions
    at once, and behind TLS that request kills the process. Other programs
    that read the same ``nova.conf`` (nova-manage, nova-status, the API and
    the schedulers) never make a ``ComputeManager`` and stay stock. Nothing
    is changed in a process that is not affected, and the trap removes
    itself at its first call.
    """
    if unpatched():
        wrapt.register_post_import_hook(_trap_compute_manager,
                                        COMPUTE_MANAGER)


def _trap_compute_manager(module):
    manager_cls = module.ComputeManager
    init = manager_cls.__dict__['__init__']

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        manager_cls.__init__ = init
        report()
        init(self, *args, **kwargs)

    manager_cls.__init__ = __init__


# nova's early parse, run as nova-compute's first line runs it: prints what
# it chose and which of the modules named in argv[1] it imported.
_EARLY_PARSE = textwrap.dedent("""\
    import json, sys
    modules = json.loads(sys.argv[1])
    from nova import monkey_patch
    parse = getattr(monkey_patch, '_get_concurrency_from_config', None)
    sys.argv = ['nova-compute'] + sys.argv[2:]
    backend = parse() if parse else None
    print(json.dumps([backend, sorted(set(modules) & set(sys.modules))]))
    """)


def early_parse(config_args, timeout=60):
    """Run nova's early parse in a new interpreter of this environment.

    :param config_args: nova-compute's ``--config-file`` and
        ``--config-dir`` arguments
    :returns: ``(backend, modules)``: the ``concurrency_backend`` the parse
        read (None when this nova has no early parse) and which modules of
        :data:`CONSEQUENCES` it imported
    :raises RuntimeError: the parse failed; its error output
    """
    env = dict(os.environ)
    env.pop(ENVIRONMENT, None)
    result = subprocess.run(
        [sys.executable, '-c', _EARLY_PARSE, json.dumps(sorted(CONSEQUENCES))]
        + list(config_args), env=env, capture_output=True, text=True,
        timeout=timeout)
    if result.returncode:
        raise RuntimeError(result.stderr.strip()[-2000:])
    backend, modules = json.loads(result.stdout.splitlines()[-1])
    return backend, modules
