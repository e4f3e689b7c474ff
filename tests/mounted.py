"""A Secret's files as the kubelet mounts them, for tests of certificate renewal.

The kubelet's atomic writer puts each version of the files in a directory of its own
(`..<timestamp>`), points the symlink `..data` at it, and each file name at
`..data/<file>`; an update writes a new version directory and renames a new `..data`
link over the old one, so a reader sees either every old file or every new one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


class MountedSecret:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def update(self, files: dict[str, bytes]) -> None:
        """Swap every file for its new content at once."""
        version = self.directory / f"..{uuid.uuid4().hex}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
        data = self.directory / "..data"
        previous = data.resolve() if data.is_symlink() else None
        link = self.directory / "..data_tmp"
        link.symlink_to(version.name)
        os.replace(link, data)
        for name in files:
            file = self.directory / name
            if not file.is_symlink():
                file.symlink_to(Path("..data") / name)
        if previous is not None:
            shutil.rmtree(previous)
