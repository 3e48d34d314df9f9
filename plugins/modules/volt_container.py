#!/usr/bin/python
# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volt_container
short_description: Manage the lifecycle of a Volt container
version_added: 0.1.0
description:
  - Creates, starts, stops, restarts and removes one Volt container, rootless with proot (Termux,
    Android, Linux without systemd) or with systemd-nspawn.
  - Idempotent. The options you give are compared with the container's, and RV(drifted) names
    those that differed. Most drifted options recreate the container (removed and created
    again). O(memory), O(cpus), O(restart_policy), O(restart_retries), O(log_max_size) and
    O(log_max_files) are applied in place (the settings rewritten, a running container
    restarted); O(enabled) and O(stop_timeout) in place without a restart. Options you leave out are not compared.
  - An image pulled from a registry runs as its author meant, by Docker's rules. Its C(Entrypoint)
    and C(Cmd), C(Env), C(WorkingDir), C(User) and C(StopSignal) are kept with the image (see
    RV(armoredgate.volt.volt_image#module:image.config)) and used unless O(entrypoint),
    O(command), O(env), O(workdir), O(user) or O(stop_signal) say otherwise. A new image digest
    whose config changed is drift like any other.
  - Start means running. After a start the container is watched for O(start_grace_period)
    seconds; if it exits meanwhile, the task fails with its exit code (RV(rc)) and the last lines
    of its output, and a container this task created is removed again. A container that exited
    on its own since the last run is started again with a warning saying so.
  - A proot container runs as a daemon (detached from the Ansible connection). It is stopped by
    sending its stop signal (O(stop_signal)) to its main process, then C(SIGTERM) to every
    process of its tree, and C(SIGKILL) after O(stop_timeout). A systemd container is stopped the
    same way, by its unit (see O(stop_timeout)).
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - armoredgate.volt.volt
  - armoredgate.volt.volt.attributes
options:
  name:
    description:
      - Name of the container. It becomes part of paths and unit names, so it must match
        C(^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$).
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the container exists, leaving it running or stopped as it is.
      - V(started) makes sure it exists and runs.
      - V(healthy) is V(started), then waits until its O(healthcheck) passes, at most
        O(healthy_wait_timeout) seconds, and fails with the last probe's output if it does not
        (as community.docker's C(state=healthy)). Waiting is not a change. Without a health check
        it is V(started).
      - V(stopped) makes sure it exists and does not run.
      - V(restarted) stops (if running) and starts it; it always reports a change.
      - V(absent) stops and removes it with its root filesystem.
    type: str
    choices: [present, started, healthy, stopped, restarted, absent]
    default: started
  image:
    description:
      - Name of an image in the image store (C(<data_dir>/images/<image>)). A name made of
        letters, digits, C(_), C(.) and C(-) is its own directory name; in other names C(:), C(/)
        and C(@) become C(%3A), C(%2F) and C(%40), so no two names share a directory.
      - Needed to create the container unless O(rootfs) is given.
    type: str
  rootfs:
    description:
      - A directory to copy as the container's root filesystem, instead of O(image).
      - Copied as C(cp -a --reflink=auto) does (a reflink where the filesystem allows it); symlinks
        inside it are copied as symlinks, never followed.
    type: path
  entrypoint:
    description:
      - The program the container runs, replacing the image's C(Entrypoint), as a list of
        arguments or a string split like a shell would.
      - As with Docker, setting it drops the image's C(Cmd) too; only O(command) follows it. An
        empty value (V("") or V([])) runs no entrypoint at all, only O(command).
    type: raw
    version_added: 0.2.0
  command:
    description:
      - The arguments that follow the entrypoint (the image's, or O(entrypoint)), replacing the
        image's C(Cmd); with neither an entrypoint, the whole command. A list of arguments or a
        string split like a shell would (but never run by a shell unless you ask for one, for
        example V([/bin/sh, -c, "..."])).
      - When neither the options nor the image name a program (an image from a directory, a
        tarball or debootstrap has no config), the first of C(/init), C(/usr/sbin/nginx) (in the
        foreground), C(/docker-entrypoint.sh), C(/usr/local/bin/python3), C(/usr/bin/python3) and
        C(/bin/sh) found in the root filesystem is run.
    type: raw
  user:
    description:
      - The user the container's program runs as, C(USER) or C(USER:GROUP), each a name or a
        numeric id, resolved in the container's C(/etc/passwd) and C(/etc/group). Defaults to the
        image's C(User), else V(root).
      - proot emulates it (C(proot -i UID:GID)) - the program sees that identity, but its
        processes are still the host user's. The systemd backend runs the program as that user
        for real (C(User=) of systemd-nspawn), which needs the user in the container's
        C(/etc/passwd), with that user's own group, and C(getent) in the container.
      - Also the default user of M(armoredgate.volt.volt_exec) and of the connection plugin.
    type: str
    version_added: 0.2.0
  stop_signal:
    description:
      - The signal that asks the container's main process to stop, such as V(SIGQUIT), V(QUIT) or
        V(3). Defaults to the image's C(StopSignal), else V(SIGTERM).
      - Sent to the main process alone; whatever still runs when it has exited (or O(stop_timeout)
        is up) gets C(SIGTERM), then C(SIGKILL).
    type: str
    version_added: 0.2.0
  healthcheck:
    description:
      - A command run inside the running container now and then to tell whether it works, in
        Docker's shape. Its status (V(starting), V(healthy), V(unhealthy)) is returned in
        RV(container.health).
      - proot - the container's supervisor runs the probes (through the same proot command line
        as M(armoredgate.volt.volt_exec)); it sleeps between them, so a container without a
        check costs no wake-ups.
      - systemd - a timer of systemd runs the probes, so no process of this collection runs
        unknown to systemd.
      - V({}) or a O(healthcheck.test) of V([NONE]) removes the check. Applied in place (the
        container restarted if it runs).
    type: dict
    suboptions:
      test:
        description:
          - The probe - a list run as it is (V([CMD, ...]) as Docker spells it is also taken),
            or a string run with C(/bin/sh -c) (as V([CMD-SHELL, ...])). Exit code 0 is healthy.
        type: raw
      interval:
        description:
          - Seconds (or a duration such as V(30s), V(1m30s), V(500ms)) between probes.
          - Default V(30).
        type: raw
      timeout:
        description:
          - Seconds (or a duration) a probe may take before it is killed and counts as failed.
          - Default V(30).
        type: raw
      retries:
        description:
          - Failed probes in a row that make the container unhealthy.
          - Default V(3).
        type: int
      start_period:
        description:
          - Seconds (or a duration) after the start during which failed probes do not count (a
            passing one still makes the container healthy).
          - Default V(0).
        type: raw
  restart_on_unhealthy:
    description:
      - When the container becomes unhealthy, send its main process its stop signal (see
        O(stop_signal)), so that O(restart_policy) (V(on-failure) or V(always)) starts it again.
      - A new container gets V(false). Applied in place, as O(healthcheck).
    type: bool
  healthy_wait_timeout:
    description: With O(state=healthy), how many seconds to wait for the health check to pass.
    type: float
    default: 300
  start_grace_period:
    description:
      - Seconds a start watches the container before it counts as running. A container that
        exits meanwhile (or that its O(restart_policy) restarts) fails the task with its exit code
        and the last lines of its output.
      - Each start costs up to this long. Measured with C(bench/start_grace.py) - a converge that
        starts 30 proot containers took 38 s with V(1.0), 15 s with V(0.2) and 9 s with V(0)
        (the watch off). Set it lower where many containers start at once (the
        P(armoredgate.volt.containers#role) role's C(volt_start_grace_period)). Not stored with
        the container.
    type: float
    default: 1.0
    version_added: 0.2.0
  env:
    description:
      - Environment variables for the container, added to a clean environment (C(HOME) of its
        user, a standard C(PATH), C(TERM=xterm), C(CONTAINER_NAME)) and to the image's C(Env),
        over which they win.
      - Values must be strings or numbers; quote V(yes), V(true) and friends. NUL characters are
        refused; the systemd backend also refuses other control characters (its settings files
        are line based).
      - Values are stored in private (mode 0600) files and returned in RV(container.config); use
        O(secret_env) for passwords and tokens.
    type: dict
  secret_env:
    description:
      - Environment variables that must never be shown, such as passwords and tokens. They are
        added after O(env) and win over it.
      - The values are kept only in C(<data_dir>/secrets/<name>.json) (mode 0600, in a 0700
        directory) and passed to the container when it starts. The container's record, the
        module's result and C(--diff) carry an HMAC-SHA256 digest of each C(KEY=value) under a
        key private to the data directory, so a changed value is still seen and recreates the
        container.
      - Left out, the container keeps the secrets it has, also when it is recreated for another
        change.
    type: dict
  volumes:
    description:
      - Host directories or files bound into the container, as C(/host/path:/container/path).
      - A C(:ro) suffix asks for a read-only bind; the proot backend cannot honour it and fails.
      - The host path must exist when the container starts; unlike Docker, a missing one is not
        created (a typo must not become an empty directory bound into the container), and the
        start fails naming it.
      - A mount point missing in the container is created there (directories mode 0755, a file
        0644).
    type: list
    elements: str
  ports:
    description:
      - Ports to publish, as C(HOST:CONTAINER) or C(PORT), each optionally followed by C(/tcp)
        (the default) or C(/udp), as Docker takes them. A host address (C(127.0.0.1:8080:80)) and
        port ranges are refused with a message saying why.
      - A host port already in use on the host (by a listening TCP socket or a bound UDP socket)
        fails the start before anything runs, naming the process that holds it where it can be
        found.
      - proot containers share the host's network, so a service listening on a port is reachable
        on that port anyway. Mapping to a different host port uses proot's port mapping, which
        proot 5.2 and later have; with an older proot such a mapping fails with a clear message.
      - systemd backend on a bridge - published with systemd-nspawn's C(Port=) (TCP or UDP), which
        forwards traffic to the host's addresses other than loopback, from the host itself and from
        other machines. C(127.0.0.1:HOST) does not answer (nspawn never forwards loopback
        traffic); use another of the host's addresses, such as the bridge's. With O(network=host)
        the container uses the host's ports directly.
    type: list
    elements: str
  workdir:
    description:
      - Working directory of the command inside the container. Defaults to the image's
        C(WorkingDir), else C(/).
      - It must be a directory in the container's root filesystem when the container starts.
    type: str
  memory:
    description:
      - Memory limit, such as V(512M) or V(2G).
      - Enforced by the systemd backend only (C(MemoryMax=) of the container's unit, applied in
        place). proot cannot limit memory; there the option is ignored with a warning.
    type: str
  cpus:
    description:
      - CPU quota in CPUs, such as V(1.5).
      - Enforced by the systemd backend only (C(CPUQuota=) of the container's unit, applied in
        place). proot cannot limit CPU; there the option is ignored with a warning.
    type: float
  restart_policy:
    description:
      - When the container is started again after its main process exits, as Docker's restart
        policies.
      - V(no) - never. V(on-failure) - when it exits with a non-zero code or is killed by a
        signal. V(always) - whatever its exit code. V(unless-stopped) - as V(always), and in
        addition a container stopped by this module (O(state=stopped)) is not started at boot
        even when O(enabled=true).
      - Restarts back off, as Docker's do. proot - its supervisor waits 0.1 s before the first
        restart and twice as long before each next one, at most 60 s, and starts again from
        0.1 s after a run of 10 s or more. systemd - the unit's C(Restart=) with C(RestartSec=100ms).
      - A stop (O(state=stopped), C(systemctl stop)) is never undone by the policy.
      - proot - a small supervisor (a host C(sh) of about 1.5 MB resident) owns each running
        container whatever its policy. It records each run's exit code and the restart count
        (RV(container.exit_code), RV(container.restart_count)), rotates the log (O(log_max_size))
        and outlives the module and an SSH disconnection. It waits on the container's process,
        so it uses no CPU while the container runs.
      - Applied in place (settings rewritten, container restarted if it runs), without a new
        container.
    type: str
    choices: ["no", on-failure, always, unless-stopped]
  restart_retries:
    description:
      - The most restarts O(restart_policy) makes after the container's last start (by this
        module, by a boot, or by C(systemctl start)); after that it stays exited with its last
        exit code. V(0) - no limit.
      - systemd - the unit's C(StartLimitBurst=) over an unlimited C(StartLimitIntervalSec=).
      - Applied in place, as O(restart_policy).
    type: int
  log_max_size:
    description:
      - proot - the size at which the supervisor rotates the container's output log
        (C(logs/current.log) becomes C(current.log.1), the oldest file is deleted), such as
        V(512K) or V(10M). No line is lost or cut by a rotation. A new container gets V(1M).
      - systemd - ignored without a warning; the container's output goes to the journal, whose
        own limits apply (C(journald.conf)).
      - Applied in place, as O(restart_policy).
    type: raw
  log_max_files:
    description:
      - proot - how many log files are kept, the current one included, so the log never takes
        more than O(log_max_size) times this. A new container gets V(3).
      - systemd - ignored without a warning, as O(log_max_size).
      - Applied in place, as O(restart_policy).
    type: int
  enabled:
    description:
      - Start the container at boot.
      - systemd backend - its unit is enabled under C(machines.target).
      - proot backend - there is no service manager to do it, so the flag is stored with the
        container and the boot hook the P(armoredgate.volt.proot#role) role installs (a
        Termux:Boot script, or a command for any other boot mechanism) starts every enabled
        container that is not running.
      - Applied in place, without restarting the container.
    type: bool
  boot:
    description:
      - Run the image's init system (C(systemd-nspawn --boot)) instead of O(command) under a stub
        init (C(--as-pid2)).
      - systemd backend only.
    type: bool
  network:
    description:
      - V(host) shares the host's network, V(none) gives the container only a loopback device,
        any other value names a bridge the container is attached to (its host side is
        C(vb-<name>)).
      - proot containers always share the host's network; there only V(host) is accepted.
      - On a bridge, the host configures an application container's C(host0) after every start
        of its unit (also when systemd restarts it or starts it at boot) - link up, a fixed
        address from the lower half of the bridge's subnet (see RV(container.ip_address)), a
        default route via the bridge's address, and C(/etc/resolv.conf) with the host's upstream
        DNS servers when the image has none. A booted container (O(boot=true)) configures its own
        network; the bridge's DHCP server (the P(armoredgate.volt.systemd_host#role) role's) leases
        it an address.
    type: str
  hostname:
    description:
      - The container's host name.
      - systemd backend - its own UTS name (C(Hostname=) of systemd-nspawn).
      - proot backend - proot cannot change the name C(uname) and C(hostname) report, so it is
        emulated where programs look for it - C(/etc/hostname), an entry in C(/etc/hosts) and
        C(HOSTNAME) in the environment.
    type: str
    version_added: 0.2.0
  kernel_release:
    description:
      - Kernel release that proot reports to the guest (its C(-k) option), such as V(5.15.0).
      - Off by default. proot 5.1.0 (Debian 12) breaks C(ls) of directories with C(-k) set.
      - proot backend only.
    type: str
  stop_timeout:
    description:
      - Seconds to wait after the stop signal (O(stop_signal)) before the container's processes get
        C(SIGKILL).
      - Kept with the container; a different value is applied in place (no restart). Left out,
        the container keeps its own; a new container gets 10.
      - With the systemd backend it is also the unit's C(TimeoutStopSec=), so C(systemctl stop),
        C(systemctl restart) and a shutdown of the host stop the container the same way - every
        process of an application container gets C(SIGTERM), and C(SIGKILL) after
        O(stop_timeout); a booted container (O(boot=true)) is shut down by its own init. A stop
        already under way (the unit deactivating) is waited for, up to O(stop_timeout), before
        O(state=absent) removes anything. C(machinectl poweroff) instead goes through nspawn's
        stub init, which sends C(SIGTERM) and then C(SIGHUP) to the payload's main process and
        waits up to 90 seconds.
    type: int
  recreate:
    description:
      - Remove and create the container even when nothing drifted.
    type: bool
    default: false
  force:
    description:
      - Replace or remove a container whose records (C(config.yaml), C(state.json)) are missing or
        unreadable. Without it the module fails and names the broken file.
    type: bool
    default: false
notes:
  - Changes are made under a per-container lock (C(<data_dir>/locks/<name>.lock)), so concurrent
    runs on one host wait for each other. Records are written to a temporary file and renamed.
  - A container is created under a hidden name and renamed into place, so a failed create leaves
    nothing behind.
  - proot backend - a guest without C(/etc/resolv.conf) or C(/etc/hosts) gets the host's resolvers
    and a standard hosts file when it starts, as proot-distro does.
  - Exit codes are a shell's - the program's status, or 128+N for signal N. A payload killed by a
    signal reports 255 under systemd-nspawn, which cannot pass signals on. proot reports the
    status of the container's last process to exit normally, which for a program that leaves
    children behind may be a child's.
seealso:
  - module: armoredgate.volt.volt_container_info
"""

EXAMPLES = r"""
- name: Run a web server from an image in the store
  armoredgate.volt.volt_container:
    name: web
    image: busybox
    command: [/bin/busybox, httpd, -f, -p, "8080", -h, /srv/www]
    volumes:
      - /srv/www:/srv/www
    ports:
      - "8080"

- name: Keep a container created but stopped
  armoredgate.volt.volt_container:
    name: batch
    rootfs: /srv/rootfs/debian
    env:
      MODE: nightly
    state: stopped

- name: Give it a little longer to shut down cleanly, then remove it
  armoredgate.volt.volt_container:
    name: web
    state: absent
    stop_timeout: 30

- name: Ad hoc, from the project directory (short name through ansible.cfg)
  ansible.builtin.debug:
    msg: ansible all -m volt_container -a 'name=web state=restarted'
"""

RETURN = r"""
actions:
  description: What the module did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: [remove, create, start]
drifted:
  description:
    - Options whose value differed from the existing container's.
    - Most of them recreate the container; RV(actions) says what was done (see the module's
      description for the options applied in place).
  returned: always
  type: list
  elements: str
  sample: [env, command]
container:
  description:
    - The container after the run (in check mode, as it is now). Empty when it does not exist.
  returned: always
  type: dict
  contains:
    name:
      description: Container name.
      type: str
      sample: web
    backend:
      description: Backend managing it.
      type: str
      sample: proot
    status:
      description: V(created), V(running) or V(stopped), reconciled with the live process table.
      type: str
      sample: running
    pid:
      description: Process id of the container's root process (proot), when running.
      type: int
      sample: 4242
    image:
      description: Image it was created from.
      type: str
      sample: busybox
    rootfs:
      description: Host path of its root filesystem.
      type: str
      sample: /var/lib/volt/containers/web/rootfs
    os:
      description: C(PRETTY_NAME) from the root filesystem's os-release, if any.
      type: str
      sample: Debian GNU/Linux 12 (bookworm)
    command:
      description: The command that was last started, after entrypoint detection.
      type: list
      elements: str
      sample: [/bin/busybox, httpd, -f]
    created_at:
      description: Creation time (RFC 3339, UTC).
      type: str
    started_at:
      description: Last start time (RFC 3339, UTC).
      type: str
    stopped_at:
      description: Last stop time (RFC 3339, UTC).
      type: str
    addresses:
      description:
        - IP addresses of a running container on a bridge (systemd backend, from machined).
        - Empty for containers that share the host's network, which includes every proot container.
      type: list
      elements: str
      sample: [10.213.0.190]
    ip_address:
      description:
        - The IPv4 address of a running container on a bridge, read back from its network
          namespace (systemd backend). An application container keeps the same one across
          restarts and reboots. V(null) when it is stopped or shares the host's network.
      type: str
      sample: 10.213.0.2
    exit_code:
      description:
        - How the container's last run ended - the exit status of its program (128+N for signal
          N; see the notes). V(null) while it runs, and before it ran.
      type: int
      sample: 3
      version_added: 0.2.0
    finished_at:
      description: When the last run ended (RFC 3339, UTC).
      type: str
      version_added: 0.2.0
    exited:
      description: Whether the last run ended on its own, not by a stop.
      type: bool
      version_added: 0.2.0
    restart_count:
      description:
        - How often O(restart_policy) restarted it since its last start (proot - counted by its
          supervisor; systemd - the unit's C(NRestarts)).
      type: int
      version_added: 0.2.0
    health:
      description:
        - The O(healthcheck) of a running container - V(null) without one, or when stopped.
      type: dict
      version_added: 0.2.0
      contains:
        status:
          description: V(starting) until the first verdict, then V(healthy) or V(unhealthy).
          type: str
        failing_streak:
          description: Failed probes in a row.
          type: int
        last_exit_code:
          description: The last probe's exit code (V(null) before the first).
          type: int
        last_output:
          description: The last probe's output (stdout and stderr, at most 4 KiB).
          type: str
    config:
      description:
        - The container's effective configuration, as compared on the next run.
        - Its C(image_config) is the image's config when the container was made (see
          RV(armoredgate.volt.volt_image#module:image.config)).
      type: dict
rc:
  description: The container's exit code when it exited within O(start_grace_period) of a start.
  returned: when a start failed that way
  type: int
  sample: 3
log:
  description: The last lines of the container's output, when a start failed.
  returned: when a start failed
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armoredgate.volt.plugins.module_utils._module_runs import container_module_spec, run_container


def main():
    module = AnsibleModule(**container_module_spec())
    run_container(module)


if __name__ == "__main__":
    main()
