"""sign stage."""
