"""The vsphere driver."""
