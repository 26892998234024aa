"""Where the specs come from when they live in git, and the revision everything names.

``revision`` (pure) is the commit a plan was made from as plans, audit and journal records
show it; ``git_command`` runs git with a clean environment and its authentication (SSH deploy
key with a known_hosts file, or an HTTPS token from the environment); ``git_source`` fetches
one branch into the state directory and checks revisions out atomically (files side in
``checkouts``), verifies SSH commit signatures and lists changed files; ``working_tree``
says which commit a local spec file is at; ``webhook`` (pure) verifies a push notification's
shared secret. It imports only ``spec`` and ``common``; ``watch`` and ``cli`` use it.

Why the git command line (through ``subprocess``) and not a Python git library: git is on
every admin host and already does everything needed here: SSH and HTTPS authentication
(with the host's ssh, known_hosts and proxies), SSH signature verification against an
allowed-signers file (``git verify-commit`` with ``gpg.format=ssh``), and atomic ref
updates. GitPython wraps that same command line anyway; dulwich and pygit2 would bring
their own SSH and HTTP stacks and verify no SSH signatures.
"""
