"""Lesion phenotypes, clinical tables and mediation analysis (age / disease -> CT phenotype -> severity)."""
