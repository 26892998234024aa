"""The desired state: the spec model, loading it with positions, its rules and file checks.

Owns: what a valid spec is (model, cross-field rules, certificate checks), every
``file:line:column`` message about it, the JSON schema, finding specs in a folder,
and reading the files it names. May import ``common`` only. The model, the rules
(``rules`` runs the ``*_rules`` modules) and ``model_errors`` are pure; ``loader``,
``file_checks`` and ``cert_checks`` read files (bounded).
"""
