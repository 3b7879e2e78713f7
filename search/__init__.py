"""mmsearch core: settings, embedder, vector store, catalog and query composition.

`ingest` builds on this package and `ui` talks to its API over HTTP; nothing here imports either.

Importing it sets one process-wide default before torch loads: torch's CPU threads (GNU OpenMP)
sleep when they wait instead of spinning (``OMP_WAIT_POLICY=PASSIVE``; an explicit setting in
the environment wins). OpenMP reads the variable once, when torch is loaded, which is why it is
set here, in the first module of every entry point, and not with the thread count
(``search.embedder.device``). Unset, each torch thread spins up to 300,000 times at every
barrier: on a machine whose cores are shared with decode threads (ingestion) or with other
processes, a waiting torch thread burns a core the others need. Measured on 2 cores with the
bundled model: ingestion 33-38 core-ms per image end to end spinning, 11-12 sleeping, with the
forward pass alone 15-21 core-ms per image under a neighbour's load spinning, 2.3 sleeping.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
