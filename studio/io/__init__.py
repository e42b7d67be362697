"""Importers and exporters of the files the outside world reads; registered as plugins."""
