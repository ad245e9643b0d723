"""Lookups: the Coordinator's lookup configuration, kept in the metadata store.

Druid keeps one JSON document, ``{tier: {lookupName: {"version", "lookupExtractorFactory"}}}``,
under the config key ``lookupsConfig``; the Coordinator's ``/druid/coordinator/v1/lookups``
API edits it. ``LookupStore`` does the same with the same rules (``LookupCoordinatorManager``):
the first write must be an empty map (initialization), every spec needs a ``version``, and an
update must carry a version greater than the one it replaces.

The SQL layer sees the ``__default`` tier's lookups as tables ``lookup.<name>`` with columns
``k`` and ``v``, and ``Cluster.lookup(name)`` gives a ``map`` lookup's key/value dict.
"""
from __future__ import annotations

import json
import threading
from typing import Any

from msqcore.errors import DruidException, InvalidInput, NotFound

CONFIG_KEY = "lookupsConfig"
DEFAULT_TIER = "__default"


class LookupApiError(DruidException):
    """A lookup API failure, rendered as Druid's ``ServletResourceUtils.sanitizeException``:
    ``{"error": message}``."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status

    @property
    def http_status(self) -> int:
        return self.status

    def to_json(self) -> dict:
        return {"error": self.message}


def _java_map(value: Any) -> str:
    """Java's ``Map.toString`` / ``String.valueOf`` for JSON values (used in Druid's messages)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_map(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java_map(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _spec_text(spec: dict) -> str:
    version = spec.get("version")
    v = "null" if version is None else f"'{version}'"
    return (f"LookupExtractorFactoryMapContainer{{version={v}, "
            f"lookupExtractorFactory={_java_map(spec.get('lookupExtractorFactory'))}}}")


def _replaces(new: dict, old: dict) -> bool:
    """``LookupExtractorFactoryMapContainer.replaces``."""
    nv, ov = new.get("version"), old.get("version")
    if nv is None:
        return False
    if ov is None:
        return True
    return str(nv) > str(ov)


def _check_spec(tier: str, name: str, spec: Any) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("lookupExtractorFactory"), dict):
        raise LookupApiError(f"Invalid lookup spec for [{tier}]:[{name}]: expected "
                           "{\"version\": ..., \"lookupExtractorFactory\": {...}}", 400)
    return {"version": spec.get("version"), "lookupExtractorFactory": spec["lookupExtractorFactory"]}


class LookupStore:
    """The lookups config in the metadata store (``config`` table, key ``lookupsConfig``)."""

    def __init__(self, metadata):
        self.metadata = metadata
        self._lock = threading.Lock()

    def all(self) -> dict | None:
        """``{tier: {name: spec}}``, or None if lookups were never initialized."""
        return self.metadata.get_config(CONFIG_KEY)

    def update_all(self, update: Any) -> dict:
        """``POST /lookups/config``: add or replace lookups (never delete). Returns the update."""
        if not isinstance(update, dict) or not all(isinstance(v, dict) for v in update.values()):
            raise LookupApiError("Lookups config must be a JSON object of tiers to lookups", 400)
        update = {tier: {name: _check_spec(tier, name, spec) for name, spec in lookups.items()}
                  for tier, lookups in update.items()}
        with self._lock:
            prior = self.all()
            if not update and prior is not None:
                return update
            for tier, lookups in update.items():
                for name, spec in lookups.items():
                    if spec["version"] is None:
                        raise LookupApiError(f"lookup [{tier}]:[{name}] does not have version.", 500)
            if prior is None and update:
                raise LookupApiError("Not initialized. If this is the first lookup, post an empty map to initialize",
                                   500)
            merged = {t: dict(v) for t, v in (prior or {}).items()}
            for tier, lookups in update.items():
                current = merged.setdefault(tier, {})
                for name, spec in lookups.items():
                    if name in current and not _replaces(spec, current[name]):
                        raise LookupApiError(f"given update for lookup [{tier}]:[{name}] can't replace existing spec "
                                           f"[{_spec_text(current[name])}].", 500)
                current.update(lookups)
            self.metadata.set_config(CONFIG_KEY, merged)
        return update

    def update(self, tier: str, name: str, spec: Any) -> None:
        self.update_all({tier: {name: spec}})

    def get(self, tier: str, name: str) -> dict | None:
        return ((self.all() or {}).get(tier) or {}).get(name)

    def delete(self, tier: str, name: str) -> bool:
        with self._lock:
            prior = self.all()
            if prior is None or tier not in prior or name not in prior[tier]:
                return False
            merged = {t: dict(v) for t, v in prior.items()}
            del merged[tier][name]
            if not merged[tier]:
                del merged[tier]
            self.metadata.set_config(CONFIG_KEY, merged)
            return True

    def delete_tier(self, tier: str) -> bool:
        with self._lock:
            prior = self.all()
            if prior is None or tier not in prior:
                return False
            merged = {t: v for t, v in prior.items() if t != tier}
            self.metadata.set_config(CONFIG_KEY, merged)
            return True

    # --- for SQL --------------------------------------------------------------------------

    def sql_names(self) -> list[str]:
        """Lookups the Broker (tier ``__default``) serves, as ``lookup`` schema tables."""
        return sorted((self.all() or {}).get(DEFAULT_TIER, {}))

    def map(self, name: str, tier: str = DEFAULT_TIER) -> dict[str, str]:
        """The key→value map of a ``map`` lookup."""
        spec = self.get(tier, name)
        if spec is None:
            raise NotFound(f"Lookup [{name}] not found")
        factory = spec["lookupExtractorFactory"]
        if factory.get("type") != "map":
            raise InvalidInput(f"Lookup [{name}] has type [{factory.get('type')}]; only [map] lookups are "
                               "supported")
        mapping = factory.get("map") or {}
        return {str(k): None if v is None else (v if isinstance(v, str) else json.dumps(v)) for k, v in
                mapping.items()}
