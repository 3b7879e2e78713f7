"""mmsearch core: settings, embedder, vector store, catalog and query composition.

`ingest` builds on this package and `ui` talks to its API over HTTP; nothing here imports either.
"""

__version__ = "0.1.0"
