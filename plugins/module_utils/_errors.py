# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Exceptions shared by the module_utils of meshlink.multicluster.

Modules catch :class:`MeshlinkError` and turn it into ``fail_json(msg=str(error))``; the
subclasses only exist so callers can react to a kind of failure (retry on a conflict, treat a
404 as "absent", show every input problem at once).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional


class MeshlinkError(Exception):
    """Base class: the message is complete and meant for the user as it is."""


class InputError(MeshlinkError):
    """Bad module input. Carries every problem found, each naming its field path.

    Raised before any API write, so a failed validation never leaves a half-done change.
    """

    def __init__(self, errors: Iterable[str], prefix: str = '') -> None:
        self.errors: List[str] = list(errors)
        self.prefix = prefix
        text = '; '.join(self.errors)
        super().__init__('%s%s' % (prefix, text) if prefix else text)


class ApiError(MeshlinkError):
    """A Kubernetes API call failed.

    ``status`` is the HTTP status (None when the server could not be reached), ``reason``
    the API Status reason (``NotFound``, ``Conflict``, ``AlreadyExists``, ...) when known,
    ``details`` the Status ``details`` (``causes``, ...) and ``status_object`` the whole
    Status when the server sent one.
    """

    def __init__(self, message: str, status: Optional[int] = None, reason: Optional[str] = None,
                 details: Optional[Dict[str, Any]] = None, status_object: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.details = details
        self.status_object = status_object

    @property
    def is_conflict(self) -> bool:
        """409: a resourceVersion precondition failed, the object already exists, or an apply conflict."""
        return self.status == 409


class ApplyConflict(ApiError):
    """A server-side apply without force met fields another field manager owns (409).

    ``conflicts`` lists ``{manager, api_version, field}``; ``managers`` and ``fields`` are
    their distinct values in order. The message names them and says how to take the fields
    over (the modules' ``force_conflicts: true``, i.e. ``Cluster.apply(..., force=True)``).
    Nothing was written.
    """

    def __init__(self, message: str, conflicts: Iterable[Dict[str, Optional[str]]],
                 details: Optional[Dict[str, Any]] = None, status_object: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message, status=409, reason='Conflict', details=details, status_object=status_object)
        self.conflicts: List[Dict[str, Optional[str]]] = [dict(c) for c in conflicts]

    @property
    def managers(self) -> List[str]:
        return _distinct(c.get('manager') for c in self.conflicts)

    @property
    def fields(self) -> List[str]:
        return _distinct(c.get('field') for c in self.conflicts)


def _distinct(values: Iterable[Optional[str]]) -> List[str]:
    result: List[str] = []
    for value in values:
        if value and value not in result:
            result.append(value)
    return result


class ClientError(MeshlinkError):
    """The API client could not be built (no kubeconfig, bad context, missing library)."""
