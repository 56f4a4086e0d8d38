"""Collect stage: SDK calls in, raw responses (with provenance) and normalised records out."""
