"""Kopf handlers: one module per intent kind, plus the observers of CNPG objects."""
