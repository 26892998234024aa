"""One writer per cluster: the lock interface and its file, etcd and PostgreSQL backends.

``backend`` holds the interface and ``acquire_lock`` (choosing a backend from
``--lock URL``); each backend module holds one implementation. A new backend goes
into its own module here and into ``acquire_lock``.
"""
