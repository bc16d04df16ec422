# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Makes ``ansible_collections.meshlink.multicluster`` importable for plain ``pytest tests/unit``.

The plugins import each other by their collection path, as they do when Ansible runs them.
When the checkout is not already inside an ``ansible_collections/meshlink/multicluster`` tree
(ansible-test copies it into one), a temporary tree with a symlink to the checkout is put on
``sys.path`` for the session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _already_in_collection_tree() -> bool:
    parts = COLLECTION_ROOT.split(os.sep)
    return len(parts) >= 3 and parts[-3:] == ['ansible_collections', 'meshlink', 'multicluster']


def _link_collection() -> None:
    if _already_in_collection_tree():
        root = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION_ROOT)))
    else:
        root = tempfile.mkdtemp(prefix='meshlink-unit-')
        atexit.register(shutil.rmtree, root, True)
        namespace_dir = os.path.join(root, 'ansible_collections', 'meshlink')
        os.makedirs(namespace_dir)
        os.symlink(COLLECTION_ROOT, os.path.join(namespace_dir, 'multicluster'))
    if root not in sys.path:
        sys.path.insert(0, root)


_link_collection()
# Shared test doubles (meshlink_fakes.py) live next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
