"""cotenancy.store."""
