"""The hyperv driver."""
