"""Check an ``openstack`` command line with the real client's parsers.

    python osc_parse.py ARGS...
    python osc_parse.py --serve DIR


Run with the Python of a virtualenv that holds python-openstackclient and
python-magnumclient (clients.sh builds them). The real ``OpenStackShell``
parses the global options, loads every installed client plugin the way
``openstack`` does (clouds.yaml included: a throwaway one with devstack's
cloud names), finds the command and parses its arguments with the command's
own parser. Nothing is sent anywhere: the command is never run.

Exit status 0 when the installed clients accept the line; 2 with the
parser's message on stderr otherwise (an unknown option, an unknown command,
a missing argument).

``--serve DIR`` does the same for many lines in one process (importing the
clients takes a second or more, parsing a line milliseconds): a request is a
file DIR/req/ID holding the arguments, each ended by a NUL (written under
another name, then renamed); the answer is DIR/resp/ID: the exit status on
the first line, then what the parser printed. The server stops when DIR is
removed or after an hour without requests.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import time

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


def serve(directory: str, idle_limit: float = 3600.0) -> int:
    """Answer the requests under DIRECTORY until it disappears."""
    requests = os.path.join(directory, "req")
    answers = os.path.join(directory, "resp")
    os.makedirs(requests, exist_ok=True)
    os.makedirs(answers, exist_ok=True)
    last = time.monotonic()
    while os.path.isdir(requests) and time.monotonic() - last < idle_limit:
        names = sorted(name for name in os.listdir(requests) if not name.startswith("."))
        for name in names:
            path = os.path.join(requests, name)
            with open(path, "rb") as handle:
                argv = handle.read().decode("utf-8").split("\0")[:-1]
            os.remove(path)
            output = io.StringIO()
            with contextlib.redirect_stderr(output), contextlib.redirect_stdout(io.StringIO()):
                try:
                    status = main(argv)
                except SystemExit as exc:
                    status = exc.code if isinstance(exc.code, int) else 2
                except Exception as exc:  # a broken check, not a rejection
                    print(f"osc_parse.py: {exc!r}", file=sys.stderr)
                    status = 1
            # Each request builds a new shell, whose logging set-up adds
            # root handlers bound to this request's output.
            logging.getLogger().handlers.clear()
            answer = os.path.join(answers, name)
            with open(f"{answer}.tmp", "w", encoding="utf-8") as handle:
                handle.write(f"{status}\n{output.getvalue()}")
            os.replace(f"{answer}.tmp", answer)
            last = time.monotonic()
        if not names:
            time.sleep(0.01)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(sys.argv[2]))
    sys.exit(main(sys.argv[1:]))
