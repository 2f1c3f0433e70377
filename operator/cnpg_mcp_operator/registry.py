"""The operator's own Kopf registry: handlers register here, not in Kopf's global default one."""

import kopf

REGISTRY = kopf.OperatorRegistry()
