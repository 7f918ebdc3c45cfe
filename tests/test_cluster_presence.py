"""chat/cluster/presence.py on its own: the mirror of who is online on which process."""
from chat.cluster.presence import ClusterPresence
from chat.messaging.onlinenames import OnlineNames


class FakeHub:
    def __init__(self, *users):
        self._users = dict.fromkeys(users)
        self.names = OnlineNames()
        for user in users:
            self.names.add(user)

    def is_online(self, user):
        return user in self._users

    def users(self):
        return self._users.keys()


def test_a_user_is_online_while_any_process_has_them():
    cluster = ClusterPresence(FakeHub("local"))
    assert cluster.set_user("p1", "ann", True)
    assert not cluster.set_user("p1", "ann", True)  # no change
    assert cluster.set_user("p2", "ann", True)
    assert cluster.online() == ["ann", "local"]
    assert cluster.set_user("p1", "ann", False)
    assert cluster.is_online("ann")
    assert cluster.drop("p2") == {"ann"}
    assert not cluster.is_online("ann")
    assert cluster.is_online("local")


def test_replacing_a_list_reports_exactly_the_changed_users():
    cluster = ClusterPresence(FakeHub())
    assert cluster.replace("p1", {"a", "b"}) == {"a", "b"}
    assert cluster.replace("p1", {"b", "c"}) == {"a", "c"}
    assert cluster.online() == ["b", "c"]
    assert cluster.instances() == {"p1"}
    assert cluster.drop("nobody") == set()
