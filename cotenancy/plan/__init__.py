"""cotenancy.plan."""
