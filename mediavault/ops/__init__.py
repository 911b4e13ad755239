"""Operations: metrics and capacity checks, computed from one snapshot of the vault and index."""
