# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs meshlink.multicluster.cluster_verify with the host's connection (plugin_utils/_cluster_action.py)."""

from __future__ import annotations

from ansible_collections.meshlink.multicluster.plugins.modules import cluster_verify as module_code
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import ClusterAction


class ActionModule(ClusterAction):
    MODULE = 'meshlink.multicluster.cluster_verify'
    CODE = module_code
