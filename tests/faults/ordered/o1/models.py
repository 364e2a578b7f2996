from django.db import models


class Applied(models.Model):
    """One row per application of an event by o1, in the order applied (the row id)."""

    event_id = models.CharField(max_length=64, db_index=True)
    key = models.CharField(max_length=64)
    n = models.IntegerField()
    pid = models.IntegerField()
