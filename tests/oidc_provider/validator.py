from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsValidator(OAuth2Validator):
    """Puts the user's groups (as a directory would: Keycloak's and Entra's `groups` claim) and
    username into the ID token and userinfo."""

    oidc_claim_scope = None  # every claim below, whatever the scopes

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "preferred_username": user.username,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }
