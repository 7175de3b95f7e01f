"""The peers batchyard is measured against, each in its best honest
configuration, against the local Redis."""
