"""Publish files atomically, with the user's umask, leaving nothing behind when killed.

Every file lipdub hands to a user (videos, checkpoints, exported weights, dataset tables) goes
through `AtomicFile`, because the obvious way of doing it (``tempfile.mkstemp`` beside the target,
write, ``os.replace``) goes wrong three ways:

- **Mode 0600.** ``mkstemp`` creates its file readable by the owner only, and the rename keeps
  that mode, so a web server or a colleague could not read a finished video. Here the file is
  created with ``0o666`` filtered by the process umask (0644 under the usual 022), exactly what
  ``open(path, "w")`` would give.
- **Debris after SIGKILL.** A named temporary survives a killed process (no ``finally`` runs).
  On Linux the file is created *unnamed* (``O_TMPFILE``) in the target's directory: it has no
  name until it is published, so a process killed at any point leaves nothing behind. It is
  published by linking ``/proc/self/fd/N`` into the directory: straight onto the target when
  the target must not exist (``os.link`` refuses to replace, so two writers cannot clobber each
  other), or onto a hidden name that is then renamed over the target when overwriting.
- **Filesystems without O_TMPFILE** (some network and FUSE filesystems, non-Linux systems) get a
  hidden named temporary ``.name.<random>.tmp`` beside the target instead, given the umask mode,
  and removed when the write fails or is interrupted (KeyboardInterrupt, or SIGTERM where the
  entry point turns it into an exception, as ``lipdub``'s CLI does). Only SIGKILL can leave
  such a file behind, and only on such a filesystem.

Writers that need a path rather than a file object (FFmpeg through PyAV) use `AtomicFile.path`,
which names the same open file (``/proc/self/fd/N`` or the named temporary).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

#: Errors with which ``open(O_TMPFILE)`` says "not here" (old kernels give EISDIR, unsupported
#: filesystems EOPNOTSUPP); anything else (no permission, no space) is a real failure.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux (4.7+) reports it in ``/proc/self/status``; elsewhere the only way is the
    ``os.umask`` round trip, which briefly sets it process-wide (harmless at the points lipdub
    calls this, but not free of races, hence the preference).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


class AtomicFile:
    """A new file that appears at ``target`` only when `publish` is called, complete.

    Use as a context manager: leaving the block normally publishes, leaving it with an exception
    discards (the target, if it existed, is untouched). ``overwrite=False`` refuses to replace an
    existing target, checked again at publish time without a race where the system allows.
    ``file`` is a binary read/write file object; ``path`` names the same file for libraries that
    open by name.
    """

    def __init__(self, target: Path | str, overwrite: bool = False) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self._named: Path | None = None
        self._done = False
        directory = self.target.parent
        fd = self._open_unnamed(directory)
        if fd is None:
            fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=directory)
            self._named = Path(name)
            try:
                os.fchmod(fd, default_file_mode())
            except OSError:  # pragma: no cover - a filesystem without modes; the file is still usable
                logger.debug("cannot set the mode of %s", name, exc_info=True)
        self.file = os.fdopen(fd, "w+b")

    @staticmethod
    def _open_unnamed(directory: Path) -> int | None:
        flag = getattr(os, "O_TMPFILE", None)
        if flag is None or not Path("/proc/self/fd").is_dir():
            return None
        try:
            # The mode passes through the umask like any other open().
            return os.open(directory, flag | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as error:
            if error.errno in _NO_TMPFILE:
                logger.debug("%s: no O_TMPFILE (%s); using a named temporary", directory, error.strerror)
                return None
            raise

    @property
    def unnamed(self) -> bool:
        """True when the file has no name yet (nothing to clean up if the process dies)."""
        return self._named is None

    @property
    def path(self) -> str:
        """A path that opens this very file (for writers that take a name, e.g. FFmpeg)."""
        if self._named is not None:
            return str(self._named)
        return f"/proc/self/fd/{self.file.fileno()}"

    def publish(self) -> None:
        """Flush the data to disk and give the file its name (replacing the target if allowed)."""
        if self._done:
            raise RuntimeError(f"{self.target}: already published or discarded")
        self.file.flush()
        os.fsync(self.file.fileno())
        try:
            if self._named is not None:
                self._publish_named()
            elif self.overwrite:
                hidden = self.target.with_name(f".{self.target.name}.{secrets.token_hex(4)}.tmp")
                _link_fd(self.file.fileno(), hidden)
                try:
                    os.replace(hidden, self.target)
                except BaseException:
                    hidden.unlink(missing_ok=True)
                    raise
            else:
                _link_fd(self.file.fileno(), self.target)  # EEXIST instead of replacing
        except BaseException:
            self.discard()
            raise
        self._done = True
        self.file.close()

    def _publish_named(self) -> None:
        assert self._named is not None
        if self.overwrite:
            os.replace(self._named, self.target)
        else:
            try:
                os.link(self._named, self.target)  # refuses an existing target
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links: check, then rename
                if self.target.exists():
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(self.target)) from None
                os.replace(self._named, self.target)
            else:
                self._named.unlink()
        self._named = None

    def discard(self) -> None:
        """Drop the file: nothing appears at the target, the temporary (if named) is removed."""
        if self._done:
            return
        self._done = True
        try:
            self.file.close()
        except OSError:
            pass
        if self._named is not None:
            self._named.unlink(missing_ok=True)
            self._named = None

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.publish()
        else:
            self.discard()


def _link_fd(fd: int, target: Path) -> None:
    """Give the unnamed file open as ``fd`` the name ``target`` (linkat, following /proc's link).

    ``os.link("/proc/self/fd/N", ...)`` alone calls link(2), which links the /proc symlink itself
    and fails with EXDEV; a directory fd for /proc/self/fd makes Python use linkat(2) with
    AT_SYMLINK_FOLLOW, which links the file the descriptor points at.
    """
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), target, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def publish_directory(source: Path | str, target: Path | str, overwrite: bool = False) -> None:
    """Copy the folder ``source`` to ``target`` so that ``target`` is never half there.

    The copy is made under a hidden name beside the target and renamed into place; an existing
    target (``overwrite``) is moved aside first and deleted only once the new one is in place.
    Modes are copied from ``source``, whose files were written with the umask.
    """
    source, target = Path(source), Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    token = secrets.token_hex(4)
    staging = target.with_name(f".{target.name}.{token}.tmp")
    shutil.copytree(source, staging)
    old = target.with_name(f".{target.name}.{token}.old")
    try:
        if target.exists():
            target.rename(old)
        staging.rename(target)
    except BaseException:
        if old.exists() and not target.exists():
            old.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_atomic(target: Path | str, data: bytes | str, overwrite: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``target`` in one atomic step."""
    with AtomicFile(target, overwrite=overwrite) as handle:
        handle.file.write(data.encode("utf-8") if isinstance(data, str) else data)
