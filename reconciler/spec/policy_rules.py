"""Rules over the spec's policy block: maintenance windows (time zone, not empty).

Pure: imports no I/O library (zoneinfo looks the time zone up in the tz database).
"""

from __future__ import annotations

import zoneinfo

from reconciler.common.diagnostics import Diagnostic
from reconciler.spec.model import ClusterSpec
from reconciler.spec.yaml_source import FieldPath, YamlDocument


def check_maintenance_windows(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for i, window in enumerate(spec.policy.maintenance_windows):
        path: FieldPath = ("policy", "maintenance_windows", i)
        try:
            zoneinfo.ZoneInfo(window.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            out.append(
                doc.error(
                    (*path, "timezone"),
                    f"unknown time zone '{window.timezone}'; use an IANA name such as "
                    "Europe/London or UTC",
                )
            )
        if window.start == window.end:
            out.append(
                doc.error(
                    (*path, "end"),
                    f"the window starts and ends at {window.start}: it is empty",
                )
            )
    return out
