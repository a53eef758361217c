"""The vcenter integration."""
