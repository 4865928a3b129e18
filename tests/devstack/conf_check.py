"""Check the values the devstack plugin writes with ``iniset`` against the
oslo.config options they land in.

    conf_check.py table TABLE         write the option table (pickle)
    conf_check.py check TABLE LOG     check every entry of LOG

LOG holds the stubbed ``iniset`` calls: FILE, SECTION, OPTION and VALUE,
each ended by a NUL. A file is checked when its name is in ``FILES``; the
others (the uwsgi ini) are not oslo.config files and are skipped.

The table comes from the real option definitions, the way the services
load them: every option registered by ``import magnum.conf`` (what
magnum-api and magnum-conductor register at start), the oslo-config-generator
namespaces of Magnum's sample config plus this driver's, and, for a section
that sets ``auth_type``, that keystoneauth plugin's options (keystoneauth
registers them when it loads the plugin). Building it takes a couple of
seconds; checking only unpickles it, so that each devstack run stays cheap.

Exit status 1 with one line per bad entry: an option no code registers, or
a value the option's type rejects (``[api] host = [::]``: not an IP address).
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings

# The oslo.config files the plugin writes, and the generator namespaces
# whose options they may hold besides those ``import magnum.conf`` registers
# (Magnum's etc/magnum/magnum-config-generator.conf, plus the proxy-headers
# middleware of its api-paste.ini pipeline and the celtic driver).
FILES = {
    "magnum.conf": (
        "magnum.conf", "oslo.concurrency", "oslo.db", "oslo.log", "oslo.messaging",
        "oslo.middleware.cors", "oslo.middleware.http_proxy_to_wsgi", "oslo.policy",
        "oslo.reports", "oslo.service.periodic_task", "oslo.service.service",
        "oslo.versionedobjects", "keystonemiddleware.auth_token", "magnum_celtic",
    ),
}


def _names(opt) -> list[str]:
    """The names an option is read under in a file (oslo.config reads a
    file's keys as the option's dest: "auth-url" is auth_url)."""
    names = [opt.dest]
    for deprecated in opt.deprecated_opts:
        if deprecated.name:
            names.append(deprecated.name.replace("-", "_"))
    return names


def _group_name(group) -> str:
    if group is None:
        return "DEFAULT"
    return group if isinstance(group, str) else group.name


def build_table() -> dict:
    """{file: {(section, option): type}}, plus keystoneauth plugin options."""
    warnings.simplefilter("ignore")
    from keystoneauth1 import loading
    from oslo_config import cfg
    from oslo_config import generator

    import magnum.conf  # noqa: F401 registers Magnum's options on cfg.CONF

    table: dict = {"files": {}, "plugins": {}}
    registered = {}
    for opt_info in cfg.CONF._opts.values():  # [DEFAULT]
        for name in _names(opt_info["opt"]):
            registered[("DEFAULT", name)] = opt_info["opt"].type
    for group_name, group in cfg.CONF._groups.items():
        for opt_info in group._opts.values():
            for name in _names(opt_info["opt"]):
                registered[(group_name, name)] = opt_info["opt"].type
    for file_name, namespaces in FILES.items():
        options = dict(registered)
        for _namespace, groups in generator._list_opts(list(namespaces)):
            for group, opts in groups:
                for opt in opts:
                    for name in _names(opt):
                        options[(_group_name(group), name)] = opt.type
        table["files"][file_name] = options
    for plugin in loading.get_available_plugin_names():
        try:
            opts = loading.get_auth_plugin_conf_options(plugin)
        except Exception:  # a plugin whose optional dependency is missing
            continue
        table["plugins"][plugin] = {name: opt.type for opt in opts for name in _names(opt)}
    return table


def read_log(path: str) -> list[tuple[str, str, str, str]]:
    """The (file, section, option, value) entries of an iniset log."""
    with open(path, "rb") as handle:
        fields = handle.read().decode("utf-8").split("\0")
    fields.pop()  # after the last NUL
    return [tuple(fields[i:i + 4]) for i in range(0, len(fields), 4)]


def check(table: dict, entries: list[tuple[str, str, str, str]]) -> list[str]:
    """One message per entry that the real options would not accept."""
    errors = []
    auth_types: dict[tuple[str, str], str] = {}
    for path, section, option, value in entries:
        if option == "auth_type":
            auth_types[(path, section)] = value
    for path, section, option, value in entries:
        options = table["files"].get(os.path.basename(path))
        if options is None:
            continue
        where = f"{os.path.basename(path)} [{section}] {option} = {value!r}"
        opt_type = options.get((section, option))
        if opt_type is None and (path, section) in auth_types:
            plugin = auth_types[(path, section)]
            opt_type = table["plugins"].get(plugin, {}).get(option)
        if opt_type is None:
            errors.append(f"{where}: no such option in [{section}] (nothing registers it)")
            continue
        try:
            opt_type(value)
        except (ValueError, TypeError) as exc:
            errors.append(f"{where}: rejected by its type {opt_type!r}: {exc}")
    return errors


def main(argv: list[str]) -> int:
    command, table_path, *rest = argv
    if command == "table":
        table = build_table()
        with open(table_path + ".tmp", "wb") as handle:
            pickle.dump(table, handle)
        os.replace(table_path + ".tmp", table_path)
        return 0
    if command == "check":
        with open(table_path, "rb") as handle:
            table = pickle.load(handle)
        errors = check(table, read_log(rest[0]))
        for error in errors:
            print(f"iniset: {error}", file=sys.stderr)
        return 1 if errors else 0
    sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
