"""Known answers for splitting events across jobs (no remainder dropped: bug 20)."""

import pytest

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.splitting import EventSlice, split_events

FILES = ['a.slcio', 'b.slcio', 'c.slcio']


def test_even_split_within_files():
    assert split_events(FILES, 10, 3) == [
        EventSlice(['a.slcio'], 0, 10), EventSlice(['b.slcio'], 0, 10), EventSlice(['c.slcio'], 0, 10)]


def test_remainder_goes_to_the_first_jobs():
    # 30 events, 4 jobs: 8, 8, 7, 7
    assert split_events(FILES, 10, 4) == [
        EventSlice(['a.slcio'], 0, 8),
        EventSlice(['a.slcio', 'b.slcio'], 8, 8),      # events 8..15
        EventSlice(['b.slcio', 'c.slcio'], 6, 7),      # events 16..22
        EventSlice(['c.slcio'], 3, 7),                 # events 23..29
    ]


def test_slice_spanning_several_files():
    assert split_events(FILES, 2, 1) == [EventSlice(FILES, 0, 6)]
    assert split_events(FILES, 2, 2) == [
        EventSlice(['a.slcio', 'b.slcio'], 0, 3), EventSlice(['b.slcio', 'c.slcio'], 1, 3)]


def test_one_event_per_job():
    slices = split_events(['x', 'y'], 2, 4)
    assert slices == [
        EventSlice(['x'], 0, 1), EventSlice(['x'], 1, 1), EventSlice(['y'], 0, 1), EventSlice(['y'], 1, 1)]


@pytest.mark.parametrize('n_files, per_file, n_jobs', [(1, 1, 1), (3, 10, 7), (5, 1000, 97), (7, 3, 21), (4, 13, 5)])
def test_every_event_exactly_once(n_files, per_file, n_jobs):
    files = [f'f{i}' for i in range(n_files)]
    slices = split_events(files, per_file, n_jobs)
    assert len(slices) == n_jobs
    sizes = [s.n_events for s in slices]
    assert max(sizes) - min(sizes) <= 1 and sorted(sizes, reverse=True) == sizes
    covered = []
    for piece in slices:
        first_file = files.index(piece.files[0])
        assert piece.files == files[first_file:first_file + len(piece.files)]
        assert 0 <= piece.skip < per_file
        start = first_file * per_file + piece.skip
        covered.extend(range(start, start + piece.n_events))
        last = start + piece.n_events - 1
        assert files.index(piece.files[-1]) == last // per_file     # no file listed that is not read
    assert covered == list(range(n_files * per_file))


def test_slice_files_are_new_lists():
    files = list(FILES)
    slices = split_events(files, 10, 1)
    slices[0].files.append('d')
    assert files == FILES


def test_tuple_of_files_accepted():
    assert split_events(tuple(FILES), 10, 1) == [EventSlice(FILES, 0, 30)]


def test_more_jobs_than_events():
    with pytest.raises(SettingsError, match='31 jobs.*only 30 events'):
        split_events(FILES, 10, 31)


@pytest.mark.parametrize('files, per_file, n_jobs, message', [
    ([], 10, 1, 'non-empty list'),
    ('a.slcio', 10, 1, 'non-empty list'),
    (None, 10, 1, 'non-empty list'),
    (['a', ''], 10, 1, 'non-empty strings'),
    (['a', 3], 10, 1, 'non-empty strings'),
    (['a', 'b', 'a'], 10, 1, "more than once: \\['a'\\]"),
    (FILES, 0, 1, 'events_per_file = 0'),
    (FILES, 10.0, 1, 'events_per_file = 10.0'),
    (FILES, True, 1, 'events_per_file = True'),
    (FILES, 10, 0, 'n_jobs = 0'),
    (FILES, 10, -2, 'n_jobs = -2'),
    (FILES, 10, 2.0, 'n_jobs = 2.0'),
])
def test_bad_inputs(files, per_file, n_jobs, message):
    with pytest.raises(SettingsError, match=message):
        split_events(files, per_file, n_jobs)
