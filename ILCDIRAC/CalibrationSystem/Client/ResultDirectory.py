"""Writing a calibration's result into a directory without ever mixing two results.

A directory that holds another calibration's result (its calibration.json names another ID)
is refused unless the caller asks to replace it; then the files that result listed are removed
first, so that no stale plot or likelihood file of it stays beside the new ones. Files that are
no part of any result are left alone.
"""
import json
import os

from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import SUMMARY_FILE


class OutputDirectoryError(Exception):
    """The result cannot be written there; the message says why and what to do."""


def writeResultDirectory(directory, files, calibrationID, replace=False):
    """Write the result's files into ``directory``, removing the files of the result it held.

    :param str directory: where to write (created if missing)
    :param dict files: {plain file name: bytes}, from ``resultFiles``
    :param int calibrationID: the calibration the files belong to
    :param bool replace: remove another calibration's result found there instead of refusing
    :return: [(name, size)] of what was written, by name; OutputDirectoryError if refused or unwritable
    """
    unsafe = sorted(name for name in files if name in ("", ".", "..") or os.path.basename(name) != name)
    if unsafe:
        raise OutputDirectoryError(f"The result holds file names that are not plain names: {unsafe}")
    stale = staleFiles(directory, files, calibrationID, replace)
    try:
        os.makedirs(directory, exist_ok=True)
        for name in stale:
            os.remove(os.path.join(directory, name))
        for name, content in files.items():
            with open(os.path.join(directory, name), "wb") as stream:
                stream.write(content)
    except OSError as error:
        raise OutputDirectoryError(f"Cannot write the result to {directory!r}: {error}") from None
    return [(name, len(content)) for name, content in sorted(files.items())]


def staleFiles(directory, files, calibrationID, replace):
    """The files of an earlier result in ``directory`` that the new one does not overwrite.

    :param str directory: the output directory (it may not exist)
    :param dict files: {name: bytes} about to be written
    :param int calibrationID: the calibration about to be written
    :param bool replace: whether another calibration's result may be replaced
    :return: sorted list of file names to remove; OutputDirectoryError if the directory holds
        another calibration's result (and ``replace`` is False) or files the result would overwrite
    """
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise OutputDirectoryError(f"--output-dir {directory!r} is a file, not a directory")
        return []
    held = _heldResult(directory)
    if held is None:
        clashes = sorted(name for name in files if os.path.exists(os.path.join(directory, name)))
        if clashes and not replace:
            raise OutputDirectoryError(
                f"{directory!r} already holds {', '.join(clashes)}, which are not part of a calibration result: "
                "choose another --output-dir, or add --replace to overwrite them"
            )
        return []
    heldID, heldFiles = held
    if heldID != calibrationID and not replace:
        raise OutputDirectoryError(
            f"{directory!r} holds the result of calibration {heldID}: choose another --output-dir, or add "
            f"--replace to remove that result's files ({len(heldFiles)}) and write calibration {calibrationID}'s"
        )
    return sorted(name for name in heldFiles if name not in files and os.path.isfile(os.path.join(directory, name)))


def _heldResult(directory):
    """(calibration ID, [file names]) of the result in ``directory``; None if there is none.

    A calibration.json that cannot be read, or that does not list its files, leaves the
    directory's content unknown: it is refused, to be cleared by hand.
    """
    path = os.path.join(directory, SUMMARY_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as stream:
            summary = json.load(stream)
        heldID, heldFiles = summary["calibrationID"], summary["files"]
    except (OSError, ValueError, TypeError, KeyError):
        raise OutputDirectoryError(
            f"{path!r} is not the calibration.json of a result this version wrote, so the files of that result "
            "are unknown: empty the directory yourself or choose another --output-dir"
        ) from None
    if not isinstance(heldFiles, list) or not all(isinstance(n, str) and os.path.basename(n) == n for n in heldFiles):
        raise OutputDirectoryError(f"{path!r} lists files that are not plain names: empty the directory yourself")
    return heldID, heldFiles
