# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan and cluster options of the per-cluster modules."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(meshlink.multicluster.cluster_of_plan): the options every per-cluster module takes first."""

    DOCUMENTATION = r'''
options:
  plan:
    description:
      - The result of M(meshlink.multicluster.mesh_plan); its fingerprint is checked, it is not validated again.
      - When omitted, the action plugin passes what this host registered as C(meshlink_plan), as
        registered (a task's result holds nothing to template, and templating a plan of a thousand
        services into every task's arguments costs seconds). The collection's role omits it.
    type: dict
  cluster:
    description: The inventory host name of this cluster in the plan.
    type: str
    required: true
'''
