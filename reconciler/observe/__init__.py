"""What the tool saw: the status parser and models, what a reading shows, snapshots, the observer.

Owns: parsing `database cluster status` (never raises, keeps what it could not read),
what a view must show for which decision (``status_evidence``: the one "clustered"),
the snapshot format, and observing every node concurrently through a transport.
May import ``spec``, ``transport`` and ``common``. The parser, the models, the
evidence and the renderer are pure.
"""
