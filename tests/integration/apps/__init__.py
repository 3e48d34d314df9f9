"""Realistic application images (Debian bookworm packages: nginx, redis, a Python app) built for
the tests and pushed to the loopback OCI registry (see app_images.py and conftest.py)."""
