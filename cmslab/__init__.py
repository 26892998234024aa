"""cmslab: emulated Cisco Meeting Server nodes (MMP over SSH, real PostgreSQL clustering over TLS).

Start with `cmslab up`; see docs/cmslab-semantics.md. This package never imports `reconciler`.
"""
