"""Access to dependencies' private parts: one module per dependency, each guarded by a test."""
