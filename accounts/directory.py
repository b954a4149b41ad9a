"""How directory groups become PolicyDesk roles and document groups: one map for OIDC and LDAP.

POLICYDESK_GROUP_MAP is JSON:

    {"roles": {"PolicyDesk Admins": "policy_admin", "Internal Audit": "auditor", "All Staff": "employee"},
     "documents": {"HR Managers": "hr", "Finance Team": "finance"},
     "default_role": "employee"}

Keys are the group names the directory sends (an OIDC `groups` claim, an LDAP group's cn),
compared without regard to case, as Active Directory does. `default_role` is given to a
signed-in user in no mapped role group; null refuses such users. Pure: no database, no Django
models, so settings can validate it at start.
"""

from __future__ import annotations

import json
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

    def roles_for(self, directory_groups: Iterable[str]) -> set[str]:
        roles = {self.roles[name] for name in _folded(directory_groups) if name in self.roles}
        if not roles and self.default_role:
            roles.add(self.default_role)
        return roles

    def document_groups_for(self, directory_groups: Iterable[str]) -> set[str]:
        return {self.documents[name] for name in _folded(directory_groups) if name in self.documents}


def _folded(names: Iterable[str]) -> set[str]:
    return {name.strip().casefold() for name in names if isinstance(name, str)}


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
        key_folded = name.strip().casefold()
        if key_folded in folded and folded[key_folded] != target.strip():
            raise GroupMapError(f"`{key}` lists {name!r} twice with different targets")
        folded[key_folded] = target.strip()
    return folded
