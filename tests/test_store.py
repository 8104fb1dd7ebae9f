from __future__ import annotations

import math

import pytest

from hwnas.experiment.store import Store, StoreError, Trial


def make_trial(i, status="running"):
    return Trial(
        id=i, arch={"x": i}, arch_hash=f"h{i}", status=status, seed=i, describe=f"arch {i}"
    )


def test_round_trip_and_nan_becomes_null(tmp_path):
    with Store(tmp_path / "study.db") as st:
        t = make_trial(0)
        st.start_trial(t, {"rng": [1]})
        assert st.trials()[0].status == "running"
        assert st.count_finished() == 0
        t.status, t.metrics, t.curve = (
            "complete",
            {"accuracy": 0.9, "latency_ms": math.nan},
            [{"epoch": 1}],
        )
        st.finish_trial(t, {"rng": [2]})
    with Store(tmp_path / "study.db", create=False) as st:
        (got,) = st.trials()
        assert got.status == "complete"
        assert got.metrics == {"accuracy": 0.9, "latency_ms": None}
        assert got.curve == [{"epoch": 1}]
        assert st.get_meta_json("strategy_state") == {"rng": [2]}
        assert st.by_hash("h0").id == 0
        assert st.count_finished() == 1 and st.next_id() == 1


def test_running_trials_are_not_answers(tmp_path):
    with Store(tmp_path / "study.db") as st:
        st.start_trial(make_trial(0))
        assert st.by_hash("h0") is None


def test_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    bad = tmp_path / "study.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable study database"):
        Store(bad)
    import sqlite3

    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE foo (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not an hwnas study"):
        Store(other)
    with pytest.raises(StoreError, match="no study here"):
        Store(tmp_path / "nothing.db", create=False)


def test_status_is_checked(tmp_path):
    import sqlite3

    with Store(tmp_path / "study.db") as st:
        t = make_trial(0)
        st.start_trial(t)
        t.status = "weird"
        with pytest.raises(sqlite3.IntegrityError):
            st.finish_trial(t)


def test_elapsed_time_leaves_out_the_pauses_between_calls():
    """A study resumed after a pause: its elapsed time is the time some trial ran, not the
    first start to the last end (overlapping workers count once, a nested span adds nothing)."""
    from hwnas.experiment.study import busy_seconds

    assert busy_seconds([]) == 0.0
    assert busy_seconds([(20.0, 25.0), (0.0, 10.0), (5.0, 12.0), (21.0, 22.0)]) == 17.0
    # two calls, a night apart
    assert busy_seconds([(0.0, 600.0), (86_400.0, 86_700.0)]) == 900.0


def test_a_front_is_listed_along_its_first_cost_objective():
    """pareto.json and the search's summary list a front by its first cost objective: an
    SRAM front listed by MACs came out of SRAM order."""
    from hwnas.experiment.study import along_front

    def t(i, **m):
        return Trial(id=i, arch={}, arch_hash=str(i), status="complete", seed=0, metrics=m)

    front = [t(0, macs=9.0, peak_sram_bytes=1.0), t(1, macs=1.0, peak_sram_bytes=5.0)]
    sram = [("accuracy", "max"), ("peak_sram_bytes", "min")]
    assert [x.id for x in sorted(front, key=along_front(sram))] == [0, 1]
    assert [x.id for x in sorted(front, key=along_front([("accuracy", "max")]))] == [1, 0]
    timed = [t(0, latency_ms=2.0, macs=1.0), t(1, latency_ms=1.0, macs=9.0)]
    assert [x.id for x in sorted(timed, key=along_front([("accuracy", "max")]))] == [1, 0]
