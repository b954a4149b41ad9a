"""The audit keyring (settings.AUDIT_HMAC_KEYS, oldest first; the last key is current).

Every signature names the key id it was made with, so a rotation adds a key without
invalidating what the older keys signed: events (`AuditEvent.key_id`), purge checkpoints,
signed heads and the page's verified head. Key id "" is the original single key
(POLICYDESK_AUDIT_HMAC_KEY); where the keyring has no "" entry, its first key stands for it.
Pseudonyms and PII placeholder digests use the oldest key (settings.AUDIT_HMAC_KEY) so that
they do not change when the chain's key is rotated.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


class UnknownKeyError(LookupError):
    """A signature names a key id that the keyring does not hold."""


def current_key_id() -> str:
    return str(settings.AUDIT_HMAC_KEY_ID)


def known(key_id: str) -> bool:
    ring: dict[str, str] = settings.AUDIT_HMAC_KEYS
    return key_id in ring or (key_id == "" and bool(ring))


def position(key_id: str) -> int:
    """Where the key sits in the keyring, oldest first: a chain only ever moves forward."""
    ids = list(settings.AUDIT_HMAC_KEYS)
    if key_id in ids:
        return ids.index(key_id)
    if key_id == "":
        return -1  # the original key, listed under an id of its own as the ring's first entry
    raise UnknownKeyError(key_id)


def secret(key_id: str) -> bytes:
    ring: dict[str, str] = settings.AUDIT_HMAC_KEYS
    if key_id in ring:
        return ring[key_id].encode()
    if key_id == "" and ring:
        return next(iter(ring.values())).encode()
    raise UnknownKeyError(key_id)


def derived(key_id: str, purpose: bytes) -> bytes:
    """A key for one purpose alone ("audit-chain", "audit-head"...), derived from `key_id`'s."""
    return hmac.new(secret(key_id), purpose, hashlib.sha256).digest()


def sign(key_id: str, purpose: bytes, message: str) -> str:
    return hmac.new(derived(key_id, purpose), message.encode(), hashlib.sha256).hexdigest()


def matches(signature: str, key_id: str, purpose: bytes, message: str) -> bool:
    if not known(key_id):
        return False
    return hmac.compare_digest(signature, sign(key_id, purpose, message))
