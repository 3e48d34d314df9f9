# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""proot backend: rootless containers for Android/Termux and Linux without systemd.

Layout (shared with the Volt CLI): <data_dir>/containers/<name>/{rootfs/, config.yaml,
state.json, logs/current.log}, images under <data_dir>/images/<image>/, scratch in <data_dir>/tmp.
A running container's proot is the child of its supervisor (see _processes/_supervisor), which
also keeps exit, restarts and the rotated logs/current.log.N there.
"""

from __future__ import annotations

import collections
import os
import re
import signal
from typing import NamedTuple

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import (
    Backend,
    ContainerRecord,
    remapped_ports,
)
from ansible_collections.armoredgate.volt.plugins.module_utils._backends._launch import DEFAULT_STOP_SIGNAL, Launch
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import CorruptRecord, VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _guest_path, _records, _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_config import signal_number
from ansible_collections.armoredgate.volt.plugins.module_utils._processes import _supervisor, _trees
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import split_port

# Where proot lives when it is not on PATH: Termux's prefix, then adb-shell locations.
FALLBACK_LOCATIONS = (
    "${PREFIX}/bin/proot",
    "/data/data/com.termux/files/usr/bin/proot",
    "/data/local/tmp/proot",
    "~/proot",
)
# Host directories a host shell needs inside the probe's empty root (Linux, then Android).
PROBE_BINDS = ("/dev", "/bin", "/usr", "/lib", "/lib64", "/lib32", "/system", "/apex", "/vendor", "/linkerconfig")
# The path-translation verdict per proot binary, in the data dir (see _path_translation).
PROBE_CACHE = "proot-probe.json"
PROBE_CACHE_FORMAT = 1
# Host programs that look at paths the way a guest's programs do: coreutils' stat and ls call
# statx, which Debian's proot 5.1.0 passes to the kernel untranslated. stat first; ls -d also
# where stat is missing.
TRANSLATION_TOOLS = (("stat", ("-c", "%n")), ("ls", ("-d",)))
UNSAFE_ADVICE = (
    "Use proot >= 5.2 or Termux's proot: on Debian and Ubuntu the armoredgate.volt.proot role builds "
    "proot 5.4 from pinned source when the distribution's fails this check, and it installs a binary "
    "you supply with proot_binary_src or proot_binary_url; then point proot_path at it. Or set "
    "allow_unsafe_proot: true to run this proot anyway, knowing that programs in the container see "
    "the host's files"
)


class Session(NamedTuple):
    """A supervisor's session: its id, the supervisor's start time (what it started is no
    older), and the proot the record says it runs."""

    id: int
    since: int
    proot: str | None


def _is_ident(value: object) -> bool:
    """Whether a record's value is [process id, start time]."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value)
        and value[0] > 0
    )


# The host's resolvers: Linux's, then Termux's (Android itself has no resolv.conf).
_HOST_RESOLV_CONF = ("/etc/resolv.conf", "${PREFIX}/etc/resolv.conf", "/data/data/com.termux/files/usr/etc/resolv.conf")


def _read_host_file(path: str) -> str | None:
    path = os.path.expandvars(path)
    if "$" in path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(64 * 1024)
    except OSError:
        return None


class ProotFeatures:
    """What a proot binary can do, read from its --help (version strings lie across forks)."""

    def __init__(self, help_text: str) -> None:
        self.kill_on_exit = "--kill-on-exit" in help_text
        self.link2symlink = "--link2symlink" in help_text
        # Upstream proot >= 5.2 maps ports with `-p PORT_IN:PORT_OUT`; Termux's fork uses -p
        # for something else, so the help must describe a port mapping.
        self.port_mapping = (
            bool(re.search(r"^\s*-p\s.*(port)", help_text, re.MULTILINE | re.IGNORECASE)) and "--port" in help_text
        )

    def as_dict(self) -> dict:
        return {"kill_on_exit": self.kill_on_exit, "link2symlink": self.link2symlink, "port_mapping": self.port_mapping}


def probe_binds() -> list[str]:
    """The host directories bound into a probe's empty root: those that exist here."""
    return [path for path in (*PROBE_BINDS, os.environ.get("PREFIX", "")) if path and os.path.exists(path)]


def _under(path: str, directories: list[str]) -> bool:
    for candidate in (path, os.path.realpath(path)):
        for directory in directories:
            for top in (directory, os.path.realpath(directory)):
                if candidate == top or candidate.startswith(top.rstrip("/") + "/"):
                    return True
    return False


def translation_script(tools: list[tuple[str, list[str]]], guest: str, host: str) -> str:
    """A shell script printing '<tool> guest|host seen|missing' for each tool and path."""
    import shlex

    lines = []
    for name, argv in tools:
        command = " ".join(shlex.quote(arg) for arg in argv)
        for label, path in (("guest", guest), ("host", host)):
            lines.append(
                f"if {command} {shlex.quote(path)} >/dev/null 2>&1; "
                f"then echo '{name} {label} seen'; else echo '{name} {label} missing'; fi"
            )
    return "\n".join(lines)


def translation_verdict(
    tools: list[tuple[str, list[str]]], shown: tuple[str, str], result: tuple[int, str, str]
) -> tuple[bool | None, str]:
    """(True, "") when every tool sees the guest's file and not the host's, (False, what went
    wrong) when one does not, (None, why) when the check could not run."""
    rc, out, err = result
    seen = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 3 and words[2] in ("seen", "missing"):
            seen[(words[0], words[1])] = words[2] == "seen"
    if any((name, label) not in seen for name, _argv in tools for label in ("guest", "host")):
        return None, "the check could not run under proot: " + ((err or out).strip() or f"exit code {rc}")
    guest, host = shown
    failures = []
    for name, _argv in tools:
        if not seen[(name, "guest")]:
            failures.append(f"{name} does not see {guest}, a file of the guest's root")
        if seen[(name, "host")]:
            failures.append(f"{name} sees {host}, which exists only on the host")
    if not failures:
        return True, ""
    return False, (
        "; ".join(failures) + ": programs in the guest would see host files instead of the guest's "
        "(proot passes statx to the kernel untranslated, a defect of Debian's proot 5.1.0; proot >= 5.2 is correct)"
    )


