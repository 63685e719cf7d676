"""Replication to S3 with Object Lock (issue 16): evidence leaves the box.

A stage like the others: `keys.py` is pure (what goes where in the bucket,
until when it is locked, when to try again); the uploader, the queue in the
catalog and the bucket checks come on top of it.
"""
