"""How directory groups become PolicyDesk roles and document groups: one map for OIDC and LDAP.

POLICYDESK_GROUP_MAP is JSON:

    {"roles": {"PolicyDesk Admins": "policy_admin", "Internal Audit": "auditor", "All Staff": "employee"},
     "documents": {"HR Managers": "hr", "Finance Team": "finance"},
     "default_role": "employee"}

Keys are what the directory sends for a group: an OIDC `groups` claim's values (Entra ID: the
group's object id), and for LDAP the group's DN, its entryUUID (OpenLDAP) or objectGUID (Active
Directory), or its cn. Immutable ids (a DN, a UUID/GUID) are the recommended keys: where users
can create groups, one *named* like an admin group would otherwise grant the role. Names still
work, with a warning at start (accounts/checks.py). Keys are compared without regard to case,
as Active Directory does, and DNs without the spaces after their commas.

Separation of duties: the auditor role never combines with another. A user whose groups map to
`auditor` and to other roles gets `auditor` alone (the others are dropped and a warning is
logged; every auditor is usually in "All Staff" too).

`default_role` is given to a signed-in user in no mapped role group; null refuses such users.
Pure: no database, no Django models, so settings can validate it at start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from accounts.roles import ROLE_NAMES


class GroupMapError(ValueError):
    pass


@dataclass(frozen=True)
class GroupMap:
    roles: dict[str, str] = field(default_factory=dict)  # casefolded directory group -> role
    documents: dict[str, str] = field(default_factory=dict)  # casefolded directory group -> group
    default_role: str | None = "employee"

    def mapped_roles(self, directory_groups: Iterable[str]) -> set[str]:
        """Every role the groups map to, before the auditor's precedence."""
        roles = {self.roles[name] for name in _folded(directory_groups) if name in self.roles}
        if not roles and self.default_role:
            roles.add(self.default_role)
        return roles

    def roles_for(self, directory_groups: Iterable[str]) -> set[str]:
        roles = self.mapped_roles(directory_groups)
        return {AUDITOR} if AUDITOR in roles else roles

    def keys_by_name(self) -> list[str]:
        """The map's keys that are names rather than immutable ids (DN, UUID/GUID)."""
        return sorted(key for key in {*self.roles, *self.documents} if not is_immutable_id(key))

    def document_groups_for(self, directory_groups: Iterable[str]) -> set[str]:
        return {self.documents[name] for name in _folded(directory_groups) if name in self.documents}


AUDITOR = "auditor"
_UUID = re.compile(r"\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?")
# attr=value, then more RDNs: "cn=PolicyDesk Admins,ou=Groups,dc=example,dc=com".
_DN = re.compile(r"[a-z][a-z0-9-]*=[^,]+(,\s*[a-z][a-z0-9-]*=[^,]+)+")


def is_immutable_id(key: str) -> bool:
    """A UUID/GUID (entryUUID, objectGUID, an Entra group's object id) or an LDAP DN."""
    folded = key.strip().casefold()
    return bool(_UUID.fullmatch(folded) or _DN.fullmatch(folded))


def group_key(name: str) -> str:
    """How a group key is compared: case-folded; a DN without spaces around its commas, a GUID
    without braces."""
    folded = name.strip().casefold()
    if _UUID.fullmatch(folded):
        return folded.strip("{}")
    if _DN.fullmatch(folded):
        return ",".join(part.strip() for part in folded.split(","))
    return folded


def _folded(names: Iterable[str]) -> set[str]:
    return {group_key(name) for name in names if isinstance(name, str)}


def group_map_parse(raw: str | None) -> GroupMap:
    """The map from its JSON; GroupMapError says what is wrong, for the start-up error."""
    if raw is None or not raw.strip():
        return GroupMap()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise GroupMapError(f"is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GroupMapError("must be a JSON object with `roles`, `documents` and `default_role`")
    unknown = set(data) - {"roles", "documents", "default_role"}
    if unknown:
        raise GroupMapError(f"has unknown keys: {', '.join(sorted(unknown))}")
    roles = _string_map(data.get("roles", {}), "roles", _check_role)
    documents = _string_map(data.get("documents", {}), "documents", _check_document_group)
    default_role = data.get("default_role", "employee")
    if default_role is not None and default_role not in ROLE_NAMES:
        raise GroupMapError(f"default_role {default_role!r} is not a role (or null)")
    return GroupMap(roles=roles, documents=documents, default_role=default_role)


def _check_role(group: str, role: str) -> None:
    if role not in ROLE_NAMES:
        raise GroupMapError(
            f"maps {group!r} to {role!r}, which is not a role ({', '.join(sorted(ROLE_NAMES))})"
        )


def _check_document_group(group: str, target: str) -> None:
    if target in ROLE_NAMES:
        raise GroupMapError(
            f"maps {group!r} to the role group {target!r}; document groups must be other names"
        )


def _string_map(value: object, key: str, check: Callable[[str, str], None]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip() for k, v in value.items()
    ):
        raise GroupMapError(f"`{key}` must map directory group names to names")
    folded: dict[str, str] = {}
    for name, target in value.items():
        check(name.strip(), target.strip())
        key_folded = group_key(name)
        if key_folded in folded and folded[key_folded] != target.strip():
            raise GroupMapError(f"`{key}` lists {name!r} twice with different targets")
        folded[key_folded] = target.strip()
    return folded
