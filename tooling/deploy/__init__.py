"""Deployment: provision what Zappa does not create, check a deployment, tear it down.

``python -m app provision STAGE`` creates or updates the buckets, the AWS Batch
environment, the ECR repository and least-privilege IAM roles with boto3, each
resource read first and written only when it differs (so a second run changes
nothing), and writes the names into the stage of zappa_settings.json.
``python -m app doctor STAGE`` verifies the wiring; ``python -m app teardown
STAGE`` removes what provisioning created. Everything goes through boto3, so
the tests run all three against the embedded moto endpoint.
"""
