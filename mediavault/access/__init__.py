"""Access control: API tokens with roles, and the audit log. Both live in the vault."""

from mediavault.access.audit import AuditLog, AuditRecord, read_audit, redact, write_records
from mediavault.access.tokens import (
    REVOCATION_CACHE_SECONDS,
    ROLE_RANK,
    Principal,
    Role,
    TokenInfo,
    TokenRecord,
    TokenStore,
    any_tokens,
)

__all__ = [
    "REVOCATION_CACHE_SECONDS",
    "ROLE_RANK",
    "AuditLog",
    "AuditRecord",
    "Principal",
    "Role",
    "TokenInfo",
    "TokenRecord",
    "TokenStore",
    "any_tokens",
    "read_audit",
    "redact",
    "write_records",
]
