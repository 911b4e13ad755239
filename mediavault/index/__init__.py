"""The index: MongoDB documents and search documents projected from the vault, in generations."""
