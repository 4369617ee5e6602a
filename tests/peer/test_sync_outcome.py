"""The one line and the JSON a script reads after a sync, with what was skipped."""

from peer.sync_outcome import SessionOutcome


def done(**changes) -> SessionOutcome:
    return SessionOutcome(True, 0, "done", status=200, call_id="c1", bytes=120, files=3,
                          seconds=0.5, **changes)


def test_a_sync_that_skipped_nothing_keeps_the_line_it_always_had():
    assert done().line() == "done: 3 file(s), 120 bytes in 0.50 s (session c1)"
    assert done().as_dict()["skipped"] == []


def test_what_a_folder_sync_skipped_ends_the_done_line_and_is_listed_in_the_json():
    skipped = ("a (symlink to '/etc' leads out of the dataset)", "p (not a regular file)")
    outcome = done(skipped=skipped)
    assert outcome.line() == ("done: 3 file(s), 120 bytes in 0.50 s (session c1); 2 skipped: "
                              "a (symlink to '/etc' leads out of the dataset); p (not a regular file)")
    assert outcome.as_dict()["skipped"] == list(skipped)


def test_a_long_skipped_list_is_cut_short_in_the_line_but_whole_in_the_json():
    skipped = tuple(f"f{i} (reason)" for i in range(10))
    outcome = done(skipped=skipped)
    assert outcome.line().endswith("; 10 skipped: f0 (reason); f1 (reason); f2 (reason); and 7 more")
    assert len(outcome.as_dict()["skipped"]) == 10
