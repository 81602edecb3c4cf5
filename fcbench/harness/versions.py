"""FC 3.0 function versions and aliases: the pure bookkeeping (no I/O, no clock, no randomness).

Key names: `FunctionVersions` (one function's versions, aliases and alias provision configs),
`Version`, `Alias`, `QualifierError` (an FC-shaped refusal: status, code), `unit_key` /
`split_key` (the scheduler's key for a published version, and back), `LATEST`,
`LATEST_VERSION_ID`.

FC's rules kept here (FC 3.0 "Manage versions" / "Manage aliases", the 2021-04-06 API reference
whose alias rules and error codes 3.0 kept):

* PublishFunctionVersion snapshots LATEST's configuration as version "1", "2", ... per function;
  numbers only increase and are never reused, even after a delete. A version is immutable.
* An alias points at one published version (`versionId`) and at most one additional (canary)
  version with a weight in [0, 1] (`additionalVersionWeight {"2": 0.05}`: 5 % of requests go to
  version 2); the additional version may not be the main one (400
  ``AdditionalVersionContainsMajorVersion``). Names: letters, digits, ``_`` and ``-``, not
  starting with a digit or ``-``, 1-128 characters, never ``LATEST``.
* A version an alias points at cannot be deleted; LATEST cannot be deleted at all.
* Provision configs of a published version are set through an alias (`qualifier` = the alias);
  they run the alias's main version.

Which version serves a request through an alias is `Alias.pick(draw)` with a uniform draw in
[0, 1) from the caller, so the caller owns the randomness (a seeded RNG in tests).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import FcbenchError
from ..fc import DEFAULT_QUALIFIER, LIST_PAGE_SIZE, MAX_LIST_LIMIT

if TYPE_CHECKING:
    from ..spec import FunctionSpec, ProvisionSpec

__all__ = ["ALIAS_NAME_MAX", "Alias", "FunctionVersions", "LATEST", "LATEST_VERSION_ID",
           "MAX_ADDITIONAL_VERSIONS", "QualifierError", "Version", "split_key", "unit_key"]

#: The unpublished, editable code and configuration of a function.
LATEST = DEFAULT_QUALIFIER
#: ListInstances' `versionId` of an instance of LATEST (the SDK's InstanceInfo: "If the instance
#: is under the LATEST alias of the function, the returned version number is 0").
LATEST_VERSION_ID = "0"
#: An alias name: 1-128 characters (CreateAlias).
ALIAS_NAME_MAX = 128
#: Canary versions per alias: one (FC's console and ROS's ALIYUN::FC::Alias take a single
#: AdditionalVersion / AdditionalWeight).
MAX_ADDITIONAL_VERSIONS = 1
#: A version's or alias's `description`: at most 256 characters (FC 2.0's CreateAlias).
DESCRIPTION_MAX = 256
_ALIAS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_DIRECTIONS = ("BACKWARD", "FORWARD")


class QualifierError(FcbenchError):
    """A refusal in FC's terms: HTTP `status` and FC error `code` (the message says why)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def unit_key(function: str, version_id: str) -> str:
    """The scheduler's key for a published version of `function` (LATEST's key is the name).

    ``@`` cannot occur in a function name (letters, digits, ``_``, ``-``), so a key never
    collides with another function; the harness never shows it (views show the function name
    and the version)."""
    return function if version_id == LATEST else f"{function}@{version_id}"


def split_key(key: str) -> tuple[str, str]:
    """(function, version id) of a scheduler key: the inverse of `unit_key`."""
    function, at, version_id = key.partition("@")
    return (function, version_id) if at else (key, LATEST)


@dataclass(frozen=True)
class Version:
    """One published version: LATEST's spec when it was published, frozen."""

    version_id: str
    spec: FunctionSpec
    description: str
    created: float  # epoch seconds


@dataclass
class Alias:
    """A name for a published version, with at most one canary version."""

    name: str
    version_id: str
    description: str = ""
    #: canary version id -> the share of requests it gets (FC's `additionalVersionWeight`)
    weights: dict[str, float] = field(default_factory=dict)
    created: float = 0.0
    modified: float = 0.0

    def pick(self, draw: float) -> str:
        """The version that serves one request, given a uniform `draw` in [0, 1): a canary
        version with weight w serves a draw below w, the main version the rest."""
        for version_id, weight in self.weights.items():
            if draw < weight:
                return version_id
            draw -= weight
        return self.version_id

    @property
    def version_ids(self) -> list[str]:
        """The main version, then the canary version (if any)."""
        return [self.version_id, *self.weights]


