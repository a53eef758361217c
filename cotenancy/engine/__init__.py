"""cotenancy.engine."""
