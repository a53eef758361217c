"""Integrations of cotenancy into other systems (Watcher, vCenter, Ansible)."""
