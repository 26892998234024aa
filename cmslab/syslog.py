"""A node's syslog file, in the CMS `syslog follow` format.

`<Mon DD HH:MM:SS> <facility>.<severity> <host> <process>[<pid>]: <message>`; tabs are escaped as
`#011` the way rsyslog does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class Syslog:
    def __init__(self, path: Path, host: str) -> None:
        self.path = path
        self.host = host

    def log(
        self,
        process: str,
        message: str,
        severity: str = "info",
        facility: str = "user",
        pid: int | None = None,
    ) -> None:
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
        text = message.replace("\t", "#011").replace("\n", "#012")
        line = (
            f"{stamp} {facility}.{severity} {self.host} {process}[{pid or os.getpid()}]: {text}\n"
        )
        with self.path.open("a") as f:
            f.write(line)

    def tail(self, count: int = 50) -> list[str]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return lines[-count:]
