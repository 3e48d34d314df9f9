"""Makes the collection importable as ansible_collections.armoredgate.volt for every test."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, "build", "collections")
if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "armoredgate", "volt")):
    raise RuntimeError("run scripts/bootstrap first: it links the collection under build/collections")
sys.path.insert(0, COLLECTIONS)
os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
