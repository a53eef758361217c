"""cotenancy.predict."""
