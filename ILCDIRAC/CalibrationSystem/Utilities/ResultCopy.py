"""Copying the results of a finished calibration to where its owner asked: ``outputPath/calib<ID>/``.

Where the files go is the agent's choice (option ``ResultStorage``), not the job backend's: on a
storage element (the calibration's ``outputSE``), stored and registered in the file catalogue as
the owner's files, under the owner's proxy, as iLCDirac did; or, on the local deployment, into a
directory of the agent's host. A copy may be repeated (after a failure half-way, or after
``changeDirectoryToCopyTo``): files already there are replaced.
"""
import os
import tempfile

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities.Proxy import executeWithUserProxy
from DIRAC.DataManagementSystem.Client.DataManager import DataManager

STORAGE_ELEMENT, LOCAL = "StorageElement", "Local"
#: The values of the agent option ResultStorage
RESULT_STORAGES = (STORAGE_ELEMENT, LOCAL)


def copyResults(calibration, files, storage):
    """Copy a calibration's result files to ``OutputPath/calib<ID>/``.

    :param dict calibration: the calibration's row (CalibrationID, OutputPath, OutputSE, Owner, OwnerGroup)
    :param dict files: {file name: bytes}, from ``CalibrationResults.resultFiles``
    :param str storage: 'StorageElement' (the calibration's OutputSE, as the owner) or 'Local'
        (a directory on this host)
    :return: S_OK(the directory or LFN directory written) or S_ERROR saying what was not copied and why
    """
    bad = sorted(name for name in files if not _isFileName(name))
    if bad:
        return S_ERROR(f"Cannot copy the results of calibration {calibration['CalibrationID']}: "
                       f"{bad} are not plain file names")
    if storage == STORAGE_ELEMENT:
        return toStorageElement(calibration, files)
    if storage == LOCAL:
        return toLocalDirectory(calibration, files)
    return S_ERROR(f"Unknown ResultStorage {storage!r}: use one of {', '.join(RESULT_STORAGES)}")


def toLocalDirectory(calibration, files):
    """Write the files into ``OutputPath/calib<ID>/`` on this host.

    :param dict calibration: the calibration's row (CalibrationID, OutputPath)
    :param dict files: {plain file name: bytes}
    :return: S_OK(the directory written) or S_ERROR
    """
    directory = os.path.join(calibration["OutputPath"], f"calib{calibration['CalibrationID']}")
    try:
        os.makedirs(directory, exist_ok=True)
        for name, content in files.items():
            path = os.path.join(directory, name)
            with open(f"{path}.partial", "wb") as stream:
                stream.write(content)
            os.replace(f"{path}.partial", path)
    except OSError as error:
        return S_ERROR(f"Cannot write the results into {directory}: {error}")
    return S_OK(directory)


def toStorageElement(calibration, files):
    """Store the files as ``OutputPath/calib<ID>/<name>`` on OutputSE and register them in the
    file catalogue, as the owner.

    :param dict calibration: the calibration's row (CalibrationID, OutputPath, OutputSE, Owner, OwnerGroup)
    :param dict files: {plain file name: bytes}
    :return: S_OK(the LFN directory) or S_ERROR
    """
    calibrationID, outputPath, outputSE = (calibration[k] for k in ("CalibrationID", "OutputPath", "OutputSE"))
    owner, group = calibration["Owner"], calibration["OwnerGroup"]
    directory = f"{outputPath.rstrip('/')}/calib{calibrationID}"
    label = f"the results of calibration {calibrationID} to {directory} on {outputSE}"
    if not outputPath.startswith("/") or not outputSE:
        return S_ERROR(f"Cannot copy {label}: the output path must be an absolute LFN and the SE must be named")
    if not owner or not group:
        # Without both, executeWithUserProxy would silently use the host certificate
        return S_ERROR(f"Cannot copy {label}: its owner and owner group must both be known")
    try:
        result = executeWithUserProxy(_putAndRegister)(
            directory, files, outputSE, proxyUserName=owner, proxyUserGroup=group, executionLock=True
        )
    except Exception as error:  # pylint: disable=broad-except
        result = S_ERROR(f"{type(error).__name__}: {error}")
    if not result["OK"]:
        return S_ERROR(f"Cannot copy {label} as {owner}/{group}: {result['Message']}")
    return S_OK(directory)


def _putAndRegister(directory, files, storageElement):
    """Upload and register every file with the credentials in place (the owner's proxy);
    S_ERROR naming the files that failed."""
    dataManager = DataManager()
    failures = []
    with tempfile.TemporaryDirectory(prefix="calibration_results_") as local:
        for name, content in sorted(files.items()):
            path = os.path.join(local, name)
            with open(path, "wb") as stream:
                stream.write(content)
            result = dataManager.putAndRegister(f"{directory}/{name}", path, storageElement, overwrite=True)
            if not result["OK"]:
                failures.append(f"{name}: {result['Message']}")
            elif result["Value"]["Failed"]:
                failures.append(f"{name}: stored but not registered in the file catalogue")
    if failures:
        return S_ERROR("; ".join(failures))
    return S_OK()


def _isFileName(name):
    """Whether a result file name stays inside its calibration's directory."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name
