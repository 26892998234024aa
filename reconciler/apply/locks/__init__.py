"""One writer per cluster: the lock interface and its file, etcd and PostgreSQL backends.

Dependencies point one way: ``acquire`` -> the backends (``file``, ``etcd``,
``postgres``) -> ``held`` and ``url``. ``acquire`` holds the ``ClusterLock`` interface,
``acquire_lock`` (choosing a backend from ``--lock URL``) and the ``--lock`` flags, and is
the only module that imports the backends; ``url`` parses and redacts the lock URL;
``held`` holds what every held lock shares (the holder record, ``with``-release, the
background renewal skeleton). A new backend goes into its own module here, subclassing
``held.RenewedLock``, and into ``acquire._acquire_once`` (and ``url.parse_lock_url`` for
its scheme).
"""
