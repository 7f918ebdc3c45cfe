"""chat/messaging/onlinenames.py on its own: the sorted, reference-counted names online that welcome and who page
through, against a plain model (a Counter) under any sequence of arrivals and departures."""
from collections import Counter

from hypothesis import given, strategies as st

from chat.messaging.onlinenames import OnlineNames

NAMES = st.sampled_from(["ann", "bob", "carol", "dave", "Émile", "zoë", "a", "b-1", "b_1"])
STEPS = st.lists(st.tuples(st.booleans(), NAMES), max_size=60)


@given(STEPS, st.integers(min_value=1, max_value=5))
def test_the_names_are_the_models_in_order_and_pages_cover_them_once(steps, limit):
    names, model = OnlineNames(), Counter()
    for arriving, name in steps:
        if arriving:
            assert names.add(name) == (model[name] == 0)
            model[name] += 1
        else:
            assert names.discard(name) == (model[name] == 1)
            if model[name]:
                model[name] -= 1
        model += Counter()  # drops the zeros
    assert names.names() == sorted(model)
    assert len(names) == len(model)
    assert all((name in names) == (name in model) for _, name in steps)
    seen, after, more = [], None, True
    while more:
        page, more = names.page(after, limit)
        assert len(page) <= limit
        seen += page
        if page:
            after = page[-1]
        else:
            assert not more
    assert seen == sorted(model)


def test_a_page_after_a_name_that_is_not_online_starts_at_the_next_one():
    names = OnlineNames()
    for name in ("ann", "carol", "erin"):
        names.add(name)
    assert names.page("bob", 1) == (["carol"], True)
    assert names.page("zed", 5) == ([], False)
    assert names.page(None, 3) == (["ann", "carol", "erin"], False)
