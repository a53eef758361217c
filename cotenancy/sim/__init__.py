"""cotenancy.sim."""
