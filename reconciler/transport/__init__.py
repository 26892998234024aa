"""Talking to a node's MMP: the transport interface, SSH, and the bounded transport.

Owns: running one MMP command and uploading or fetching a file, with host keys
verified and secrets redacted. Sits beside the stages: ``observe`` and ``apply``
use it; it may import ``spec`` and ``common`` only.
"""
