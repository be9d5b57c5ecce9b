"""The `policyengine` command line."""