def on_android() -> bool:
    return bool(os.environ.get("TERMUX_VERSION") or os.environ.get("ANDROID_ROOT")) or os.path.exists(
        "/system/build.prop"
    )


class ProotBackend(Backend):
    name = "proot"

    def __init__(self, runner, data_dir, settings) -> None:
        super().__init__(runner, data_dir, settings)
        self._proot: str | None = None
        self._features: ProotFeatures | None = None
        self._translation: tuple[bool | None, str] | None = None

    # -- paths -------------------------------------------------------------------------------
    def rootfs(self, name: str) -> str:
        return os.path.join(self.container_dir(name), "rootfs")

    # -- proot binary --------------------------------------------------------------------------
    def proot(self) -> str:
        if self._proot:
            return self._proot
        explicit = self.settings.get("proot_path")
        if explicit:
            if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
                raise VoltError(f"proot_path {explicit} is not an executable file", path=explicit)
            self._proot = explicit
            return explicit
        found = self.runner.which("proot")
        for location in FALLBACK_LOCATIONS:
            if found:
                break
            path = os.path.expanduser(os.path.expandvars(location))
            if "$" not in path and os.path.isfile(path) and os.access(path, os.X_OK):
                found = path
        if not found:
            raise VoltError(
                "proot was not found on PATH, in $PREFIX/bin, /data/local/tmp or ~/proot; "
                "install it (the armoredgate.volt.proot role does) or set proot_path"
            )
        self._proot = found
        return found

    def features(self) -> ProotFeatures:
        if self._features is None:
            _rc, out, err = self.runner.run([self.proot(), "--help"], check=False)
            self._features = ProotFeatures(out + err)
        return self._features

    def check_config(self, name: str, config: dict, actions: list[str]) -> None:
        for mode_suffix in [v for v in config.get("volumes") or [] if v.endswith(":ro")]:
            raise VoltError(
                f"volume {mode_suffix!r}: proot cannot make a bind read-only; drop ':ro' or use the systemd backend"
            )
        if config.get("network", "host") != "host":
            raise VoltError(
                f"network {config['network']!r}: proot containers share the host's network; "
                "use network: host or the systemd backend"
            )
        remapped = remapped_ports(config)
        if remapped and not self.features().port_mapping:
            same = remapped[0].split(":")[1]
            raise VoltError(
                f"ports {', '.join(remapped)} map a host port to a different container port, which "
                f"{self.proot()} cannot do (no port mapping in its --help; proot >= 5.2 has it). The "
                f"container shares the host's network, so use the same port on both sides, e.g. '{same}:{same}'"
            )
        root = self.source(name, config) if "create" in actions else self.rootfs(name)
        if "start" in actions:
            self.proot()
            self.check_start(root, config, check_ports="stop" not in actions)
            # Last: a run that fails on its input does not probe (nor write the probe's cache).
            self.refuse_unsafe_proot()

    # -- path translation ----------------------------------------------------------------------
    def refuse_unsafe_proot(self) -> None:
        """Refuse a proot known not to translate paths (its guests would see the host's files),
        unless the user accepted that. Callers without the option (the boot hook, the connection
        plugin: they start or enter what a module already started with this proot) pass no
        allow_unsafe_proot and are not checked."""
        allowed = self.settings.get("allow_unsafe_proot")
        if allowed is None or allowed:
            return
        safe, problem = self.path_translation()
        if safe is False:
            raise VoltError(
                f"{self.proot()} does not translate paths correctly, so it was not used: {problem}. {UNSAFE_ADVICE}",
                proot=self.proot(),
            )

    def path_translation(self) -> tuple[bool | None, str]:
        """The verdict on this proot binary: from the data dir's cache when it is of this very
        binary (path, mtime, size), else probed (and cached, except in check mode)."""
        if self._translation is None:
            proot = self.proot()
            identity = self._binary_identity(proot)
            cached = self._cached_translation(proot, identity)
            if cached is None:
                cached = self.check_translation(proot, (None,))[None]
                # A verdict is kept once known; one allowed to use an unsafe proot never probes.
                if cached[0] is not None and identity and not self.settings.get("check_mode"):
                    self._cache_translation(proot, identity, cached)
            self._translation = cached
        return self._translation

    @staticmethod
    def _binary_identity(proot: str) -> dict | None:
        try:
            info = os.stat(proot)
        except OSError:
            return None
        return {"mtime_ns": info.st_mtime_ns, "size": info.st_size}

    def _cache_path(self) -> str:
        return os.path.join(self.data_dir, PROBE_CACHE)

    def _read_cache(self) -> dict:
        try:
            cache = _records.read_json(self._cache_path())
        except (OSError, VoltError):
            return {}
        binaries = cache.get("binaries") if cache.get("format") == PROBE_CACHE_FORMAT else None
        return binaries if isinstance(binaries, dict) else {}

    def _cached_translation(self, proot: str, identity: dict | None) -> tuple[bool | None, str] | None:
        entry = self._read_cache().get(proot)
        if not identity or not isinstance(entry, dict):
            return None
        if any(entry.get(key) != value for key, value in identity.items()):
            return None  # another binary at the same path
        safe, problem = entry.get("path_translation_safe"), entry.get("path_translation_problem")
        return (safe, problem) if isinstance(safe, bool) and isinstance(problem, str) else None

    def _cache_translation(self, proot: str, identity: dict, verdict: tuple[bool | None, str]) -> None:
        binaries = self._read_cache()
        binaries[proot] = dict(identity, path_translation_safe=verdict[0], path_translation_problem=verdict[1])
        _records.private_dir(self.data_dir)
        _records.write_json(self._cache_path(), {"format": PROBE_CACHE_FORMAT, "binaries": binaries})

    def translation_tools(self, binds: list[str]) -> list[tuple[str, list[str]]]:
        """The host's stat and ls as the probe's guest reaches them (through a bind)."""
        tools = []
        for name, args in TRANSLATION_TOOLS:
            path = self.runner.which(name)
            if path and _under(path, binds):
                tools.append((name, [path, *args]))
        return tools

    def _scratch_parent(self, binds: list[str]) -> str:
        """A writable host directory outside every bind: what is made there exists only on the host."""
        import tempfile

        for directory in (tempfile.gettempdir(), os.path.expanduser("~"), self.data_dir):
            if os.path.isdir(directory) and os.access(directory, os.W_OK) and not _under(directory, binds):
                return directory
        raise VoltError("no writable directory outside " + ", ".join(binds) + " for the proot probe")

    def check_translation(self, proot: str, releases: tuple) -> dict:
        """{release: (safe, problem)}: does the host's stat (and ls) under proot, in an empty root
        with the host's program directories bound in, see a file of that root and not a file
        that exists only on the host? A release other than None runs proot with -k release."""
        import shutil
        import tempfile

        binds = probe_binds()
        tools = self.translation_tools(binds)
        if not tools:
            why = "neither stat nor ls is in a directory bound into the probe's root: paths were not checked"
            return dict.fromkeys(releases, (None, why))
        shell = self.runner.which("sh") or "/bin/sh"
        # The root itself lies outside every bind, so its host path is a host-only path in the guest.
        root = tempfile.mkdtemp(prefix="volt-proot-probe-", dir=self._scratch_parent(binds))
        try:
            token = os.path.basename(root).rsplit("-", 1)[-1]
            guest, host = f"/volt-guest-only-{token}", os.path.join(root, f"volt-host-only-{token}")
            for path in (os.path.join(root, guest.lstrip("/")), host):
                with open(path, "w", encoding="utf-8"):
                    pass
            os.mkdir(os.path.join(root, ".tmp"))
            env = {"PROOT_NO_SECCOMP": "1", "PROOT_TMP_DIR": os.path.join(root, ".tmp")}
            script = translation_script(tools, guest, host)
            # Named without their random parts, so that two probes report the same problem.
            shown = (
                "/volt-guest-only-*",
                os.path.join(os.path.dirname(root), "volt-proot-probe-*", "volt-host-only-*"),
            )
            verdicts = {}
            for release in releases:
                argv = [proot, *(["-k", release] if release else []), "-r", root, "-w", "/"]
                for path in binds:
                    argv += ["-b", path]
                try:
                    result = self.runner.run([*argv, shell, "-c", script], check=False, env=env)
                except VoltError as exc:  # proot cannot be run at all: starting it says so
                    verdicts[release] = (None, f"the check could not run: {exc.msg}")
                    continue
                verdicts[release] = translation_verdict(tools, shown, result)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return verdicts

    # -- records -------------------------------------------------------------------------------
    def _read(self, name: str) -> tuple[dict, dict] | None:
        directory = self.container_dir(name)
        if not os.path.isdir(directory):
            return None
        for record in ("config.yaml", "state.json"):
            if not os.path.isfile(os.path.join(directory, record)):
                raise CorruptRecord(
                    f"corrupt container {name}: {record} is missing", path=os.path.join(directory, record)
                )
        config = _records.read_config(os.path.join(directory, "config.yaml"))
        state = _records.read_json(os.path.join(directory, "state.json"))
        problem = self._record_problem(config, state)
        if problem:
            record, what = problem
            path = os.path.join(directory, record)
            raise CorruptRecord(f"corrupt container {name}: {record}: {what}", path=path)
        # The directory names the container: a record's own name (and the rootfs derived from it)
        # must never point the proofs below at another container's processes.
        return config, dict(state, name=name)

    @staticmethod
    def _record_problem(config: dict, state: dict) -> tuple[str, str] | None:
        """(record, what is wrong) for values that would break reading or signalling, else None."""
        if not isinstance(config.get("options", {}), dict):
            return "config.yaml", "options is not a mapping"
        for key in ("pid", "pid_start_time", "session"):
            value = state.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                return "state.json", f"{key} {value!r} is not a process id or start time"
        for key in ("status", "boot_id", "proot"):
            if state.get(key) is not None and not isinstance(state[key], str):
                return "state.json", f"{key} {state[key]!r} is not a string"
        supervisor = state.get("supervisor")
        if supervisor is not None and not _is_ident(supervisor):
            return "state.json", f"supervisor {supervisor!r} is not [process id, start time]"
        return None

    def _write_state(self, name: str, state: dict) -> None:
        _records.write_json(os.path.join(self.container_dir(name), "state.json"), state)

    def _running(self, state: dict) -> bool:
        if "supervisor" in state:  # between a run and its restart no proot runs
            return self._supervisor(state) is not None
        return self._proven(state) is not None

    def _supervisor(self, state: dict) -> _trees.Ident | None:
        """The container's supervisor as (pid, start time), if the record proves it runs: its
        start time and the boot match the record, and its command line is the supervisor of
        this container's directory."""
        if state.get("status") != "running" or state.get("boot_id") != _trees.boot_id():
            return None
        pid, started = state["supervisor"]
        if not _trees.is_alive(pid, started):
            return None
        return (pid, started) if _supervisor.is_supervisor(_trees.cmdline(pid), self._dir_of(state)) else None

    @staticmethod
    def _session(state: dict) -> Session | None:
        """What a supervisor started is found in its session (see _session_members)."""
        if "supervisor" not in state or not state.get("session"):
            return None
        return Session(state["session"], state["supervisor"][1], state.get("proot"))

    def _dir_of(self, state: dict) -> str:
        return self.container_dir(state["name"])

    def _supervised_proot(self, state: dict, supervisor: _trees.Ident) -> _trees.Ident | None:
        """The proot the supervisor runs now: its child, the recorded proot on this rootfs."""
        pids = _trees.children(supervisor[0])
        table = _trees.processes()
        if pids is None:  # no /proc/<pid>/task/<pid>/children: find them by parent
            pids = [proc.pid for proc in table.values() if proc.ppid == supervisor[0]]
        for pid in pids:
            proc = table.get(pid)
            argv = _trees.cmdline(pid) if proc is not None and proc.started >= supervisor[1] else None
            if argv and argv[0] == state.get("proot") and self._on_rootfs(argv, state["name"]):
                return proc.ident
        return None

    def _proven(self, state: dict) -> _trees.Ident | None:
        """The container's proot as (pid, start time), if the record proves it is running: the
        child of its proven supervisor, or (a record of an earlier version, without one) the
        pid's start time and the boot match the record, and its command line is the recorded
        proot on this container's rootfs. None otherwise: then nothing may be signalled."""
        if "supervisor" in state:
            supervisor = self._supervisor(state)
            return self._supervised_proot(state, supervisor) if supervisor else None
        pid, started, proot = state.get("pid"), state.get("pid_start_time"), state.get("proot")
        if state.get("status") != "running" or not pid or started is None or not proot:
            return None
        if state.get("boot_id") != _trees.boot_id() or not _trees.is_alive(pid, started):
            return None
        argv = _trees.cmdline(pid)
        if not argv or argv[0] != proot or not self._on_rootfs(argv, state["name"]):
            return None
        return pid, started

    def _on_rootfs(self, argv: list[str], name: str) -> bool:
        """True if proot's argv runs this container's rootfs (guest_argv passes `-r <rootfs>`
        before the guest command, so the first -r is proot's own)."""
        rootfs = self.rootfs(name)
        for index, arg in enumerate(argv[1:], 1):
            if arg in ("-r", "--rootfs"):
                value = argv[index + 1] if index + 1 < len(argv) else ""
            elif arg.startswith("--rootfs="):
                value = arg.split("=", 1)[1]
            else:
                continue
            return value == rootfs or os.path.realpath(value) == os.path.realpath(rootfs)
        return False

    def _doubt(self, name: str, state: dict) -> str | None:
        """Why a record that says running cannot be trusted to name the container's processes,
        or None if it can (its proot has exited, or the pids are of an earlier boot)."""
        pid, started = state.get("pid"), state.get("pid_start_time")
        if state.get("boot_id") is not None and state.get("boot_id") != _trees.boot_id():
            return None
        if "supervisor" in state:
            pid, started = state["supervisor"]
            if _trees.is_alive(pid, started) and self._supervisor(state) is None:
                return (
                    f"container {name}: pid {pid} of state.json is not this container's supervisor: "
                    "treated as stopped, nothing was signalled"
                )
            return None
        if started is None:
            return (
                f"container {name}: state.json records pid {pid} without its start time (a record of "
                "the Volt CLI or an older version), so that pid cannot be proven to be the container's: "
                "treated as stopped, nothing was signalled"
            )
        if _trees.is_alive(pid, started) and self._proven(state) is None:
            return (
                f"container {name}: pid {pid} of state.json is not the recorded proot running this "
                "container's rootfs: treated as stopped, nothing was signalled"
            )
        return None

    def _leftovers(self, name: str, state: dict) -> _trees.Ident | None:
        """(dead proot pid, its start time) of a record proven at its start whose proot is gone:
        its guests may still run untraced. None when there is nothing to look for."""
        pid, started = state["supervisor"] if "supervisor" in state else (state.get("pid"), state.get("pid_start_time"))
        if state.get("status") != "running" or not pid or started is None:
            return None
        if state.get("boot_id") != _trees.boot_id() or self._doubt(name, state):
            return None
        if "supervisor" in state:  # its proot may outlive it (a kill -9): ended with the rest
            return None if self._supervisor(state) else (0, started)
        return None if _trees.is_alive(pid, started) else (pid, started)

    def _orphans(self, name: str, table: dict, proot: _trees.Ident) -> set[_trees.Ident]:
        """Guests a dead proot left behind: this user's untraced processes, started after that
        proot, that run a program of this container's rootfs or that proot's loader."""
        rootfs = self.rootfs(name)
        tmp = os.path.join(self.data_dir, "tmp")
        loader = "prooted-%d-" % proot[0]
        prefixes = tuple(
            {rootfs + "/", os.path.realpath(rootfs) + "/"}
            | {os.path.join(tmp, loader), os.path.join(os.path.realpath(tmp), loader)}
        )
        uid, me = os.getuid(), os.getpid()
        found = set()
        for proc in table.values():
            if proc.uid != uid or proc.tracer or proc.started < proot[1] or proc.pid in (me, proot[0]):
                continue
            if any(path.startswith(prefixes) for path in _trees.mapped_files(proc.pid)):
                found.add(proc.ident)
        return found

    def _proots_of(self, name: str) -> set[_trees.Ident]:
        """This user's proot processes running this container's rootfs, found by their command
        line: for records too broken to name them."""
        known = set()
        try:
            known.add(self.proot())
        except VoltError:
            pass
        uid = os.getuid()
        found = set()
        for proc in _trees.processes().values():
            argv = _trees.cmdline(proc.pid) if proc.uid == uid else None
            if argv and (argv[0] in known or os.path.basename(argv[0]) == "proot") and self._on_rootfs(argv, name):
                found.add(proc.ident)
        return found

    def _end(
        self,
        name: str,
        proots: set[_trees.Ident],
        dead: _trees.Ident | None,
        timeout: float,
        stop_signal: str = DEFAULT_STOP_SIGNAL,
        *,
        session: Session | None = None,
    ) -> str:
        """End the guests of the live proots (traced by them, or their descendants), then the
        proots, and the untraced guests a dead proot left behind. A stop signal other than
        SIGTERM goes first to the container's main process alone (the one proot started).
        session: a supervisor's (see _session); what is left of it goes too."""
        first = None
        if stop_signal != DEFAULT_STOP_SIGNAL and len(proots) == 1:
            main = self._main_guest(next(iter(proots)))
            if main is not None:
                first = (main, signal_number(stop_signal))

        def collect() -> tuple[set[_trees.Ident], set[_trees.Ident]]:
            table = _trees.processes()
            members: set[_trees.Ident] = set()
            live = {proot for proot in proots if proot[0] in table and table[proot[0]].started == proot[1]}
            helpers: set[_trees.Ident] = set()
            if session is not None:
                found, helpers, strays = self._session_members(name, table, session)
                live |= found
                members |= strays
            for proot in live:
                members |= _trees.traced_tree(table, proot)
            if dead is not None:
                members |= self._orphans(name, table, dead)
            return members, live | helpers

        return _trees.end_group(collect, timeout, first)

    def _session_members(
        self, name: str, table: dict, session: Session
    ) -> tuple[set[_trees.Ident], set[_trees.Ident], set[_trees.Ident]]:
        """What runs in a supervisor's session, proven by command line: (the recorded proot on
        this rootfs, the supervisor and its pump, other children of theirs such as a backoff
        sleep)."""
        directory, uid = self.container_dir(name), os.getuid()
        proots, helpers, others = set(), set(), set()
        for proc in table.values():
            if proc.session != session.id or proc.started < session.since or proc.uid != uid:
                continue
            argv = _trees.cmdline(proc.pid)
            if _supervisor.is_supervisor(argv, directory):
                helpers.add(proc.ident)
            elif argv and argv[0] == session.proot and self._on_rootfs(argv, name):
                proots.add(proc.ident)
            else:
                others.add(proc)
        parents = {pid for pid, _started in helpers}
        return proots, helpers, {proc.ident for proc in others if proc.ppid in parents}

    def _supervisors_of(self, name: str) -> set[_trees.Ident]:
        """This user's supervisor processes of this container, found by their command line: for
        records too broken to name them."""
        directory, uid = self.container_dir(name), os.getuid()
        return {
            proc.ident
            for proc in _trees.processes().values()
            if proc.uid == uid and _supervisor.is_supervisor(_trees.cmdline(proc.pid), directory)
        }

    @staticmethod
    def _main_guest(proot: _trees.Ident) -> _trees.Ident | None:
        """The guest proot started (its child, traced by it), if it still runs."""
        table = _trees.processes()
        children = [
            proc
            for proc in table.values()
            if proc.ppid == proot[0] and proc.tracer == proot[0] and proc.started >= proot[1]
        ]
        return min(children, key=lambda proc: proc.started).ident if children else None

    def _stopped_state(self, state: dict, note: str | None = None, exited: bool = False) -> dict:
        """The state of a container that no longer runs: stopped by Volt, or exited (on its own)."""
        stopped = dict(state, status="stopped", pid=0, exited=exited)
        for key in ("pid_start_time", "session", "supervisor"):
            stopped.pop(key, None)
        stopped["stopped_at"] = _records.utc_now()
        if note:
            stopped["note"] = note
        return stopped

    def inspect(self, name: str, persist: bool = False) -> ContainerRecord | None:
        records = self._read(name)
        if records is None:
            return None
        config, state = records
        if state.get("status") == "running" and not self._running(state):
            note = self._doubt(name, state)
            if note:
                self.runner.warn(note)
            leftovers = self._leftovers(name, state)
            if persist and leftovers:
                # proot (or its supervisor) is gone; guests left behind run untraced, outside
                # their rootfs, and a proot without its supervisor runs unwatched: end them.
                self._end(name, set(), leftovers, 0, session=self._session(state))
            state = self._stopped_state(state, note, exited=True)
            if persist:
                self._write_state(name, state)
        rootfs = self.rootfs(name)
        proot = self._proven(state) if state.get("status") == "running" else None
        exit_code, finished_at = (None, None) if proot else self._exit_status(name)
        return ContainerRecord(
            name=name,
            backend=self.name,
            status=state.get("status", "created"),
            config=config.get("options", {}),
            pid=proot[0] if proot else None,
            rootfs=rootfs,
            os=_rootfs.os_release(rootfs),
            command=state.get("command"),
            created_at=state.get("created_at"),
            started_at=state.get("started_at"),
            stopped_at=state.get("stopped_at"),
            exit_code=exit_code,
            finished_at=finished_at,
            exited=bool(state.get("exited")),
            restart_count=_supervisor.read_count(self.container_dir(name)),
            health=self._health(name, config.get("options", {})) if state.get("status") == "running" else None,
        )

    def _health(self, name: str, options: dict) -> dict | None:
        if not options.get("healthcheck"):
            return None
        return _supervisor.read_health(self.container_dir(name)) or dict(_supervisor.NO_PROBE_YET)

    def list(self) -> list[ContainerRecord]:
        return self._survey(self._container_names())

    def stored_configs(self) -> dict[str, dict]:
        configs = {}
        for name in self._container_names():
            try:
                options = _records.read_config(os.path.join(self.container_dir(name), "config.yaml")).get("options")
            except (OSError, VoltError):
                continue
            if isinstance(options, dict):
                configs[name] = options
        return configs

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self, name: str, config: dict) -> None:
        # Only this user runs proot here: its scratch directory is private too.
        source, final = self._new_container(name, config, os.path.join(self.data_dir, "tmp"))
        with _rootfs.staged(self.containers_dir, name, 0o700) as staging:
            os.mkdir(os.path.join(staging, "rootfs"), 0o755)
            os.mkdir(os.path.join(staging, "logs"), 0o700)
            _rootfs.clone_tree(self.runner, source, os.path.join(staging, "rootfs"))
            # proot cannot raise privileges, so setuid/setgid bits do nothing inside; on the host
            # they would let anyone who reaches the tree run an image's program as its owner.
            _rootfs.sanitize_tree(os.path.join(staging, "rootfs"), strip_setid=True)
            _records.write_config(
                os.path.join(staging, "config.yaml"),
                {
                    "name": name,
                    "image": config.get("image"),
                    "rootfs": os.path.join(final, "rootfs"),
                    "options": config,
                },
            )
            _records.write_json(
                os.path.join(staging, "state.json"),
                {
                    "name": name,
                    "status": "created",
                    "pid": 0,
                    "created_at": _records.utc_now(),
                },
            )
            os.rename(staging, final)

    def update(self, name: str, config: dict) -> None:
        """Options applied in place (enabled): only the stored config changes."""
        path = os.path.join(self.container_dir(name), "config.yaml")
        stored = _records.read_config(path)
        _records.write_config(path, dict(stored, options=config))

    def remove(self, name: str, stop_timeout: float) -> None:
        directory = self.container_dir(name)
        try:
            self.stop(name, stop_timeout)
        except CorruptRecord:
            pass
        # Whatever still runs on this rootfs (a record too broken to name it, a volt_exec) ends
        # before its files go: found by proof, a supervisor of this container's directory (first,
        # so that it restarts nothing), a proot of this user with this rootfs.
        for supervisor in self._supervisors_of(name):
            _trees.send(supervisor, signal.SIGKILL)
        proots = self._proots_of(name)
        if proots:
            self._end(name, proots, min(proots, key=lambda proot: proot[1]), stop_timeout)
        _rootfs.remove_aside(directory, name)

    def guest_argv(
        self,
        rootfs: str,
        config: dict,
        command: list[str],
        identity: tuple[int, int] = (0, 0),
        kill_on_exit: bool = True,
    ) -> list[str]:
        """The proot command line for a guest command; start and exec share it. identity is
        the (uid, gid) the guest sees (proot fakes it; the processes stay the host user's).
        kill_on_exit: when the command ends, so does everything it started (where proot can)."""
        features = self.features()
        argv = [
            self.proot(),
            "-r",
            rootfs,
            *(["-0"] if identity == (0, 0) else ["-i", "%d:%d" % identity]),
            "-w",
            config.get("workdir") or "/",
            "-b",
            "/dev",
            "-b",
            "/proc",
            "-b",
            "/sys",
            "-b",
            "/dev/urandom:/dev/random",
        ]
        if config.get("kernel_release"):
            argv += ["-k", config["kernel_release"]]
        if features.kill_on_exit and kill_on_exit:
            argv.append("--kill-on-exit")
        if features.link2symlink and on_android():  # SELinux forbids hard links there
            argv.append("--link2symlink")
        for port in config.get("ports") or []:
            host, guest, _protocol = split_port(port)  # proot maps the port of bind(), whatever the protocol
            if host != guest:
                argv += ["-p", f"{guest}:{host}"]
        for volume in config.get("volumes") or []:
            argv += ["-b", volume]
        return argv + list(command)

    def backend_env(self) -> dict[str, str]:
        # proot reads these itself; its guests inherit them.
        return {"PROOT_TMP_DIR": os.path.join(self.data_dir, "tmp"), "PROOT_NO_SECCOMP": "1"}

    def guest_env(self, name: str, config: dict, home: str = "/root") -> dict[str, str]:
        env = super().guest_env(name, config, home)
        if config.get("hostname"):
            env.setdefault("HOSTNAME", config["hostname"])  # what shells show; uname stays the host's
        return env

    def start(self, name: str) -> None:
        records = self._read(name)
        if records is None:
            raise VoltError(f"container {name} does not exist in {self.data_dir} (backend {self.name})")
        config, state = records
        if self._running(state):
            return
        options = config.get("options", {})
        rootfs = self.rootfs(name)
        launch = Launch(options, rootfs)
        if not launch.argv:
            looked_for = ", ".join(candidate[0] for candidate in _rootfs.ENTRYPOINT_CANDIDATES)
            raise VoltError(
                f"container {name}: no entrypoint found in its rootfs (looked for {looked_for}); set command"
            )
        command = launch.argv
        self._make_mount_points(rootfs, options)
        self._network_files(rootfs, options)
        uid, gid, home = self.exec_user(rootfs, launch.user) if not launch.as_root else (0, 0, "/root")
        argv = self.guest_argv(rootfs, dict(options, workdir=launch.workdir), command, (uid, gid))
        log_path = os.path.join(self.container_dir(name), "logs", "current.log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(log_fd, "a", encoding="utf-8") as log:
            log.write(
                "[volt] Container {} starting at {}\n[volt] proot={}\n[volt] rootfs={}\n[volt] entrypoint={}\n".format(
                    name, _records.utc_now(), argv[0], rootfs, " ".join(command)
                )
            )
        directory = self.container_dir(name)
        try:
            os.unlink(self._exit_path(name))  # the last run's; the supervisor writes each run's
        except FileNotFoundError:
            pass
        _supervisor.prepare(directory)
        health = None
        if options.get("healthcheck"):
            check = options["healthcheck"]
            probe = self.guest_argv(rootfs, dict(options, workdir=launch.workdir), check["test"], (uid, gid))
            _supervisor.write_probe(directory, probe)
            shell = self.runner.which("sh") or "/bin/sh"
            signum = signal_number(launch.stop_signal)
            restart = bool(options.get("restart_on_unhealthy"))
            health = _supervisor.health_settings(check, restart, signum, self._host_tool("timeout"), shell)
        supervisor_argv = _supervisor.argv(
            self.runner.which("sh") or "/bin/sh",
            directory,
            argv,
            policy=options.get("restart_policy") or "no",
            retries=options.get("restart_retries") or 0,
            max_size=options.get("log_max_size") or 1 << 20,
            max_files=options.get("log_max_files") or 3,
            sleep=self._host_tool("sleep"),
            mv=self._host_tool("mv"),
            log_size=os.stat(log_path).st_size,
            health=health,
        )
        pid = _trees.daemonize(supervisor_argv, self.guest_env(name, options, home), log_path)
        started = _trees.start_time(pid)
        state = dict(
            state,
            status="running" if started is not None else "stopped",
            supervisor=[pid, started or 0],
            session=_trees.session_of(pid) or 0,  # daemonize's: its leader exits at once
            pid=0,
            boot_id=_trees.boot_id(),
            started_at=_records.utc_now(),
            command=list(command),
            proot=argv[0],
        )
        for key in ("note", "exited", "pid_start_time"):  # about the last run only
            state.pop(key, None)
        self._write_state(name, state)
        self._wait_for_proot(dict(state, name=name))

    def _host_tool(self, program: str) -> str:
        path = self.runner.which(program)
        if not path:
            raise VoltError(f"the container's supervisor needs the host's {program}, which is not on PATH")
        return path

    def _wait_for_proot(self, state: dict, timeout: float = 5.0) -> None:
        """Until the supervisor's child has become proot, or the supervisor has ended: a start
        returns with the container's proot findable (exec, stop)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            supervisor = self._supervisor(state)
            if supervisor is None or self._supervised_proot(state, supervisor):
                return
            time.sleep(0.01)

    @staticmethod
    def _make_mount_points(rootfs: str, options: dict) -> None:
        """Where a volume's guest path is missing, make it (proot would make it with mode 0000,
        and a bind whose host path is missing it drops with only a warning: check_start refuses
        that before a start)."""
        for volume in options.get("volumes") or []:
            host, guest = volume.split(":")[:2]
            if not os.path.exists(host):  # proot would drop the bind with only a warning
                raise VoltError(f"volume {volume!r}: the host path {host} does not exist", path=host)
            try:
                _guest_path.make_mount_point(rootfs, guest, directory=os.path.isdir(host))
            except OSError as exc:
                raise VoltError(
                    f"volume {volume!r}: cannot make its mount point {guest} in the container: {exc}"
                ) from None

    @staticmethod
    def _network_files(rootfs: str, options: dict) -> None:
        """What a guest needs to resolve names, as proot-distro gives it: the host's resolvers
        and a hosts file when the image has none, and the hostname option's name in
        /etc/hostname and /etc/hosts (proot cannot change the name uname reports)."""
        hostname = options.get("hostname")
        resolvers = next(
            (text for text in map(_read_host_file, _HOST_RESOLV_CONF) if text and "nameserver" in text), None
        )
        if resolvers:
            _guest_path.write_file(rootfs, "/etc/resolv.conf", resolvers, replace=False)
        if hostname:
            _guest_path.write_file(rootfs, "/etc/hostname", hostname + "\n", replace=True)
        current = _guest_path.read_text(rootfs, "/etc/hosts")
        if current is None:
            hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            _guest_path.write_file(
                rootfs, "/etc/hosts", hosts + (f"127.0.1.1\t{hostname}\n" if hostname else ""), False
            )
        elif hostname and hostname not in current.split():
            _guest_path.write_file(rootfs, "/etc/hosts", current.rstrip("\n") + f"\n127.0.1.1\t{hostname}\n", True)

    def _exit_path(self, name: str) -> str:
        """Where the supervisor writes the exit status of the container's last run."""
        return os.path.join(self.container_dir(name), "exit")

    def _exit_status(self, name: str) -> tuple[int | None, str | None]:
        """(exit code, finish time) of the container's last run, once it has ended."""
        try:
            fd = os.open(self._exit_path(name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None, None
        with os.fdopen(fd, encoding="ascii", errors="replace") as handle:
            text = handle.read(32).strip()
            finished = os.fstat(handle.fileno()).st_mtime
        if not text.isdigit():
            return None, None  # being written, or not the supervisor's
        return int(text), _records.utc_time(finished)

    exec_reports_status = True

    def exec_command(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: str | None = None,
        user: str | None = None,
        env: dict | None = None,
        status_fd: int | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """status_fd: the guest's /bin/sh runs the command and writes its exit status to that
        fd as it ends, and nothing is killed at its end: proot goes on tracing (so translating
        the paths of) what the command left in the background until that ends or the container
        stops. Without /bin/sh in the guest, what it left behind ends with it (exec_detached)."""
        records = self._read(name)
        if records is None or self._proven(records[1]) is None:
            raise self.cannot_enter(name)
        self.refuse_unsafe_proot()
        options = records[0].get("options", {})
        rootfs = self.rootfs(name)
        uid, gid, home = self.exec_user(rootfs, user, options)
        exec_options = dict(options, workdir=cwd or Launch(options).workdir)
        environment = {**self.guest_env(name, options, home), **(env or {})}
        self.exec_detached = status_fd is not None and _rootfs.is_executable_file(rootfs, "/bin/sh")
        if not self.exec_detached:
            return self.guest_argv(rootfs, exec_options, list(argv), (uid, gid)), environment
        # The status is written by the shell once the command has exited, to an fd the command
        # itself does not get (its background children cannot fake or hold it). dash takes only
        # fds 0-9 in redirections: a higher one is reached by its /proc path (and stays open in
        # the command, which is harmless: the status is read, not the pipe's end).
        fd = int(status_fd)
        report = f'"$@" {fd}>&-; echo "$?" >&{fd}' if fd <= 9 else f'"$@"; echo "$?" > /proc/self/fd/{fd}'
        command = ["/bin/sh", "-c", report, "volt-exec", *argv]
        return self.guest_argv(rootfs, exec_options, command, (uid, gid), kill_on_exit=False), environment

    def stop(self, name: str, timeout: float) -> None:
        records = self._read(name)
        if records is None:
            return
        _config, state = records
        if state.get("status") != "running":
            return
        # Only proven processes are signalled: the proot the record names, its guests (traced by
        # it, so also those that setsid or double-fork away), and guests a dead proot left behind.
        # pids of an earlier boot mean nothing.
        supervisor = self._supervisor(state) if "supervisor" in state else None
        if supervisor:
            _trees.send(supervisor, signal.SIGTERM)  # first: it restarts nothing from now on
        proven, leftovers = self._proven(state), self._leftovers(name, state)
        note = None if proven or supervisor else self._doubt(name, state)
        if note:
            self.runner.warn(note)
        if proven or leftovers or supervisor:
            stop_signal = Launch(records[0].get("options", {})).stop_signal
            dead = proven or leftovers or (0, supervisor[1])
            self._end(name, {proven} if proven else set(), dead, timeout, stop_signal, session=self._session(state))
        if proven or supervisor:
            # What volt_exec and the connection left running in the background (their proots
            # trace it on this rootfs) ends with the container.
            exec_proots = self._proots_of(name)
            if exec_proots:
                self._end(name, exec_proots, None, timeout)
        self._write_state(name, self._stopped_state(state, note))

    def logs(self, name: str, lines: int) -> list[str]:
        """The last lines of the container's output, across the files its supervisor rotated
        (current.log, then current.log.1, ...: newest first)."""
        if not lines:
            return []
        base = os.path.join(self.container_dir(name), _supervisor.LOG)
        found: list[str] = []
        for index in range(100):  # log_max_files is at most 100
            try:
                fd = os.open(f"{base}.{index}" if index else base, os.O_RDONLY | os.O_NOFOLLOW)
            except FileNotFoundError:
                if index:
                    break
                continue
            except OSError:
                break
            with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
                tail = [line.rstrip("\n") for line in collections.deque(handle, maxlen=lines)]
            found = tail + found
            if len(found) >= lines:
                break
        return found[-lines:]

    # -- host check ----------------------------------------------------------------------------
    def probe(self) -> dict:
        """What this host's proot is and whether it really works: a shell from the host runs in
        an empty root (host program directories bound in) and writes a file there; then the same
        with -k, which Debian's proot 5.1.0 breaks (every stat fails with EINVAL); then the host's
        stat and ls compare a guest-only and a host-only path, with and without -k. Always
        probed afresh: nothing is read from or written to the cache."""
        import shutil
        import tempfile

        proot = self.proot()
        _rc, banner, banner_err = self.runner.run([proot, "-V"], check=False)
        version = re.search(r"(\d+\.\d+(?:\.\d+)?)\s*$", (banner + banner_err).strip(), re.MULTILINE)
        shell = self.runner.which("sh") or "/bin/sh"
        root = tempfile.mkdtemp(prefix="volt-proot-probe-")
        try:
            os.mkdir(os.path.join(root, ".tmp"))
            binds = probe_binds()
            base = [proot, "-r", root, "-w", "/"]
            for path in binds:
                base += ["-b", path]
            env = {"PROOT_NO_SECCOMP": "1", "PROOT_TMP_DIR": os.path.join(root, ".tmp")}
            rc, out, err = self.runner.run(
                [*base, shell, "-c", "echo volt-probe > /volt-probe && cat /volt-probe"], check=False, env=env
            )
            landed = os.path.isfile(os.path.join(root, "volt-probe"))
            works = rc == 0 and out.strip() == "volt-probe" and landed
            problem = "" if works else (err or out).strip() or f"exit code {rc}, probe file written: {landed}"
            release = "6.6.6-volt-probe"
            rc_k, out_k, _err_k = self.runner.run(
                [*base[:1], "-k", release, *base[1:], shell, "-c", "ls / >/dev/null && uname -r"], check=False, env=env
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)
        translation = self.check_translation(proot, (None, release))
        safe, translation_problem = translation[None]
        return {
            "path": proot,
            "version": version.group(1) if version else None,
            "features": self.features().as_dict(),
            "works": works,
            "problem": problem,
            "path_translation_safe": safe is True,
            "path_translation_problem": translation_problem,
            "path_translation_tools": [name for name, _argv in self.translation_tools(binds)],
            "kernel_release_safe": works and rc_k == 0 and out_k.strip() == release and translation[release][0] is True,
            "android": on_android(),
            "termux": bool(os.environ.get("TERMUX_VERSION")),
            "data_dir": self.data_dir,
        }
