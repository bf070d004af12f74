"""Browsing and comparing experiments, runs and registered models."""
