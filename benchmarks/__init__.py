"""Benchmarks of django-pagero-oauth (reports, never assertions): ``python benchmarks/run.py``."""
