"""The sandbox's rules in plain Python: sector profiles, applications, pilots."""
