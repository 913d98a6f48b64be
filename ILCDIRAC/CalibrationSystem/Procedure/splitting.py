"""Split the events of one sample across the worker jobs (physics.md 4.2).

The reference divided ``floor(total / nJobs)`` events per job and dropped the remainder (bug 20);
here every event is used: the first ``total % nJobs`` jobs get one event more. Each job reprocesses
the same slice at every step, so the slices are a pure function of the inputs.
"""

from collections import Counter
from typing import NamedTuple

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError


class EventSlice(NamedTuple):
    """The events of one job: the files it touches, events to skip in the first, events to read."""

    files: list
    skip: int
    n_events: int


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SettingsError(f'{name} = {value!r} is not allowed: it must be an integer > 0')


def _check_files(files):
    if not isinstance(files, (list, tuple)) or not files:
        raise SettingsError(f'files = {files!r} is not allowed: give a non-empty list of file names')
    for name in files:
        if not isinstance(name, str) or not name.strip():
            raise SettingsError(f'file name {name!r} is not allowed: file names must be non-empty strings')
    duplicates = sorted(name for name, count in Counter(files).items() if count > 1)
    if duplicates:
        raise SettingsError(f'files listed more than once: {duplicates}; list every file once, '
                            'otherwise the same events are used twice')


def split_events(files, events_per_file, n_jobs):
    """Return ``n_jobs`` contiguous EventSlices covering all events of ``files`` exactly once.

    All files must hold ``events_per_file`` events. Slice sizes differ by at most one.

    :param list files: the sample's files, in order
    :param int events_per_file: events in each file
    :param int n_jobs: number of workers
    :return: list of ``n_jobs`` EventSlice(files, skip, n_events); SettingsError if there are fewer
        events than jobs or the arguments are invalid
    """
    _check_files(files)
    _positive_int('events_per_file', events_per_file)
    _positive_int('n_jobs', n_jobs)
    total = len(files) * events_per_file
    if n_jobs > total:
        raise SettingsError(f'{n_jobs} jobs requested but the {len(files)} file(s) hold only {total} events '
                            f'({events_per_file} per file): use at most {total} jobs or more events')
    size, remainder = divmod(total, n_jobs)
    slices = []
    first = 0
    for job in range(n_jobs):
        n_events = size + (1 if job < remainder else 0)
        first_file = first // events_per_file
        last_file = (first + n_events - 1) // events_per_file
        slices.append(EventSlice(list(files[first_file:last_file + 1]), first - first_file * events_per_file, n_events))
        first += n_events
    return slices
