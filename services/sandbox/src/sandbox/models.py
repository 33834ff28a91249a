"""SQLModel tables of the sandbox service (none yet beyond the kit's own)."""
