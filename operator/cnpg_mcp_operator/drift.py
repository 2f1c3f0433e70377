"""Pure comparisons of what we want against what exists, producing the smallest merge patch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Json = dict[str, Any]


def merge_patch(desired: Mapping[str, Any], actual: Mapping[str, Any],
                removable: Iterable[str] = ()) -> Json | None:
    """Keys of `desired` whose value differs in `actual`, plus `removable` keys that `actual` has but
    `desired` lacks (set to None, which a JSON merge patch deletes). None when nothing differs.

    Keys `actual` has for other reasons (API server defaults, other writers) are left alone. A None
    inside a desired value means "absent" (what the merge patch makes of it), so it matches a missing key.
    """
    patch: Json = {key: value for key, value in desired.items() if actual.get(key) != _without_nulls(value)}
    patch.update({key: None for key in removable if key not in desired and actual.get(key) is not None})
    return patch or None


def _without_nulls(value: Any) -> Any:
    """`value` as it reads after a JSON merge patch: None entries of mappings are absent."""
    if isinstance(value, Mapping):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    return value


def owned_by(obj: Mapping[str, Any] | None, uid: str) -> bool:
    """Does `obj` carry an ownerReference to the object with this uid?"""
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)
