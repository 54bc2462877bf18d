"""The pieces of ``scripts/crashtest.py``, Kanava's crash-safety test.

- ``server``: ``kanava serve`` as a child process that can be killed and started again;
- ``proxy``: a TCP proxy that cuts connections, in the middle of a frame too;
- ``peers``: simulated clients and professionals that reconnect, resume and retry;
- ``check``: the final reading of the SQLite file and the counts;
- ``runner``: the run itself (start, faults, drain, final resume, check).
"""
