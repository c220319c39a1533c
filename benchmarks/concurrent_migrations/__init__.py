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

"""Concurrent live migrations on the real cloud, against nova's own
control plane: the spec's claim measured, CPUs reserved as operators
reserve them.

Run as root from the repository root, in ``tox -e bench`` (which makes
the cloud tier's venvs first)::

    tox -e bench -- [--quick] [--rate MBIT] [--n 1,2,4] [--rounds R]
        [--unpinned-rounds R] [--fast-factor 4] [--fast-n 1,4]
        [--fast-rounds R] [--memory MB] [--dirty MIB]

with ``NOVA_MIGRATION_NET_CLOUD_PREFIX`` and ``NOVA_MIGRATION_NET_CLOUD_DIR``
naming a cloud of its own if another runs. It brings up the real-cloud
tier's cloud (``tests/cloud``), runs the phases, tears the cloud down,
and writes ``benchmarks/results/concurrent_migrations.{md,json,png}``,
the raw samples (``.raw.json``, not kept in git) and
``doc/source/concurrent-migrations-results.inc``. ``--report-only RAW``
renders an earlier run's raw results again.

Why: the spec says migrations stream to the destination's hostname, on
the management network, so "a wave of concurrent migrations saturates the
management network and RPC heartbeats, API calls and other tenants
suffer"; with ``my_live_migration_ip`` set they have a plane of their own.

How, one module each; the links, libvirt's jobs and nova's migration
states are read with the cloud tier's own modules (``tests.cloud.links``,
``.jobs``, ``.migrations``):

- :mod:`.cpus`: the host's services and the probes on the first CPU, the
  guests on the others (nova's ``[compute] cpu_shared_set``), and the
  affinity every thread got, read back from ``/proc``.
- :mod:`.workload`: N servers of a guest that keeps 1 MiB of its 128 MB
  dirty, booted on compute-b and live-migrated to compute-a at once
  through nova's API; per migration, the control path from nova-compute's
  DEBUG log, downtime from libvirt; bytes per link; the QEMU threads'
  affinity while they stream.
- :mod:`.probes`: nova's RPC round trip through the cloud's RabbitMQ,
  ``GET /servers/detail``, placement's ``GET /resource_providers``,
  nova-compute's service heartbeat as it lands in nova's database, and a
  TCP echo twice (once at real-time priority), from the migrations'
  source to the controller.
- :mod:`.run`: the phases (CPUs reserved, the same with a 4x faster
  migration link, every process on every CPU) and the interleaved rounds
  (plugin and stock, ABBA), with the nova-computes restarted between
  modes.
- :mod:`.report`: percentiles against idle, ratios within rounds,
  verdicts against issues 20 and 29's targets; :mod:`.render`: tables
  and the plot.

Why these guests: each TCG vCPU that runs takes a core, and the machine
has two for both hosts, every OpenStack service, RabbitMQ, MariaDB and the
probes. The guest (``noise_guest.S`` assembled with ``DIRTY``) writes a
word of each page of 1 MiB, then halts until the next timer tick
(18.2 Hz): it keeps a working set dirty, so every migration needs more
than one pass and has a real downtime, while its vCPU sleeps almost all
the time. 128 MB keeps a migration at 200 Mbit/s to about 6 s, so that
rounds fit in minutes. nova's downtime steps are set to the fastest it
accepts (``[libvirt] live_migration_downtime_steps`` and ``_delay`` 3) in
both modes: with its defaults, four such guests sharing the link would
wait 150 s at 50 ms allowed downtime.

What it does not measure: a real switch (the queue is each sender's own
qdisc); KVM; a controller on a host of its own (compute-a is both the
destination and the controller); guests that dirty memory faster than
the link (they would need auto-converge or post-copy). The kernel's
network work (softirq) runs on whichever CPU raised it, which the
reservation does not move: the real-time TCP echo, the CPUs' busy share
and tbf's drops on the management link show where the cores, not the
link, decide a figure.
"""
