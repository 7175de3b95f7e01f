"""The child program of one batch run: ``python -m engine.child``.

It imports only ``protocols`` and ``engine.jobs``: its start-up time is part
of every cold batch start.
"""
