"""The three roles and what each may do. Groups are created from this by a data migration."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    EMPLOYEE = "employee"
    POLICY_ADMIN = "policy_admin"
    AUDITOR = "auditor"


ROLE_NAMES = frozenset(role.value for role in Role)  # the role groups' names


ASK_QUESTIONS = "accounts.ask_questions"
MANAGE_DOCUMENTS = "accounts.manage_documents"
VIEW_AUDIT = "accounts.view_audit"

ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.EMPLOYEE: (ASK_QUESTIONS,),
    # Admins try what they upload, so they may ask too; they do not read the audit log.
    Role.POLICY_ADMIN: (ASK_QUESTIONS, MANAGE_DOCUMENTS),
    # Auditors only read the log: separation of duties.
    Role.AUDITOR: (VIEW_AUDIT,),
}
