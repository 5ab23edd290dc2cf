"""The AWS Batch entry point: ``python -m batch_fallback --bucket B --key K --etag E``.

It converts one source version with exactly the code Lambda runs
(``app.jobs.handle``), only with dispatch disabled, so Batch never hands a job
on and there is no second tiler. The Dockerfile beside this file builds the
image; jobdefinition.json registers it with AWS Batch.
"""
