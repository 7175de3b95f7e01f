"""Sans-IO wire formats of batchyard."""
