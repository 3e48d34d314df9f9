"""Stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test downloads get-pip.py from a host outside the package registries this project may
use. This script does the same job from what Python ships: pip from the bundled ensurepip wheel,
then the packages ansible-test asked for, from the package index.
"""

from __future__ import annotations

import ensurepip
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")

if __name__ == "__main__":
    ensurepip.bootstrap()
    arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "-q", *arguments]))
