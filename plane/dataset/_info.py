"""ds.info: the dataset's versioned info dict (description, license, citation, ...)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from plane.core._info import check_info

if TYPE_CHECKING:
    from plane.core._working import WorkingState

__all__ = ["DatasetInfo"]


class DatasetInfo(MutableMapping[str, Any]):
    """The info dict of the dataset's working version: str keys, JSON values. Stored in the
    version's state: a change is committed with the next commit (flush publishes it), and a
    checkout shows the info of that version. Values read back are copies."""

    def __init__(self, ws: WorkingState) -> None:
        self._ws = ws

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._ws.user_info[key]
        except KeyError:
            have = ", ".join(map(repr, self._ws.user_info)) or "(none)"
            raise KeyError(f"no info key {key!r}; keys: {have}") from None
        return json.loads(json.dumps(value))  # a copy: edit it and assign it back

    def __setitem__(self, key: str, value: Any) -> None:
        self._set({**self._ws.user_info, key: value}, f"set ds.info[{key!r}]")

    def __delitem__(self, key: str) -> None:
        if key not in self._ws.user_info:
            self[key]  # the KeyError listing the keys
        self._set({k: v for k, v in self._ws.user_info.items() if k != key},
                  f"delete ds.info[{key!r}]")

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Set several keys at once: all or nothing."""
        self._set({**self._ws.user_info, **dict(*args, **kwargs)}, "update ds.info")

    def clear(self) -> None:
        self._set({}, "clear ds.info")

    def _set(self, info: Mapping[str, Any], what: str) -> None:
        self._ws.check_writable(what)
        self._ws.set_info(check_info(info, self._ws.url))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ws.user_info))

    def __len__(self) -> int:
        return len(self._ws.user_info)

    def __repr__(self) -> str:
        return f"DatasetInfo({self._ws.user_info!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain copy."""
        out: dict[str, Any] = json.loads(json.dumps(self._ws.user_info))
        return out
