"""Where a scenario runs: this machine with a given proot binary, or a fleet host over SSH.

Scenarios talk to a Target only: `volt()` runs a module of the collection there through
pytest-ansible, `sh()` runs a shell snippet there to look at the real state (processes, files,
units). The same scenario therefore holds every backend to the same contract.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

BUSYBOX_IMAGE = """
set -e
image={images}/busybox
if [ ! -d "$image" ]; then
    staging=$(mktemp -d {images}/.busybox.XXXXXX)
    mkdir -p "$staging/bin" "$staging/etc" "$staging/root" "$staging/tmp" "$staging/srv/www"
    cp /bin/busybox "$staging/bin/busybox"
    for applet in $("$staging/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$staging/bin/$applet"
    done
    printf 'NAME="Volt test"\\nPRETTY_NAME="Volt test (busybox)"\\n' > "$staging/etc/os-release"
    echo 'hello from volt' > "$staging/srv/www/index.html"
    chmod 755 "$staging"
    mv "$staging" "$image"
fi
"""

# Killing proot alone would leave its guests running: kill each container's whole session.
PROOT_CLEANUP = """
for state in {data_dir}/containers/*/state.json; do
    [ -f "$state" ] || continue
    session=$(sed -n 's/.*"session": \\([0-9]*\\).*/\\1/p' "$state")
    [ -n "$session" ] && pkill -KILL -s "$session"
    pkill -KILL -f "$(dirname "$state")/rootfs"
done
"""


class Target:
    """A host plus a backend (and, for proot, a binary) that scenarios run against."""

    backend = ""

    def __init__(self, ident: str, adhoc, host: str, inventory: str, *, data_dir: str, extra: dict | None = None):
        self.id = ident
        self._adhoc = adhoc
        self.host = host
        self._inventory = inventory
        self.data_dir = data_dir
        self._extra = extra or {}

    # -- the collection ------------------------------------------------------------------------
    def volt(self, module="volt_container", check=False, diff=False, **args):
        args.setdefault("data_dir", self.data_dir)
        if module.startswith(("volt_container", "volt_exec")):  # images are shared by every backend
            args.setdefault("backend", self.backend)
            for key, value in self._extra.items():
                args.setdefault(key, value)
        manager = self._adhoc(inventory=self._inventory, check=check, diff=diff)
        self.configure(manager.options["inventory_manager"].get_host(self.host))
        result = getattr(manager[self.host], f"armoredgate.volt.{module}")(**args)
        return dict(result[self.host])

    def configure(self, host) -> None:
        """Set connection host vars (pytest-ansible freezes its CLI options on first use)."""

    # -- the host's real state -----------------------------------------------------------------
    def sh(self, script: str, check: bool = True) -> str:
        raise NotImplementedError

    def rootfs(self, name: str) -> str:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        return self.sh(f"test -e {shlex.quote(path)} && echo yes || echo no").strip() == "yes"

    def read(self, path: str) -> str:
        return self.sh(f"cat {shlex.quote(path)} 2>/dev/null || true")

    def alive(self, pid) -> bool:
        """pid exists and is not a zombie."""
        state = self.sh(f"awk '{{print $3}}' /proc/{int(pid)}/stat 2>/dev/null || true").strip()
        return state not in ("", "Z", "X")

    def descendants(self, pid) -> list[int]:
        """Every live descendant of pid, from one look at the process table."""
        table = [line.split() for line in self.sh("ps -e -o pid= -o ppid= -o stat=").splitlines()]
        children: dict[int, list[int]] = {}
        for child, parent, state in table:
            if not state.startswith("Z"):
                children.setdefault(int(parent), []).append(int(child))
        found, stack = [], [int(pid)]
        while stack:
            for child in children.get(stack.pop(), []):
                found.append(child)
                stack.append(child)
        return sorted(found)

    def snapshot(self) -> str:
        """Paths, modes, sizes and mtimes of everything the backend may write, to prove check
        mode wrote nothing."""
        paths = " ".join(shlex.quote(p) for p in self.written_paths())
        # What a running health check rewrites at each probe is the supervisor's, not the module's:
        # its files, and proot's scratch (each probe is a proot run).
        scratch = shlex.quote(os.path.join(self.data_dir, "tmp"))
        live = f"\\( -path '*/containers/*/health' -o -path {scratch} \\) -prune -o"
        return self.sh(f"find {paths} {live} -printf '%p %m %s %T@\\n' 2>/dev/null | sort; true")

    def written_paths(self) -> list[str]:
        return [self.data_dir]

    def prepare(self) -> None:
        """Put the busybox test image into this target's image store."""
        images = os.path.join(self.data_dir, "images")
        self.sh(f"mkdir -p {images}\n" + BUSYBOX_IMAGE.format(images=images))

    def cleanup(self) -> None:
        """Remove every container of the data dir, independently of the module under test."""


class LocalProot(Target):
    backend = "proot"

    @property
    def proot_path(self) -> str:
        return self._extra["proot_path"]

    @property
    def proot_options(self) -> dict:
        """The options every module call of this target gets: its proot, and for Debian's 5.1.0
        the user's acceptance of a proot that does not translate paths."""
        return dict(self._extra)

    def configure(self, host) -> None:
        host.set_variable("ansible_connection", "local")
        host.set_variable("ansible_python_interpreter", sys.executable)

    def sh(self, script: str, check: bool = True) -> str:
        result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{script!r} failed: {result.stderr}")
        return result.stdout

    def rootfs(self, name: str) -> str:
        return os.path.join(self.data_dir, "containers", name, "rootfs")

    def cleanup(self) -> None:
        self.sh(PROOT_CLEANUP.format(data_dir=self.data_dir), check=False)


class FleetHost(Target):
    """A host of the test fleet (tests/fleet/fleet), reached over SSH."""

    def __init__(self, *args, ssh_config: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._ssh_config = ssh_config

    def sh(self, script: str, check: bool = True) -> str:
        # One SSH connection per host for the whole session, as Ansible itself does.
        # (in the fleet's own directory: every fleet has a sys1, and masters must not be shared)
        control = os.path.join(os.path.dirname(self._ssh_config), "cp", "test-%C")
        multiplex = ["-o", "ControlMaster=auto", "-o", "ControlPersist=120", "-o", f"ControlPath={control}"]
        result = subprocess.run(
            ["ssh", "-F", self._ssh_config, *multiplex, self.host, script], capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{script!r} failed on {self.host}: {result.stderr}")
        return result.stdout

    def reboot(self, state_dir: str) -> subprocess.CompletedProcess:
        """Power the host off cleanly and boot it again (tests/fleet/fleet reboot)."""
        script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fleet", "fleet")
        result = subprocess.run(
            [script, "reboot", "--dir", state_dir, self.host], check=False, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result


class FleetSystemd(FleetHost):
    backend = "systemd"

    def written_paths(self) -> list[str]:
        return [self.data_dir, "/etc/systemd/nspawn", "/etc/systemd/system"]

    def rootfs(self, name: str) -> str:
        return os.path.join(self.data_dir, "containers", name)

    def cleanup(self) -> None:
        self.sh(
            "systemctl kill --kill-who=all --signal=SIGKILL 'volt-container@*' 2>/dev/null;"
            " systemctl stop 'volt-container@*' 2>/dev/null;"
            " rm -f /etc/systemd/system/machines.target.wants/volt-container@*;"
            " rm -f /etc/systemd/nspawn/*.nspawn; rm -rf /etc/systemd/system/volt-container@?*.service.d;"
            f" systemctl daemon-reload; systemctl reset-failed 2>/dev/null; rm -rf {self.data_dir}; true",
            check=False,
        )


class FleetProot(FleetHost):
    backend = "proot"

    def rootfs(self, name: str) -> str:
        return os.path.join(self.data_dir, "containers", name, "rootfs")

    def cleanup(self) -> None:
        self.sh(PROOT_CLEANUP.format(data_dir=self.data_dir) + f"rm -rf {self.data_dir}\n", check=False)
