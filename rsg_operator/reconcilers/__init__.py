"""Reconcilers: read the cluster, call the pure core, write the difference, return a status."""
