"""Values many bindings repeat are held once, and the table of them stays bounded."""

from control_server.repeated_values import RepeatedValues


def test_an_equal_value_comes_back_as_the_first_object_seen():
    repeated = RepeatedValues()
    first = "".join(["sipp-", "bench"])
    second = "".join(["sipp", "-bench"])
    assert first is not second
    assert repeated.one(first) is first
    assert repeated.one(second) is first


def test_past_its_limit_the_table_starts_again():
    repeated = RepeatedValues(limit=3)
    for n in range(3):
        repeated.one(f"agent {n}")
    assert len(repeated) == 3
    later = repeated.one("agent 3")
    assert later == "agent 3" and len(repeated) == 1
