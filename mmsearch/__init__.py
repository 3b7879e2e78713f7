"""The composition root: the ``mmsearch`` command wires ``search``, ``ingest`` and ``ui`` together.

It is the only package that imports all three, which keeps the layers free of cycles: the API in
``search.api`` receives its ingest launcher from here instead of importing ``ingest``.
"""