class FunctionVersions:
    """One function's published versions, aliases and per-alias provision configs."""

    def __init__(self) -> None:
        self.versions: dict[str, Version] = {}
        self.aliases: dict[str, Alias] = {}
        #: alias name -> its PutProvisionConfig (LATEST's stays with the function)
        self.provisions: dict[str, ProvisionSpec] = {}
        self._next = 1

    # ---- versions -----------------------------------------------------------------------
    def publish(self, spec: FunctionSpec, body: Any, now: float) -> Version:
        """PublishFunctionVersion: `spec` (LATEST's) becomes the next version."""
        doc = _object(body, "PublishFunctionVersion")
        version = Version(str(self._next), spec, _description(doc), now)
        self.versions[version.version_id] = version
        self._next += 1
        return version

    def version(self, version_id: str) -> Version:
        """A published version by id (404 ``VersionNotFound``)."""
        found = self.versions.get(str(version_id))
        if found is None:
            have = ", ".join(self.versions) or "none yet"
            raise QualifierError(404, "VersionNotFound", f"version {version_id!r} does not "
                                 f"exist (published: {have}); publish one with POST .../versions")
        return found

    def delete_version(self, version_id: str) -> Version:
        """DeleteFunctionVersion; refused for LATEST and for a version an alias points at."""
        if version_id == LATEST:
            raise QualifierError(400, "InvalidArgument", "LATEST cannot be deleted; delete the "
                                 "function instead")
        version = self.version(version_id)
        users = sorted(a.name for a in self.aliases.values() if version_id in a.version_ids)
        if users:
            raise QualifierError(400, "InvalidArgument", f"version {version_id} is in use by "
                                 f"alias {', '.join(users)}; point the alias elsewhere "
                                 "(UpdateAlias) or delete it first")
        del self.versions[version_id]
        return version

    def list_versions(self, *, direction: str | None, limit: str | None,
                      next_token: str | None) -> tuple[list[Version], str | None, str]:
        """ListFunctionVersions: newest first (`BACKWARD`, FC's default) or oldest first
        (`FORWARD`), from version `next_token` on. Returns (page, next token, direction)."""
        direction = (direction or "BACKWARD").upper()
        if direction not in _DIRECTIONS:
            raise QualifierError(400, "InvalidArgument", f"direction must be BACKWARD or "
                                 f"FORWARD (got {direction!r})")
        size = _limit(limit)
        ids = sorted(self.versions, key=int, reverse=direction == "BACKWARD")
        if next_token:
            if not next_token.isdigit():
                raise QualifierError(400, "InvalidArgument", "nextToken must be a version id "
                                     f"from a previous page (got {next_token!r})")
            start = int(next_token)
            ids = [v for v in ids if (int(v) <= start if direction == "BACKWARD"
                                      else int(v) >= start)]
        page = [self.versions[v] for v in ids[:size]]
        return page, (ids[size] if len(ids) > size else None), direction

    # ---- aliases ------------------------------------------------------------------------
    def alias(self, name: str) -> Alias:
        """An alias by name (404 ``AliasNotFound``)."""
        found = self.aliases.get(name)
        if found is None:
            raise QualifierError(404, "AliasNotFound", f"alias {name!r} does not exist; "
                                 "create it with POST .../aliases")
        return found

    def create_alias(self, body: Any, now: float) -> Alias:
        """CreateAlias from its JSON body (`aliasName`, `versionId`, `description`,
        `additionalVersionWeight`)."""
        doc = _object(body, "CreateAlias")
        name = doc.get("aliasName")
        if not isinstance(name, str):
            raise QualifierError(400, "InvalidArgument", "aliasName is required: a name of "
                                 "letters, digits, _ and -")
        _check_alias_name(name)
        if name in self.aliases:
            raise QualifierError(409, "AliasAlreadyExists", f"alias {name!r} already exists; "
                                 "change it with PUT .../aliases/" + name)
        if doc.get("versionId") is None:
            raise QualifierError(400, "InvalidArgument", "versionId is required: the published "
                                 "version the alias points at")
        version_id = self._published(doc["versionId"], "versionId")
        weights = self._weights(doc.get("additionalVersionWeight"), version_id)
        alias = Alias(name, version_id, _description(doc), weights, now, now)
        self.aliases[name] = alias
        return alias

    def update_alias(self, name: str, body: Any, now: float) -> tuple[Alias, str]:
        """UpdateAlias: the given fields replace the alias's (`additionalVersionWeight: {}`
        clears the canary). Returns the alias and the main version it pointed at before."""
        alias = self.alias(name)
        doc = _object(body, "UpdateAlias")
        version_id = alias.version_id
        if doc.get("versionId") is not None:
            version_id = self._published(doc["versionId"], "versionId")
        weights = alias.weights
        if "additionalVersionWeight" in doc:
            weights = self._weights(doc["additionalVersionWeight"], version_id)
        elif version_id in weights:
            raise QualifierError(400, "AdditionalVersionContainsMajorVersion",
                                 f"additionalVersionWeight {weights} should not contain the "
                                 f"major version {version_id}")
        before = alias.version_id
        alias.version_id, alias.weights = version_id, weights
        if "description" in doc:
            alias.description = _description(doc)
        alias.modified = now
        return alias, before

    def delete_alias(self, name: str) -> Alias:
        """DeleteAlias; its provision config goes with it."""
        alias = self.alias(name)
        del self.aliases[name]
        self.provisions.pop(name, None)
        return alias

    def list_aliases(self, *, prefix: str | None, limit: str | None,
                     next_token: str | None) -> tuple[list[Alias], str | None]:
        """ListAliases: by name, from `next_token` on, those starting with `prefix`."""
        size = _limit(limit)
        names = [n for n in sorted(self.aliases)
                 if n.startswith(prefix or "") and n >= (next_token or "")]
        return [self.aliases[n] for n in names[:size]], (names[size] if len(names) > size
                                                         else None)

    # ---- qualifiers ---------------------------------------------------------------------
    def resolve(self, qualifier: str | None, draw: float) -> str:
        """The version that serves one request for `qualifier` (LATEST, a version id or an
        alias): `LATEST` or a published version id. 404 when it names nothing."""
        if not qualifier or qualifier == LATEST:
            return LATEST
        if qualifier.isdigit():
            return self.version(qualifier).version_id
        return self.alias(qualifier).pick(draw)

    def main(self, qualifier: str | None) -> str:
        """The version `qualifier` names: LATEST, the version itself, or an alias's main one."""
        return self.version_ids(qualifier)[0]

    def version_ids(self, qualifier: str | None) -> list[str]:
        """Every version a request for `qualifier` can land on (for ListInstances)."""
        if not qualifier or qualifier == LATEST:
            return [LATEST]
        if qualifier.isdigit():
            return [self.version(qualifier).version_id]
        return self.alias(qualifier).version_ids

    def check(self, qualifier: str) -> None:
        """Refuse a qualifier that names no version or alias (404)."""
        self.version_ids(qualifier)

    def provision_target(self, version_id: str) -> int:
        """Provisioned instances of a published version: the `defaultTarget`s of the aliases
        whose main version it is."""
        return sum(p.default_target for name, p in self.provisions.items()
                   if name in self.aliases and self.aliases[name].version_id == version_id)

    # ---- checks -------------------------------------------------------------------------
    def _published(self, value: Any, field_name: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise QualifierError(400, "InvalidArgument", f"{field_name} must be a version id "
                                 f"such as \"1\" (got {value!r})")
        version_id = str(value)
        if version_id == LATEST:
            raise QualifierError(400, "InvalidArgument", f"{field_name}: an alias points at a "
                                 "published version, not LATEST; publish one first "
                                 "(POST .../versions)")
        return self.version(version_id).version_id

    def _weights(self, value: Any, main: str) -> dict[str, float]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise QualifierError(400, "InvalidArgument", "additionalVersionWeight must be an "
                                 'object of version id -> weight, e.g. {"2": 0.1}')
        if len(value) > MAX_ADDITIONAL_VERSIONS:
            raise QualifierError(400, "InvalidArgument", "additionalVersionWeight names "
                                 f"{len(value)} versions; an alias has at most "
                                 f"{MAX_ADDITIONAL_VERSIONS} canary version")
        out: dict[str, float] = {}
        for key, weight in value.items():
            version_id = self._published(key, "additionalVersionWeight")
            if version_id == main:
                raise QualifierError(400, "AdditionalVersionContainsMajorVersion",
                                     f"additionalVersionWeight {value} should not contain the "
                                     f"major version {main}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not math.isfinite(weight) or not 0.0 <= weight <= 1.0:
                raise QualifierError(400, "InvalidArgument", f"additionalVersionWeight.{key} "
                                     f"must be a weight from 0 to 1 (got {weight!r})")
            out[version_id] = float(weight)
        return out


def _check_alias_name(name: str) -> None:
    if name == LATEST or not 0 < len(name) <= ALIAS_NAME_MAX or not _ALIAS_NAME.match(name):
        raise QualifierError(400, "InvalidArgument", f"aliasName {name!r} is not allowed: "
                             "letters, digits, _ and -, not starting with a digit or -, "
                             f"1-{ALIAS_NAME_MAX} characters, and not LATEST")


def _object(body: Any, call: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise QualifierError(400, "InvalidArgument", f"the {call} body must be a JSON object")
    return body


def _description(doc: dict[str, Any]) -> str:
    value = doc.get("description")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX:
        raise QualifierError(400, "InvalidArgument", "description must be text of at most "
                             f"{DESCRIPTION_MAX} characters")
    return value


def _limit(raw: str | None) -> int:
    try:
        return min(MAX_LIST_LIMIT, max(1, int(raw or LIST_PAGE_SIZE)))
    except ValueError:
        raise QualifierError(400, "InvalidArgument", f"limit must be a whole number (1-"
                             f"{MAX_LIST_LIMIT})") from None
