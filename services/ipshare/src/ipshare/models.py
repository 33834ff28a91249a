"""SQLModel tables of the ipshare service (none yet beyond the kit's own)."""
