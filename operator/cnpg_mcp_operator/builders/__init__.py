"""Pure builders: intent → CNPG manifests, patches, Secrets and status. No I/O here."""
