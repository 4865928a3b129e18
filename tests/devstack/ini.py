# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Read back the INI files the stubbed devstack ``iniset`` wrote.

    ini.py get FILE SECTION OPTION   print the value, exit 1 when absent
    ini.py dump FILE                 print every "[section] option = value", in file order

Parsing with configparser (strict: no duplicate section or option) also
proves that the file is valid INI. ``[DEFAULT]`` is read as an ordinary
section, as oslo.config reads it.
"""

from __future__ import annotations

import configparser
import sys


def load(path: str) -> configparser.ConfigParser:
    """Parse the file at PATH, option names case-sensitive like oslo.config."""
    parser = configparser.ConfigParser(
        interpolation=None, default_section="\0none", strict=True, delimiters=("=",)
    )
    parser.optionxform = str
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle)
    return parser


def main(argv: list[str]) -> int:
    """Dispatch the command line."""
    command, path, *rest = argv
    parser = load(path)
    if command == "get":
        section, option = rest
        if not parser.has_option(section, option):
            return 1
        print(parser.get(section, option))
        return 0
    if command == "dump":
        for section in parser.sections():
            for option, value in parser.items(section):
                print(f"[{section}] {option} = {value}")
        return 0
    sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
