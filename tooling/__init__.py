"""Tools around the service, never part of it: the local demo and its embedded S3 endpoint, provisioning, the
doctor and tear-down. Nothing here ships in the Lambda package or the container image; ``python -m app`` reaches
these commands lazily, from a clone.
"""
