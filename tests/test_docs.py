"""What the docs promise holds in the code: docs/configuration.md's table lists every setting (a limit nobody can find
is a limit nobody sets), and chat/'s modules keep the layers their package docstrings describe."""
import ast
import dataclasses
import os

from chat.config import Settings, env_name, flag_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGURATION = os.path.join(ROOT, "docs", "configuration.md")


def _setting_rows(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f if line.startswith("| `--")]


def test_every_setting_has_a_row_in_the_configuration_table():
    rows = _setting_rows(CONFIGURATION)
    missing = []
    for f in dataclasses.fields(Settings):
        flag, variable = flag_names(f)[0], env_name(f.name)
        if not any(f"`{flag}" in row and f"`{variable}`" in row for row in rows):
            missing.append(f"{flag} ({variable})")
    assert missing == []


def test_every_configuration_row_is_a_real_setting():
    known = {env_name(f.name) for f in dataclasses.fields(Settings)}
    documented = {row.split("|")[2].strip().strip("`") for row in _setting_rows(CONFIGURATION)}
    assert documented - known == set()


def test_the_settings_table_lives_in_docs_not_in_the_readme():
    """A row added to the README (by a branch from before the move) belongs in docs/configuration.md."""
    assert _setting_rows(os.path.join(ROOT, "README.md")) == []


# ---- the layers that chat/'s package docstrings describe --------------------------------------------------------

CHAT = os.path.join(ROOT, "chat")


def _chat_modules():
    """{module name: parsed tree} for every module under chat/."""
    modules = {}
    for directory, _, files in os.walk(CHAT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                with open(path, encoding="utf-8") as f:
                    modules[".".join(parts)] = (ast.parse(f.read(), path), name == "__init__.py")
    return modules


MODULES = _chat_modules()


def _imports(module):
    """[(imported module, names taken from it)] of `module`, relative imports resolved; `names` is () for `import X`."""
    tree, is_package = MODULES[module]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            names = tuple(alias.name for alias in node.names)
            found.append((base, names))
            # `from chat.x import y` may take a module y: count chat.x.y as imported too
            found += [(f"{base}.{n}", ()) for n in names if f"{base}.{n}" in MODULES]
    return found


def _chat_imports(module):
    return {name for name, _ in _imports(module) if name == "chat" or name.startswith("chat.")}


def _within(name, *packages):
    return any(name == p or name.startswith(p + ".") for p in packages)


def _violations(importers, forbidden=None, allowed=None):
    """(importer, imported) pairs where a module in `importers` imports a chat module it may not."""
    found = set()
    for module in MODULES:
        if not _within(module, *importers):
            continue
        for name in _chat_imports(module):
            if _within(name, *importers):
                continue  # within its own package
            if forbidden is not None and _within(name, *forbidden):
                found.add((module, name))
            if allowed is not None and not _within(name, *allowed):
                found.add((module, name))
    return found


def _check(rule, found):
    """`found`: (importer, what it takes) pairs that break `rule`; there must be none."""
    assert sorted(found) == [], f"breaches of the {rule} rule"


def test_the_websocket_layer_imports_nothing_from_chat():
    _check("websocket", _violations(["chat.websocket"], allowed=[]))


def test_the_store_imports_only_records_config_and_clock():
    _check("store", _violations(["chat.store"], allowed=["chat.records", "chat.config", "chat.clock"]))


def test_accounts_import_nothing_from_messaging_cluster_uploads_bots_or_websocket():
    rule = ["chat.messaging", "chat.cluster", "chat.uploads", "chat.bots", "chat.websocket"]
    _check("accounts", _violations(["chat.accounts"], forbidden=rule))


def test_messaging_imports_nothing_from_cluster_uploads_or_bots():
    _check("messaging", _violations(["chat.messaging"], forbidden=["chat.cluster", "chat.uploads", "chat.bots"]))


def test_only_the_app_imports_the_cluster():
    others = [m for m in MODULES if not _within(m, "chat.cluster", "chat.app")]
    _check("cluster", {(m, n) for m in others for n in _chat_imports(m) if _within(n, "chat.cluster")})


# Redis holds what several processes share: the cluster's bus and presence, and (through one module of the accounts)
# sessions, tokens, sign-in limits and guest-name holds.
REDIS_USERS = {"chat.accounts.redis_calls"}


def test_only_the_cluster_and_the_accounts_shared_state_import_redis():
    importers = {m for m in MODULES if any(_within(n, "redis") for n, _ in _imports(m))}
    assert {m for m in importers if not _within(m, "chat.cluster")} == REDIS_USERS


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_takes_an_underscore_name_from_another():
    found = set()
    for module in MODULES:
        for name, names in _imports(module):
            if _within(name, "chat") and name != module:
                found |= {(module, f"{name}.{n}") for n in names if _private(n)}
    _check("underscore imports", found)


def test_no_module_reaches_for_an_underscore_attribute_of_an_imported_module():
    found = set()
    for module, (tree, _) in MODULES.items():
        bound = {}  # local name -> the chat module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES and alias.asname:
                        bound[alias.asname] = alias.name
        for base, names in _imports(module):
            for n in names:
                if f"{base}.{n}" in MODULES:
                    bound[n] = f"{base}.{n}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
                target = bound.get(node.value.id)
                if target is not None and target != module:
                    found.add((module, f"{target}.{node.attr}"))
    _check("underscore attributes", found)
