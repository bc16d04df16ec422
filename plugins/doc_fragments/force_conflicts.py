# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The force_conflicts option of the modules that write with server-side apply."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(meshlink.multicluster.force_conflicts): pairs with ``_client.force_conflicts_argument_spec()``."""

    DOCUMENTATION = r'''
options:
  force_conflicts:
    description:
      - Whether to take over fields of the objects that another field manager owns (a server-side
        apply with C(force=true)).
      - By default nothing is taken over. When another manager (C(kubectl), a GitOps controller, a
        person's C(kubectl edit)) owns a field the collection sets, the task fails naming the
        manager and the field, and nothing is written.
      - Set V(true) to make meshlink the owner of those fields; the other manager's next apply of
        them then conflicts in turn.
    type: bool
    default: false
'''
