# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Attributes shared by the modules of meshlink.multicluster."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(meshlink.multicluster.attributes.read_only): modules that only read the cluster."""

    DOCUMENTATION = r'''
options: {}
'''

    READ_ONLY = r'''
options: {}
attributes:
  check_mode:
    description: Only reads, so it runs the same in check mode (and its answer stays useful there).
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  idempotent:
    description: Changes nothing.
    support: full
'''
