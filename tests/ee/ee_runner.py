"""Helpers of scripts/execution-environment for ansible-runner's private data directory.

inventory FLEET_INVENTORY PORTS OUT
    Writes OUT, the fleet's inventory as the execution environment sees it: the same groups,
    hosts and variables, but every host reached by plain SSH on ADDRESS:PORT (PORTS is a file
    of lines "HOST ADDRESS PORT"), with the fleet's known_hosts under the host's own name, and
    proot_source_src pointing at the copy in the project. Prints the original
    proot_source_src (empty if none).

stats ARTIFACT_DIR
    Prints the play recap of the ansible-runner job in ARTIFACT_DIR (from its
    playbook_on_stats event) as JSON: {"HOST": {"ok": N, "changed": N, ...}}.
"""

from __future__ import annotations

import json
import pathlib
import sys

import yaml

PROJECT = "/runner/project"


def _walk(group: dict, visit) -> None:
    visit(group)
    for child in (group.get("children") or {}).values():
        if child:
            _walk(child, visit)


def inventory(fleet_inventory: str, ports_file: str, out: str) -> None:
    data = yaml.safe_load(pathlib.Path(fleet_inventory).read_text(encoding="utf-8"))
    ports = {}
    for line in pathlib.Path(ports_file).read_text(encoding="utf-8").splitlines():
        if line.strip():
            host, address, port = line.split()
            ports[host] = (address, int(port))
    root = data["all"]
    root_vars = root.setdefault("vars", {})
    # The fleet's own SSH settings name files of this machine (ssh_config, its ProxyCommand,
    # the control path): the execution environment has none of them.
    for key in ("ansible_ssh_common_args", "ansible_control_path_dir"):
        root_vars.pop(key, None)
    root_vars["ansible_connection"] = "ssh"
    root_vars.setdefault("ansible_user", "root")
    source = ""

    def visit(group: dict) -> None:
        nonlocal source
        gvars = group.get("vars") or {}
        if "proot_source_src" in gvars:
            source = gvars["proot_source_src"]
            gvars["proot_source_src"] = f"{PROJECT}/proot-source"
        for name, fleet_vars in (group.get("hosts") or {}).items():
            hvars = dict(fleet_vars or {})
            if name not in ports:
                raise SystemExit(f"ee_runner: no SSH port for fleet host {name}")
            # known_hosts names a host with its own port (a termux host's 8022) [HOST]:PORT.
            alias = f"[{name}]:{hvars['ansible_port']}" if "ansible_port" in hvars else name
            hvars["ansible_host"], hvars["ansible_port"] = ports[name]
            hvars["ansible_ssh_common_args"] = (
                f"-o HostKeyAlias={alias} -o UserKnownHostsFile={PROJECT}/known_hosts -o StrictHostKeyChecking=yes"
            )
            group["hosts"][name] = hvars

    _walk(root, visit)
    pathlib.Path(out).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    print(source)


def stats(artifact_dir: str) -> None:
    recap = None
    for path in sorted(pathlib.Path(artifact_dir, "job_events").glob("*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        if event.get("event") == "playbook_on_stats":
            recap = event["event_data"]
    if recap is None:
        raise SystemExit(f"ee_runner: no playbook_on_stats event in {artifact_dir}")
    hosts: dict[str, dict[str, int]] = {}
    for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
        for host, count in (recap.get(key) or {}).items():
            hosts.setdefault(host, {})[key] = count
    print(json.dumps(hosts, sort_keys=True))


def main(argv: list[str]) -> None:
    if len(argv) == 4 and argv[0] == "inventory":
        inventory(*argv[1:])
    elif len(argv) == 2 and argv[0] == "stats":
        stats(argv[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
