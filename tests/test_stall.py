"""The stall watchdog's bookkeeping (streams.stall): when a partition counts as stalled."""

from streams.stall import CommitProgress, PartitionProgress, StallDetector


def test_behind_means_records_wait_beyond_the_read_offset():
    assert PartitionProgress(read=None, highwater=59).behind  # records, none delivered
    assert PartitionProgress(read=40, highwater=59).behind
    assert not PartitionProgress(read=58, highwater=59).behind  # last one delivered
    assert not PartitionProgress(read=59, highwater=59).behind  # sought to the end
    assert not PartitionProgress(read=None, highwater=0).behind  # empty partition
    assert not PartitionProgress(read=None, highwater=None).behind  # end not known yet
    # records with the agents: busy (a full stream buffer behind a slow agent), not stalled
    assert not PartitionProgress(read=1768, highwater=1875, in_flight=4096).behind


def test_a_partition_is_stalled_only_when_behind_and_unmoving_long_enough():
    detector = StallDetector(stall_after=20)
    stuck, moving, idle = "votes-3", "votes-0", "votes-1"
    views = {
        stuck: PartitionProgress(None, 59),
        moving: PartitionProgress(10, 100),
        idle: PartitionProgress(57, 57),
    }
    assert detector.observe(0, views) == []
    views[moving] = PartitionProgress(30, 100)  # progress restarts its clock
    assert detector.observe(15, views) == []
    views[moving] = PartitionProgress(60, 100)
    assert detector.observe(20, views) == [stuck]
    # reported once, then again only after another full period without progress
    assert detector.observe(25, views) == []
    assert detector.observe(40, views) == [stuck, moving]  # moving stopped at 20, too


def test_a_partition_that_catches_up_or_moves_away_is_forgotten():
    detector = StallDetector(stall_after=10)
    detector.observe(0, {"a": PartitionProgress(None, 5), "b": PartitionProgress(1, 9)})
    detector.observe(5, {"a": PartitionProgress(4, 5)})  # a caught up, b was revoked
    assert detector.observe(30, {"a": PartitionProgress(4, 5), "b": PartitionProgress(1, 9)}) == []
    detector.reset()
    assert detector.observe(31, {"b": PartitionProgress(1, 9)}) == []
    assert detector.observe(41, {"b": PartitionProgress(1, 9)}) == ["b"]


def test_a_commit_is_held_by_a_hole_only_when_no_record_covers_it():
    # committed 10 (the next to process), 14.. acknowledged: 10..13 never came
    assert CommitProgress(committed=10, lowest_acked=14).blocker == "hole"
    # the same gap while 11 is with an agent: on its way, not a hole
    assert CommitProgress(committed=10, lowest_acked=14, oldest_in_flight=11).blocker == "in_flight"
    # records in flight after the gap do not cover it
    assert CommitProgress(committed=10, lowest_acked=14, oldest_in_flight=20).blocker == "hole"
    # a gap of one Faust commits past (a transaction marker): not a hole
    assert CommitProgress(committed=10, lowest_acked=11).blocker is None
    assert CommitProgress(committed=10, lowest_acked=10).blocker is None
    assert CommitProgress(committed=None, lowest_acked=14).blocker is None  # never committed
    assert CommitProgress(committed=10, lowest_acked=None).blocker is None  # idle
    assert CommitProgress(committed=10, lowest_acked=None, oldest_in_flight=10).blocker == (
        "in_flight"
    )


def test_the_detector_reports_a_hole_or_a_record_in_flight_that_lasts():
    detector = StallDetector(stall_after=20)
    views = {
        "hole": CommitProgress(10, 14, oldest_in_flight=30),
        "busy": CommitProgress(10, None, oldest_in_flight=10),
        "fine": CommitProgress(10, 10),
    }
    assert detector.observe(0, views) == []
    # the busy partition works through its records; the hole's later records, too
    views["busy"] = CommitProgress(12, None, oldest_in_flight=12)
    views["hole"] = CommitProgress(10, 14, oldest_in_flight=45)
    assert detector.observe(20, views) == ["hole"]
    views["busy"] = CommitProgress(12, 13, oldest_in_flight=12)  # 12 never finishes
    assert detector.observe(30, views) == []
    # the hole, not cured, is reported again a period after the first report
    assert detector.observe(40, views) == ["hole", "busy"]


def test_records_read_past_the_commit_with_none_acknowledged_or_in_flight_are_a_hole():
    """F15 (docs/reliability.md): a surviving worker read its dead peer's votes[3] 9-17
    after the takeover and decided none of them: committed 9, read 17, nothing
    acknowledged, nothing with an agent. Neither watchdog saw it (the read offset was at
    the end; no acknowledged record bounded a hole); on the code before this was None."""
    vanished = CommitProgress(committed=9, lowest_acked=None, oldest_in_flight=None, read=17)
    assert vanished.blocker == "hole" and vanished.hole_end == 17
    # the same read, but the records are with an agent: busy, not a hole
    busy = CommitProgress(committed=9, lowest_acked=None, oldest_in_flight=9, read=17)
    assert busy.blocker == "in_flight"
    # just sought back to the commit (read is the next offset to read): nothing read yet
    assert CommitProgress(committed=9, lowest_acked=None, read=9).blocker is None
    assert CommitProgress(committed=18, lowest_acked=None, read=17).blocker is None  # all done
    detector = StallDetector(stall_after=20)
    assert detector.observe(0.0, {"votes-3": vanished}) == []
    assert detector.observe(21.0, {"votes-3": vanished}) == ["votes-3"]
