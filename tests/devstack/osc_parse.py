"""Check an ``openstack`` command line with the real client's parsers.

    python osc_parse.py ARGS...

Run with the Python of a virtualenv that holds python-openstackclient and
python-magnumclient (clients.sh builds them). The real ``OpenStackShell``
parses the global options, loads every installed client plugin the way
``openstack`` does (clouds.yaml included: a throwaway one with devstack's
cloud names), finds the command and parses its arguments with the command's
own parser. Nothing is sent anywhere: the command is never run.

Exit status 0 when the installed clients accept the line; 2 with the
parser's message on stderr otherwise (an unknown option, an unknown command,
a missing argument).
"""

from __future__ import annotations

import os
import sys
import tempfile

# devstack's write_clouds_yaml names (functions-common); the values are
# never used to connect.
CLOUDS = ("devstack", "devstack-admin", "devstack-admin-demo", "devstack-alt",
          "devstack-system-admin")


def clouds_yaml(directory: str) -> str:
    """Write a clouds.yaml with devstack's cloud names; return its path."""
    path = os.path.join(directory, "clouds.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("clouds:\n")
        for name in CLOUDS:
            handle.write(
                f"  {name}:\n"
                "    auth:\n"
                "      auth_url: http://192.0.2.1/identity\n"
                "      username: admin\n"
                "      password: unused\n"
                "      project_name: admin\n"
                "      user_domain_id: default\n"
                "      project_domain_id: default\n"
                "    identity_api_version: 3\n")
    return path


def main(argv: list[str]) -> int:
    """Parse ARGV like ``openstack ARGV`` would, without running it."""
    from openstackclient import shell

    app = shell.OpenStackShell()

    def parse_only(remainder: list[str]) -> int:
        # cliff's App.run_subcommand up to the parse, without prepare_to_run
        # (authentication) and without running the command.
        try:
            factory, name, sub_argv = app.command_manager.find_command(remainder)
        except ValueError as exc:
            print(f"openstack: {exc}", file=sys.stderr)
            return 2
        command = factory(app, app.options, cmd_name=name) \
            if "cmd_name" in factory.__init__.__code__.co_varnames \
            else factory(app, app.options)
        parser = command.get_parser(f"openstack {name}")
        parser.parse_args(sub_argv)  # exits with status 2 on an error
        return 0

    app.run_subcommand = parse_only
    with tempfile.TemporaryDirectory() as directory:
        os.environ["OS_CLIENT_CONFIG_FILE"] = clouds_yaml(directory)
        for variable in [name for name in os.environ if name.startswith("OS_")]:
            if variable != "OS_CLIENT_CONFIG_FILE":
                del os.environ[variable]
        try:
            status = app.run(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
    if status == 0 and not argv:
        return 2
    return 2 if status else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
